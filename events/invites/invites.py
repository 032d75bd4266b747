"""Calendar invites (iTIP over e-mail): one per recipient, stable UID, SEQUENCE kept per event and person.

State per (event, person) in CalendarInvite: `active` from the confirmation until a cancellation, then
`cancelled`; every change of the invite raises `sequence` (never reset, also across a new registration).
The place's notice mail carries the REQUEST (signals.INVITE_PART → `invite_part`); a change
of time, venue or title sends a REQUEST of its own; the place or the event cancelled sends exactly one CANCEL
(the state moves to `cancelled` once, whichever signal comes first).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from events import audit, signals
from events.access import Actor
from events.config import config
from events.db import decoded, raw, transaction_memo, utcnow, write_transaction
from events.errors import Conflict, NotFound
from events.ical import build_invite
from events.invites import reminders
from events.invites.common import Recipient, calendar_event, event_row, mail_context, recipient
from events.invites.tables import CalendarInvite
from events.mail import queue_mail
from events.mime import CalendarPart
from events.seminars.tables import CALENDAR_STATES, LIVE_EVENT_STATES, Registration

log = logging.getLogger("events.invites")

# A change of one of these sends a new REQUEST to every confirmed person.
INVITE_FIELDS = frozenset({"starts_at", "ends_at", "venue", "venue_en", "title", "title_en"})


async def table_summary(event: dict[str, Any], person_id: int, locale: str) -> str:
    """The person's table plan of an exchange session, when the exchanges area provides it."""
    if event["kind"] != "staff_exchange" or not signals.TABLE_SUMMARY.installed:
        return ""
    try:
        summary = await signals.TABLE_SUMMARY.call(event["id"], person_id, locale, default="")
    except Exception:  # another area's bug must not block an invite (or the registration around it)
        log.exception("table summary for event %s, person %s failed", event["id"], person_id)
        return ""
    return str(summary or "").strip()


async def _invite_state(event_id: int, person_id: int) -> dict[str, Any] | None:
    return await CalendarInvite.select().where(
        (CalendarInvite.event == event_id) & (CalendarInvite.person == person_id)
    ).first()


async def _set_sequence_on_registration(event_id: int, person_id: int, sequence: int) -> None:
    # Mirror for readers of Registration.calendar_sequence (raised only, like ours; it starts at 0).
    if sequence <= 0:
        return
    await Registration.update({Registration.calendar_sequence: sequence}).where(
        (Registration.event == event_id) & (Registration.person == person_id)
        & (Registration.status != "cancelled") & (Registration.calendar_sequence < sequence)
    )


_REOPENED = "CASE WHEN calendar_invite.state = 'cancelled' THEN 1 ELSE 0 END"  # a cancelled invite re-opens one higher
_STATE_COLUMNS = ", ".join(c._meta.db_column_name for c in CalendarInvite._meta.columns)


def _remember(state: dict[str, Any]) -> dict[str, Any]:
    """The invite state as this transaction last wrote it (`db.transaction_memo`): read back by nobody."""
    memo = transaction_memo("invites.state")
    if memo is not None:
        memo[(state["event"], state["person"])] = state
    return state


async def activate(event_id: int, person_id: int, *, mailing: str = "") -> dict[str, Any]:
    """The person holds the event: create the invite state, or re-open a cancelled one with a higher SEQUENCE —
    one statement, which with `mailing` (the method of the invite about to be built) also records it as mailed."""
    now = utcnow()
    mark = f", mailed_sequence = calendar_invite.sequence + {_REOPENED}, mailed_method = excluded.mailed_method" \
        if mailing else ""
    rows = await raw(
        "INSERT INTO calendar_invite (event, person, sequence, state, mailed_sequence, mailed_method, created_at, "
        "updated_at) VALUES ({}, {}, 0, 'active', {}, {}, {}, {}) ON CONFLICT (event, person) DO UPDATE SET "
        f"sequence = calendar_invite.sequence + {_REOPENED}, updated_at = CASE WHEN calendar_invite.state = "
        f"'cancelled' THEN excluded.updated_at ELSE calendar_invite.updated_at END, state = 'active'{mark} "
        f"RETURNING {_STATE_COLUMNS}",
        event_id, person_id, 0 if mailing else -1, mailing, now, now)
    state = decoded(rows[0], CalendarInvite)
    await _set_sequence_on_registration(event_id, person_id, state["sequence"])
    return _remember(state)


async def _raise_sequence(state: dict[str, Any], *, new_state: str) -> dict[str, Any]:
    sequence = state["sequence"] + 1
    await CalendarInvite.update(
        {CalendarInvite.sequence: sequence, CalendarInvite.state: new_state, CalendarInvite.updated_at: utcnow()}
    ).where(CalendarInvite.id == state["id"])
    await _set_sequence_on_registration(state["event"], state["person"], sequence)
    return _remember({**state, "sequence": sequence, "state": new_state})


