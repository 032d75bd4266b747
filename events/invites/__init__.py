"""Calendar invites, per-person feeds and reminders (issue 4).

`install()` wires this area into the domain signals (events.hooks) and provides the invite part of
other areas' confirmation mails; the shell calls it when the invites area is loaded.
"""

from __future__ import annotations


def install() -> None:
    from events import hooks
    from events.invites import invites

    hooks.set_invite_provider(invites.invite_part)
    hooks.subscribe("registration.confirmed", invites.on_registration_confirmed)
    hooks.subscribe("registration.cancelled", invites.on_registration_cancelled)
    hooks.subscribe("event.changed", invites.on_event_changed)
    hooks.subscribe("event.cancelled", invites.on_event_cancelled)
