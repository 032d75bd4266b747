"""Tables of the 'visits' area."""
