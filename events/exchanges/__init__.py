"""Exchange sessions for nursery and school staff: imports, sessions, table planning, outputs.

`install()` provides a person's tables to the invites area (signals.TABLE_SUMMARY), for the description of
their calendar invite; the shell calls it once.
"""

from __future__ import annotations


def install() -> None:
    from events import signals
    from events.exchanges import privacy, sessions

    signals.TABLE_SUMMARY.provide(sessions.table_summary_for)
    privacy.register()  # the area's share of a person's data (events.privacy)
