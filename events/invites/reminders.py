"""Reminder mails: queued with the confirmation for the day before at 9:00 Asia/Tokyo (configurable),
withdrawn when the place or the event is cancelled or moved, re-queued for the new time; one-click
unsubscribe (RFC 8058) with a secret per mail.

Outbox rows of one person's reminder for one event share the group key `reminder:p<person>:e<event>`;
the idempotency key also carries the invite SEQUENCE and the start time, so a re-queued reminder is a new row.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from piccolo.querystring import QueryString

from events import outbox
from events.config import config
from events.core.tables import OutboxMessage, Person
from events.db import utcnow, write_behind, write_transaction
from events.ical import TOKYO
from events.invites.common import Recipient, as_utc_datetime, event_row, mail_context, recipient
from events.invites.tables import CalendarInvite, ReminderOptOutToken
from events.mail import queue_mail
from events.seminars.tables import CALENDAR_STATES, LIVE_EVENT_STATES, Registration
from events.tokens import digest


def group_key(event_id: int, person_id: int) -> str:
    return f"reminder:p{person_id}:e{event_id}"


def reminder_due(starts_at: datetime, *, days_before: int, hour: int) -> datetime:
    """The reminder's send time: `days_before` days before the event's day in Tokyo, at `hour`:00 Tokyo."""
    day: date = starts_at.astimezone(TOKYO).date() - timedelta(days=days_before)
    return datetime.combine(day, time(hour), TOKYO)


async def withdraw_reminder(event_id: int, person_id: int) -> int:
    return await outbox.withdraw(group_key(event_id, person_id))


# The opt-out secret of a reminder, unless a mail of that key exists already (then the mail queued nothing, and its
# token would never be mailed). Sent before the mail's INSERT, or with it in one statement (PostgreSQL, held
# behind): either way it sees the outbox as it was before this reminder.
_TOKEN_UNLESS_QUEUED = ("INSERT INTO reminder_opt_out_token (person, token_hash, created_at) SELECT {}, {}, {} "
                        "WHERE NOT EXISTS (SELECT 1 FROM outbox_message WHERE idempotency_key = {})")


async def queue_reminder(event_id: int, person_id: int, *, now: datetime | None = None,
                         event: Mapping[str, Any] | None = None, person: Recipient | None = None,
                         sequence: int | None = None, held: bool = False) -> bool:
    """Queue the reminder of a held place (in the caller's transaction); False when none is due. A caller that
    read them in this transaction passes the event row, the recipient and the invite's SEQUENCE, and `held` when
    it knows the place is in the calendar; nothing is then read again, and the mail and its secret are written
    behind (`db.write_behind`)."""
    now = now or utcnow()
    event = await event_row(event_id, event)
    if person is None:
        person = await recipient(person_id)
    if event is None or person is None or not person.reminders or event["status"] not in LIVE_EVENT_STATES:
        return False
    if not held and not await Registration.exists().where(
        (Registration.event == event_id) & (Registration.person == person_id)
        & Registration.status.is_in(list(CALENDAR_STATES))
    ):
        return False
    starts_at = as_utc_datetime(event["starts_at"])
    due = reminder_due(starts_at, days_before=config().reminder_days_before, hour=config().reminder_hour)
    if due <= now or due >= starts_at:
        return False
    if sequence is None:
        state = await CalendarInvite.select(CalendarInvite.sequence).where(
            (CalendarInvite.event == event_id) & (CalendarInvite.person == person_id)
        ).first()
        sequence = state["sequence"] if state else 0
    raw_token = secrets.token_urlsafe(32)
    unsubscribe_url = f"{config().base_url}/reminders/unsubscribe/{raw_token}"
    headers = {
        "List-Unsubscribe": f"<{unsubscribe_url}>, <mailto:{config().mail_from}?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    key = f"reminder:e{event_id}:p{person_id}:s{sequence}:{starts_at.astimezone(TOKYO).isoformat()}"
    context = mail_context(event, person, unsubscribe_url=unsubscribe_url, days_before=config().reminder_days_before)
    await write_behind(QueryString(_TOKEN_UNLESS_QUEUED, person_id, digest(raw_token), now, outbox.key_of(key)))
    return await queue_mail(
        "reminder", to_email=person.email, to_name=person.name, locale=person.locale, context=context, key=key,
        due_at=due, group_key=group_key(event_id, person_id), headers=headers, behind=True,
    )


async def opt_out_token_valid(raw_token: str) -> bool:
    return await ReminderOptOutToken.exists().where(ReminderOptOutToken.token_hash == digest(raw_token))


async def unsubscribe(raw_token: str) -> dict[str, Any] | None:
    """One-click unsubscribe: no more reminders for the person, unsent ones withdrawn. None for an unknown token.
    Idempotent: a second click (or a mail client's repeated POST) changes nothing more."""
    async with write_transaction():
        token = await ReminderOptOutToken.select(ReminderOptOutToken.id, ReminderOptOutToken.person).where(
            ReminderOptOutToken.token_hash == digest(raw_token)
        ).first()
        if token is None:
            return None
        now = utcnow()
        await ReminderOptOutToken.update({ReminderOptOutToken.used_at: now}).where(
            (ReminderOptOutToken.id == token["id"]) & ReminderOptOutToken.used_at.is_null()
        )
        await Person.update({Person.reminders: False}).where(Person.id == token["person"])
        withdrawn = await OutboxMessage.update({OutboxMessage.status: "withdrawn"}).where(
            OutboxMessage.group_key.like(f"reminder:p{token['person']}:e%")
            & OutboxMessage.status.is_in(["queued", "awaiting_retry"])
        ).returning(OutboxMessage.id)
    return {"person_id": token["person"], "withdrawn": len(withdrawn)}
