"""Tables of the 'exchanges' area."""
