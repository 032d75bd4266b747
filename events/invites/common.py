"""What invites, reminders and feeds share: the recipient, the event row and its mapping to a calendar entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from events import signals, timefmt
from events.config import config
from events.core.tables import Person
from events.ical import CalendarEvent, event_uid
from events.seminars.tables import Event

_EVENT_COLUMNS = (
    Event.id, Event.kind, Event.title, Event.title_en, Event.description, Event.description_en, Event.venue,
    Event.venue_en, Event.starts_at, Event.ends_at, Event.status, Event.visibility, Event.calendar_sequence,
    Event.updated_at,
)


@dataclass(frozen=True)
class Recipient:
    id: int
    email: str
    name: str
    locale: str
    reminders: bool


_RECIPIENT_KEYS = frozenset({"id", "email", "name", "locale", "reminders"})
_EVENT_KEYS = frozenset(c._meta.name for c in _EVENT_COLUMNS)


async def recipient(person_id: int, known: Mapping[str, Any] | None = None) -> Recipient | None:
    """The person as invites and reminders address them; `known` is the row when the caller read it in this
    transaction (a place change carries it), else it is read."""
    if known is not None and known.get("id") == person_id and _RECIPIENT_KEYS <= known.keys():
        row: Mapping[str, Any] | None = known
    else:
        row = await Person.select(Person.id, Person.email, Person.name, Person.locale, Person.reminders).where(
            Person.id == person_id
        ).first()
    if row is None:
        return None
    locale = row["locale"] if row["locale"] in ("ja", "en") else "ja"
    return Recipient(row["id"], row["email"], row["name"], locale, bool(row["reminders"]))


async def event_row(event_id: int, known: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The event's columns that invites and reminders show; `known` as for `recipient` (a place change's event)."""
    if known is not None and known.get("id") == event_id and _EVENT_KEYS <= known.keys():
        return {key: known[key] for key in _EVENT_KEYS}
    return await Event.select(*_EVENT_COLUMNS).where(Event.id == event_id).first()


def event_url(event_id: int, kind: str = "") -> str:
    """The event's page; a kind with a page of its own (signals.EVENT_PAGE: a home visit) links there."""
    page = signals.EVENT_PAGE.get(kind)
    return f"{config().base_url}{page(event_id) if page else f'/events/{event_id}'}"


def localized(event: dict[str, Any], field: str, locale: str) -> str:
    """English field when the recipient reads English and it is filled in, else Japanese."""
    if locale == "en" and (event.get(f"{field}_en") or "").strip():
        return event[f"{field}_en"]
    return event.get(field) or ""


def as_utc_datetime(value: Any) -> datetime:
    """Timestamps from raw SQL arrive as strings on SQLite."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value


def calendar_event(
    event: dict[str, Any], *, person_id: int | None, locale: str, sequence: int, last_modified: datetime,
    extra_description: str = "",
) -> CalendarEvent:
    """THE mapping from an Event row to what one calendar entry shows, for invites and feeds alike."""
    starts_at = as_utc_datetime(event["starts_at"])
    ends_at = as_utc_datetime(event["ends_at"])
    # A calendar entry needs a positive length; a broken end time must not block a registration.
    ends_at = max(ends_at, starts_at + timedelta(minutes=1))
    description = localized(event, "description", locale).strip()
    if extra_description:
        description = f"{description}\n\n{extra_description}" if description else extra_description
    return CalendarEvent(
        uid=event_uid(event["kind"], event["id"], person_id, config().mail_domain),
        sequence=sequence,
        summary=localized(event, "title", locale),
        description=description,
        location=localized(event, "venue", locale),
        url=event_url(event["id"], event.get("kind", "")),
        starts_at=starts_at,
        ends_at=ends_at,
        last_modified=as_utc_datetime(last_modified),
    )




def mail_context(event: dict[str, Any], person: Recipient, **extra: Any) -> dict[str, Any]:
    return {
        "title": localized(event, "title", person.locale),
        "venue": localized(event, "venue", person.locale),
        "starts_at": as_utc_datetime(event["starts_at"]),
        "ends_at": as_utc_datetime(event["ends_at"]),
        "when": timefmt.span(as_utc_datetime(event["starts_at"]), as_utc_datetime(event["ends_at"]), person.locale),
        "event_url": event_url(event["id"], event.get("kind", "")),
        **extra,
    }
