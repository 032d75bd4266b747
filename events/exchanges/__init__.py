"""Exchange sessions for nursery and school staff: imports, sessions, table planning, outputs.

Other areas call `events.exchanges.sessions.table_summary_for(event_id, person_id, locale)` to put a
person's tables into their calendar invite's description.
"""
