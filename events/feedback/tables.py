"""Tables of the 'feedback' area."""
