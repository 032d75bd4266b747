"""Follow-up feedback surveys: building, sending, answering, results and exports."""
