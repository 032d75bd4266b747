"""In-transaction domain signals, so areas stay apart: registration emits, invites/feedback listen.

Subscribers run inside the emitter's write transaction, in subscription order; if one raises,
the whole change rolls back (no half-sent invite for a registration that did not happen).

Signals (payload keys):
- "registration.confirmed"  registration_id, event_id, person_id          (a place is confirmed)
- "registration.cancelled"  registration_id, event_id, person_id, was_confirmed
- "event.changed"           event_id, fields (set of changed field names: starts_at, ends_at, venue, title …)
- "event.cancelled"         event_id
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

Subscriber = Callable[..., Awaitable[Any]]
_subscribers: dict[str, list[Subscriber]] = defaultdict(list)


def subscribe(signal: str, subscriber: Subscriber) -> Subscriber:
    if subscriber not in _subscribers[signal]:
        _subscribers[signal].append(subscriber)
    return subscriber


def on(signal: str) -> Callable[[Subscriber], Subscriber]:
    def decorate(subscriber: Subscriber) -> Subscriber:
        return subscribe(signal, subscriber)

    return decorate


async def emit(signal: str, **payload: Any) -> None:
    for subscriber in list(_subscribers[signal]):
        await subscriber(**payload)


# The confirmation mail of a place carries the calendar invite (issue: one mail, one invite).
# The invites area sets this; it returns an events.mime.CalendarPart or None.
InviteProvider = Callable[..., Awaitable[Any]]
_invite_provider: list[InviteProvider] = []


def set_invite_provider(provider: InviteProvider) -> None:
    _invite_provider[:] = [provider]


def invites_installed() -> bool:
    return bool(_invite_provider)


async def invite_for(*, event_id: int, person_id: int, method: str = "REQUEST") -> Any:
    """A CalendarPart for this person's place in this event, or None when no invites area is installed."""
    if not _invite_provider:
        return None
    return await _invite_provider[0](event_id=event_id, person_id=person_id, method=method)
