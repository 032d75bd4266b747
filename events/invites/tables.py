"""Tables of the 'invites' area."""
