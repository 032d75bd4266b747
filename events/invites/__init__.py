"""Calendar invites, per-person feeds and reminders.

`install()` connects this area to the kernel's signals (events.signals) and provides the invite part of
other areas' notice mails; the shell calls it when the invites area is installed.
"""

from __future__ import annotations


def install() -> None:
    from events import signals
    from events.invites import invites, privacy

    signals.INVITE_PART.provide(invites.invite_part)
    signals.PLACE_CHANGED.connect(invites.on_place_changed)
    signals.EVENT_CHANGED.connect(invites.on_event_changed)
    signals.EVENT_CANCELLED.connect(invites.on_event_cancelled)
    privacy.register()  # the area's share of a person's data (events.privacy)
