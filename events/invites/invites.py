"""Calendar invites (iTIP over e-mail): one per recipient, stable UID, SEQUENCE kept per event and person.

State per (event, person) in CalendarInvite: `active` from the confirmation until a cancellation, then
`cancelled`; every change of the invite raises `sequence` (never reset, also across a new registration).
The registration's confirmation mail carries the REQUEST (events.hooks.invite_for → `invite_part`); a change
of time, venue or title sends a REQUEST of its own; the place or the event cancelled sends exactly one CANCEL
(the state moves to `cancelled` once, whichever signal comes first).
"""

from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from events import audit
from events.config import config
from events.core.tables import Person
from events.db import raw, utcnow, write_transaction
from events.errors import Conflict, NotFound
from events.ical import CalendarEvent, build_invite, event_uid
from events.invites.tables import CalendarInvite
from events.mail import queue_mail
from events.mime import CalendarPart
from events.seminars.tables import Event, Registration

log = logging.getLogger("events.invites")

# A change of one of these sends a new REQUEST to every confirmed person.
INVITE_FIELDS = frozenset({"starts_at", "ends_at", "venue", "venue_en", "title", "title_en"})
# Registration states whose person holds the event in their calendar.
CALENDAR_STATES = ("confirmed", "attended")
LIVE_EVENT_STATES = ("published", "completed")
_EVENT_COLUMNS = (
    Event.id, Event.kind, Event.title, Event.title_en, Event.description, Event.description_en, Event.venue,
    Event.venue_en, Event.starts_at, Event.ends_at, Event.status, Event.visibility, Event.calendar_sequence,
    Event.updated_at,
)
# Where an exchanges area may offer `table_summary_for(event_id, person_id, locale)`; absent is fine.
_TABLE_SUMMARY_MODULES = ("events.exchanges", "events.exchanges.sessions", "events.exchanges.seating",
                          "events.exchanges.services", "events.exchanges.summary")


@dataclass(frozen=True)
class Recipient:
    id: int
    email: str
    name: str
    locale: str
    reminders: bool


async def recipient(person_id: int) -> Recipient | None:
    row = await Person.select(Person.id, Person.email, Person.name, Person.locale, Person.reminders).where(
        Person.id == person_id
    ).first()
    if row is None:
        return None
    locale = row["locale"] if row["locale"] in ("ja", "en") else "ja"
    return Recipient(row["id"], row["email"], row["name"], locale, bool(row["reminders"]))


async def event_row(event_id: int) -> dict[str, Any] | None:
    return await Event.select(*_EVENT_COLUMNS).where(Event.id == event_id).first()


def event_url(event_id: int) -> str:
    return f"{config().base_url}/events/{event_id}"


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
        url=event_url(event["id"]),
        starts_at=starts_at,
        ends_at=ends_at,
        last_modified=as_utc_datetime(last_modified),
    )


async def table_summary(event: dict[str, Any], person_id: int, locale: str) -> str:
    """The person's table plan of an exchange session, if the exchanges area offers it."""
    if event["kind"] != "staff_exchange":
        return ""
    for name in _TABLE_SUMMARY_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        summary_for = getattr(module, "table_summary_for", None)
        if summary_for is None:
            continue
        try:
            summary = summary_for(event["id"], person_id, locale)
            if inspect.isawaitable(summary):
                summary = await summary
        except Exception:  # another area's bug must not block an invite (or the registration around it)
            log.exception("table_summary_for(%s, %s) failed", event["id"], person_id)
            return ""
        return str(summary or "").strip()
    return ""


async def _invite_state(event_id: int, person_id: int) -> dict[str, Any] | None:
    return await CalendarInvite.select().where(
        (CalendarInvite.event == event_id) & (CalendarInvite.person == person_id)
    ).first()


async def _set_sequence_on_registration(event_id: int, person_id: int, sequence: int) -> None:
    # Mirror for readers of Registration.calendar_sequence (raised only, like ours).
    await Registration.update({Registration.calendar_sequence: sequence}).where(
        (Registration.event == event_id) & (Registration.person == person_id)
        & (Registration.status != "cancelled") & (Registration.calendar_sequence < sequence)
    )


async def activate(event_id: int, person_id: int) -> dict[str, Any]:
    """The person holds the event: create the invite state, or re-open a cancelled one with a higher SEQUENCE."""
    now = utcnow()
    state = await _invite_state(event_id, person_id)
    if state is None:
        await CalendarInvite.insert(
            CalendarInvite(event=event_id, person=person_id, sequence=0, state="active", created_at=now, updated_at=now)
        ).on_conflict(action="DO NOTHING")
    elif state["state"] == "cancelled":
        await CalendarInvite.update(
            {CalendarInvite.state: "active", CalendarInvite.sequence: state["sequence"] + 1,
             CalendarInvite.updated_at: now}
        ).where(CalendarInvite.id == state["id"])
    state = await _invite_state(event_id, person_id)
    assert state is not None
    await _set_sequence_on_registration(event_id, person_id, state["sequence"])
    return state


