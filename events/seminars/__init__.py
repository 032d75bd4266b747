"""Seminars area: events as coordinators plan them, registration, lottery draws, exports and their mails.

`install()` connects the area to the kernel's signals (events.signals); the shell calls it once.
"""

from __future__ import annotations


def install() -> None:
    from events import signals
    from events.seminars import notices

    for kind in notices.KINDS:
        signals.PLACE_NOTICE.provide(kind, notices.place_notice)
    signals.EVENT_CHANGED.connect(notices.on_event_changed)