async def _mark_mailed(state: dict[str, Any], method: str) -> None:
    await CalendarInvite.update(
        {CalendarInvite.mailed_sequence: state["sequence"], CalendarInvite.mailed_method: method}
    ).where(CalendarInvite.id == state["id"])
    _remember({**state, "mailed_sequence": state["sequence"], "mailed_method": method})


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


async def invite_part(*, event_id: int, person_id: int, method: str = "REQUEST", event: Mapping[str, Any] | None = None,
                      person: Mapping[str, Any] | None = None) -> CalendarPart | None:
    """signals.INVITE_PART: the CalendarPart another area's mail carries (in its transaction). `event` and
    `person` are the rows when the caller read them in this transaction (a place change carries them).

    REQUEST: the current invite (the state becomes active, and is marked as mailed in the same statement).
    CANCEL: cancels the invite and returns the CANCEL, or None when a CANCEL was already sent (exactly one per
    person).
    """
    row = await event_row(event_id, event)
    who = await recipient(person_id, person)
    if row is None or who is None:
        return None
    if method == "CANCEL":
        state = await _invite_state(event_id, person_id)
        if state is None or state["state"] == "cancelled":
            return None
        state = await _raise_sequence(state, new_state="cancelled")
        await _withdraw_reminder(event_id, person_id)
        part = await build_part(row, who, sequence=state["sequence"], method=method)
        await _mark_mailed(state, method)
        return part
    if row["status"] == "cancelled":
        return None
    state = await activate(event_id, person_id, mailing=method)
    return await build_part(row, who, sequence=state["sequence"], method=method)


async def _withdraw_reminder(event_id: int, person_id: int) -> None:
    await reminders.withdraw_reminder(event_id, person_id)


# ---------------------------------------------------------------- subscribers (run in the emitter's transaction)


async def on_place_changed(change: signals.PlaceChanged) -> None:
    """A place entered the calendar (confirmed): the invite state is active and the reminder queued; a place
    ended: exactly one CANCEL (none when the notice mail already carried it)."""
    # The notice's invite (`invite_part`), when it was written a moment ago in this transaction.
    noticed = (transaction_memo("invites.state") or {}).get((change.event_id, change.person_id))
    if change.new in CALENDAR_STATES and change.old not in CALENDAR_STATES:
        state = noticed if noticed is not None and noticed["state"] == "active" else \
            await activate(change.event_id, change.person_id)
        await reminders.queue_reminder(change.event_id, change.person_id, event=change.event,
                                       person=await recipient(change.person_id, change.person),
                                       sequence=state["sequence"], held=True)
    elif change.new == "cancelled":
        if noticed is not None and noticed["state"] == "cancelled":
            return  # the notice carried the CANCEL, and withdrew the reminder with it
        event = await event_row(change.event_id, change.event)
        if event is not None:
            await _cancel(event, change.person_id)


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


async def on_event_cancelled(change: signals.EventCancelled) -> None:
    event_id = change.event_id
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


async def calendar_holders(event_id: int, *, except_registrations: frozenset[int] = frozenset()) -> list[int]:
    rows = await Registration.select(Registration.id, Registration.person).where(
        (Registration.event == event_id) & Registration.status.is_in(list(CALENDAR_STATES))
    ).order_by(Registration.id)
    return [row["person"] for row in rows if row["id"] not in except_registrations]


async def on_event_changed(change: signals.EventChanged) -> None:
    event_id = change.event_id
    changed = set(change.fields)
    if not changed & INVITE_FIELDS:
        return
    event = await event_row(event_id)
    if event is None or event["status"] not in LIVE_EVENT_STATES:
        return
    what = sorted({field.removesuffix("_en") for field in changed & INVITE_FIELDS})
    for person_id in await calendar_holders(event_id, except_registrations=change.already_told):
        person = await recipient(person_id)
        if person is None:
            continue
        state = await _raise_sequence(await activate(event_id, person_id), new_state="active")
        await _mail_invite("invite_update", event, person, state, "REQUEST", context={"changed": what})
        await reminders.withdraw_reminder(event_id, person_id)
        await reminders.queue_reminder(event_id, person_id, event=event, person=person, sequence=state["sequence"],
                                       held=True)


# ---------------------------------------------------------------- coordinator action, safety net


async def resend_invite(registration_id: int, *, actor: Actor) -> dict[str, Any]:
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
        await audit.record(actor, "invite_resent", subject_type="registration",
                           subject_id=registration_id, detail={"sequence": state["sequence"]})
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