async def _raise_sequence(state: dict[str, Any], *, new_state: str) -> dict[str, Any]:
    sequence = state["sequence"] + 1
    await CalendarInvite.update(
        {CalendarInvite.sequence: sequence, CalendarInvite.state: new_state, CalendarInvite.updated_at: utcnow()}
    ).where(CalendarInvite.id == state["id"])
    await _set_sequence_on_registration(state["event"], state["person"], sequence)
    return {**state, "sequence": sequence, "state": new_state}


async def _mark_mailed(state: dict[str, Any], method: str) -> None:
    await CalendarInvite.update(
        {CalendarInvite.mailed_sequence: state["sequence"], CalendarInvite.mailed_method: method}
    ).where(CalendarInvite.id == state["id"])


async def build_part(event: dict[str, Any], person: Recipient, *, sequence: int, method: str) -> CalendarPart | None:
    """The invite for one person, or None when it cannot be expressed (e.g. an address iCalendar cannot carry):
    a registration must never fail because of its calendar attachment."""
    extra = await table_summary(event, person.id, person.locale)
    try:
        entry = calendar_event(
            event, person_id=person.id, locale=person.locale, sequence=sequence,
            last_modified=event["updated_at"] or utcnow(), extra_description=extra,
        )
        ics = build_invite(
            entry, method=method, organizer_email=config().mail_from, organizer_name=config().mail_from_name,
            attendee_email=person.email, attendee_name=person.name, dtstamp=utcnow(),
        )
    except ValueError:
        log.exception("no invite for event %s, person %s", event["id"], person.id)
        return None
    return CalendarPart(method=method, ics=ics)


def mail_context(event: dict[str, Any], person: Recipient, **extra: Any) -> dict[str, Any]:
    return {
        "title": localized(event, "title", person.locale),
        "venue": localized(event, "venue", person.locale),
        "starts_at": as_utc_datetime(event["starts_at"]),
        "ends_at": as_utc_datetime(event["ends_at"]),
        "event_url": event_url(event["id"]),
        **extra,
    }


async def _mail_invite(
    name: str, event: dict[str, Any], person: Recipient, state: dict[str, Any], method: str, *, key_suffix: str = "",
    context: dict[str, Any] | None = None,
) -> bool:
    part = await build_part(event, person, sequence=state["sequence"], method=method)
    await _mark_mailed(state, method)
    if part is None:
        return False
    key = f"invite:e{event['id']}:p{person.id}:s{state['sequence']}:{method.lower()}{key_suffix}"
    queued = await queue_mail(
        name, to_email=person.email, to_name=person.name, locale=person.locale,
        context=mail_context(event, person, **(context or {})), key=key, calendar=part,
    )
    return queued


# ---------------------------------------------------------------- the provider for confirmation mails


async def invite_part(*, event_id: int, person_id: int, method: str = "REQUEST") -> CalendarPart | None:
    """events.hooks.invite_for: the CalendarPart another area's mail carries (in its transaction).

    REQUEST: the current invite (the state becomes active). CANCEL: cancels the invite and returns the
    CANCEL, or None when a CANCEL was already sent (exactly one per person).
    """
    event = await event_row(event_id)
    person = await recipient(person_id)
    if event is None or person is None:
        return None
    if method == "CANCEL":
        state = await _invite_state(event_id, person_id)
        if state is None or state["state"] == "cancelled":
            return None
        state = await _raise_sequence(state, new_state="cancelled")
        await _withdraw_reminder(event_id, person_id)
    else:
        if event["status"] == "cancelled":
            return None
        state = await activate(event_id, person_id)
    part = await build_part(event, person, sequence=state["sequence"], method=method)
    await _mark_mailed(state, method)
    return part


async def _withdraw_reminder(event_id: int, person_id: int) -> None:
    from events.invites import reminders  # reminders imports this module

    await reminders.withdraw_reminder(event_id, person_id)


# ---------------------------------------------------------------- subscribers (run in the emitter's transaction)


async def on_registration_confirmed(*, registration_id: int, event_id: int, person_id: int, **_: Any) -> None:
    from events.invites import reminders

    await activate(event_id, person_id)
    await reminders.queue_reminder(event_id, person_id)


