"""The one way areas extend one another: typed signals and providers, wired by each area's `install()`.

- A `Signal[P]` carries a payload dataclass `P` to every handler connected to it, in the order they were
  connected, inside the sender's write transaction: if a handler raises, the whole change rolls back
  (no invite for a registration that did not happen).
- A `Provider[F]` is a single answer another area may give (the invite part of a confirmation mail, the
  table plan in an exchange invite); `call` returns `default` when no area provides it.
- `Providers[F]` collects many answers (who else belongs to an event, who else gets a survey).
- `KeyedProvider[F]` holds one answer per key (the notice mail of a place change, per event kind).

Areas connect in `events/<area>/__init__.py:install()`, which the shell calls once per process for each
installed area (`lifedesign/areas/<area>/__init__.py`). Nothing here imports an area; nothing probes module
names. Connecting the same handler twice is a no-op, so `install()` is idempotent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

P = TypeVar("P")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class Signal(Generic[P]):
    def __init__(self, name: str, payload: type[P]) -> None:
        self.name = name
        self.payload = payload
        self._handlers: list[Callable[[P], Awaitable[None]]] = []

    def connect(self, handler: Callable[[P], Awaitable[None]]) -> Callable[[P], Awaitable[None]]:
        if handler not in self._handlers:
            self._handlers.append(handler)
        return handler

    def disconnect(self, handler: Callable[[P], Awaitable[None]]) -> None:
        if handler in self._handlers:
            self._handlers.remove(handler)

    async def send(self, payload: P) -> None:
        if not isinstance(payload, self.payload):
            raise TypeError(f"{self.name} carries {self.payload.__name__}, not {type(payload).__name__}")
        for handler in list(self._handlers):
            await handler(payload)

    def __repr__(self) -> str:
        return f"Signal({self.name!r}, {len(self._handlers)} handlers)"


class Provider(Generic[F]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._impl: F | None = None

    def provide(self, impl: F) -> F:
        self._impl = impl
        return impl

    def withdraw(self) -> None:
        self._impl = None

    @property
    def installed(self) -> bool:
        return self._impl is not None

    async def call(self, *args: Any, default: Any = None, **kwargs: Any) -> Any:
        if self._impl is None:
            return default
        return await self._impl(*args, **kwargs)


class Providers(Generic[F]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._impls: list[F] = []

    def provide(self, impl: F) -> F:
        if impl not in self._impls:
            self._impls.append(impl)
        return impl

    def withdraw(self, impl: F) -> None:
        if impl in self._impls:
            self._impls.remove(impl)

    def providers(self) -> list[F]:
        return list(self._impls)


class KeyedProvider(Generic[F]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._impls: dict[str, F] = {}

    def provide(self, key: str, impl: F) -> F:
        self._impls[key] = impl
        return impl

    def get(self, key: str) -> F | None:
        return self._impls.get(key)

    def keys(self) -> list[str]:
        return sorted(self._impls)


# ---------------------------------------------------------------- payloads


@dataclass(frozen=True)
class PlaceChanged:
    """A registration changed state (events.places is the only sender). `old` is None for a new one.

    `reason` says why, in words a coordinator would use: registered, promoted, lottery_won, lottery_lost,
    consent_given, consent_refused, consent_expired, consent_withdrawn, cancelled, left_waitlist,
    event_cancelled, visit_confirmed, visit_regrouped, safeguarding_hold, attendance.
    """

    registration_id: int
    event_id: int
    person_id: int
    event_kind: str
    old: str | None
    new: str
    reason: str
    by: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    # The rows as the ledger read them in this transaction, when it had them (listeners need not read them again):
    # the event, and the person's email, name and locale.
    event: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    person: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class EventChanged:
    """A published event's fields changed (`before` holds the old values of those fields)."""

    event_id: int
    fields: frozenset[str]
    before: Mapping[str, Any] = field(default_factory=dict)
    # Registrations whose own place mail of the same edit already carries the new details (a seat freed by
    # a larger capacity): they get no second mail about the change.
    already_told: frozenset[int] = frozenset()


@dataclass(frozen=True)
class EventCancelled:
    event_id: int
    reason: str = ""


@dataclass(frozen=True)
class VisitHost:
    """What the safeguarding invariant needs to know about the home of a home-visit event."""

    household_id: int
    host_person_id: int
    slot_id: int
    round_id: int
    vetted_until: Any  # date | None
    coordinator_id: int | None
    consented: frozenset[int] = frozenset()  # students whose guardian's consent to this visit stands
    household_name: str = ""
    district: str = ""


PLACE_CHANGED: Signal[PlaceChanged] = Signal("place.changed", PlaceChanged)
EVENT_CHANGED: Signal[EventChanged] = Signal("event.changed", EventChanged)
EVENT_CANCELLED: Signal[EventCancelled] = Signal("event.cancelled", EventCancelled)

# The one mail a person gets when their place changes, per event kind: async (PlaceChanged) -> None.
PLACE_NOTICE: KeyedProvider[Callable[[PlaceChanged], Awaitable[None]]] = KeyedProvider("place.notice")
# The calendar part of a confirmation mail: async (event_id=, person_id=, method=, event=None, person=None) ->
# CalendarPart | None; `event` and `person` are the rows when the caller read them in its transaction (a PlaceChanged's).
INVITE_PART: Provider[Callable[..., Awaitable[Any]]] = Provider("invite.part")
# The table plan an exchange invite describes: async (event_id, person_id, locale) -> str.
TABLE_SUMMARY: Provider[Callable[..., Awaitable[str]]] = Provider("exchange.table_summary")
# People who belong to an event without a registration (the host family of a visit): async (event_id) -> set[int].
EVENT_MEMBERS: Providers[Callable[[int], Awaitable[set[int]]]] = Providers("event.members")
# More survey recipients of an event, per audience: async (event_id) -> list[int] (keyed by audience).
SURVEY_RECIPIENTS: KeyedProvider[Callable[[int], Awaitable[list[int]]]] = KeyedProvider("survey.recipients")
# Does the person hold an accepted match for this home-visit event? async (event_id, person_id) -> bool.
VISIT_MATCHED: Provider[Callable[[int, int], Awaitable[bool]]] = Provider("visit.matched")
# The home of a home-visit event: async (event_id) -> VisitHost | None.
VISIT_HOST: Provider[Callable[[int], Awaitable[VisitHost | None]]] = Provider("visit.host")
# The page of an event of this kind, when it is not the seminar-style /events/<id>: (event_id) -> path
# (keyed by event kind: a home visit's calendar entry and mails link to the visits area's own page).
EVENT_PAGE: KeyedProvider[Callable[[int], str]] = KeyedProvider("event.page")