async def _cancel(event: dict[str, Any], person_id: int) -> bool:
    """Move an active invite to cancelled and mail the CANCEL; False when there was nothing to cancel."""
    await _withdraw_reminder(event["id"], person_id)
    state = await _invite_state(event["id"], person_id)
    if state is None or state["state"] != "active":
        return False
    person = await recipient(person_id)
    state = await _raise_sequence(state, new_state="cancelled")
    if person is None:
        return False
    reason = "event" if event["status"] == "cancelled" else "place"
    await _mail_invite("invite_cancel", event, person, state, "CANCEL", context={"reason": reason})
    return True


async def on_registration_cancelled(
    *, registration_id: int, event_id: int, person_id: int, was_confirmed: bool = True, **_: Any
) -> None:
    event = await event_row(event_id)
    if event is None:
        return
    await _cancel(event, person_id)


async def on_event_cancelled(*, event_id: int, **_: Any) -> None:
    event = await event_row(event_id)
    if event is None:
        return
    states = await CalendarInvite.select(CalendarInvite.person).where(
        (CalendarInvite.event == event_id) & (CalendarInvite.state == "active")
    )
    for state in states:
        await _cancel(event, state["person"])
    holders = await Registration.select(Registration.person).where(Registration.event == event_id)
    for holder in holders:  # reminders of places that never had an invite state
        await _withdraw_reminder(event_id, holder["person"])


async def calendar_holders(event_id: int) -> list[int]:
    rows = await Registration.select(Registration.person).where(
        (Registration.event == event_id) & Registration.status.is_in(list(CALENDAR_STATES))
    ).order_by(Registration.id)
    return [row["person"] for row in rows]


async def on_event_changed(*, event_id: int, fields: Any = (), **_: Any) -> None:
    from events.invites import reminders

    changed = {str(f) for f in (fields or ())}
    if not changed & INVITE_FIELDS:
        return
    event = await event_row(event_id)
    if event is None or event["status"] not in LIVE_EVENT_STATES:
        return
    what = sorted({field.removesuffix("_en") for field in changed & INVITE_FIELDS})
    for person_id in await calendar_holders(event_id):
        person = await recipient(person_id)
        if person is None:
            continue
        state = await _raise_sequence(await activate(event_id, person_id), new_state="active")
        await _mail_invite("invite_update", event, person, state, "REQUEST", context={"changed": what})
        await reminders.withdraw_reminder(event_id, person_id)
        await reminders.queue_reminder(event_id, person_id)


# ---------------------------------------------------------------- coordinator action, safety net


async def resend_invite(registration_id: int, *, actor_id: int | None, client: str = "") -> dict[str, Any]:
    """Send the person's current invite again (same UID and SEQUENCE) as a mail of its own."""
    async with write_transaction():
        registration = await Registration.select(Registration.id, Registration.event, Registration.person,
                                                 Registration.status).where(Registration.id == registration_id).first()
        if registration is None:
            raise NotFound("その申込みは見つかりません。", code="registration_not_found")
        if registration["status"] not in CALENDAR_STATES:
            raise Conflict("確定した申込みにだけ招待状を再送できます。", code="registration_not_confirmed")
        event = await event_row(registration["event"])
        person = await recipient(registration["person"])
        if event is None or person is None:
            raise NotFound("その申込みは見つかりません。", code="registration_not_found")
        if event["status"] == "cancelled":
            raise Conflict("中止になったイベントの招待状は再送できません。", code="event_cancelled")
        state = await activate(event["id"], person.id)
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
        await _mail_invite("invite_resend", event, person, state, "REQUEST", key_suffix=f":resend:{stamp}")
        await audit.record("invite_resent", actor_id=actor_id, subject_type="registration",
                           subject_id=registration_id, detail={"sequence": state["sequence"]}, client=client)
    return {"registration_id": registration_id, "sequence": state["sequence"], "status": "queued"}


async def send_missing_invites(limit: int = 50) -> int:
    """Worker job: a confirmed place whose mail carried no invite (e.g. an area that only emits the signal)
    gets one of its own. Cheap when nothing is missing: one indexed query."""
    rows = await raw(
        "SELECT event, person FROM calendar_invite WHERE state = 'active' AND mailed_sequence < sequence "
        f"ORDER BY id LIMIT {int(limit)}"
    )
    sent = 0
    for row in rows:
        async with write_transaction():
            state = await _invite_state(row["event"], row["person"])
            if state is None or state["state"] != "active" or state["mailed_sequence"] >= state["sequence"]:
                continue
            live = await Registration.exists().where(
                (Registration.event == row["event"]) & (Registration.person == row["person"])
                & Registration.status.is_in(list(CALENDAR_STATES))
            )
            event = await event_row(row["event"])
            person = await recipient(row["person"])
            if not live or event is None or person is None or event["status"] not in LIVE_EVENT_STATES:
                await _mark_mailed(state, "")  # nothing to send; do not look again
                continue
            await _mail_invite("invite_new", event, person, state, "REQUEST")
            sent += 1
    return sent
