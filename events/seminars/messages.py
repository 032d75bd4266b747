"""A coordinator's message to the people registered for an event: 「申込者へのお知らせ」.

- `recipients(event_id, audience) -> list[dict]`        who would get it (the confirmation step counts them)
- `send_message(event_id, *, actor, audience, subject, body) -> dict`   one mail each, in one transaction
- `messages_of(event_id, *, actor) -> list[dict]`       what was sent, newest first

Staff only. The message is stored, every mail goes through the outbox in the same transaction (idempotency key
`event-message:<message id>:<registration id>`, so nobody gets it twice), and the sending is audited with the
audience and the count. The subject is one line (no CR/LF reaches a mail header). Guardians are not written to
here: their mails come from events.consent.
"""

from __future__ import annotations

from typing import Any

from events import access, audit
from events.access import Actor
from events.db import aware, utcnow, write_transaction
from events.errors import Invalid, NotFound
from events.mail import queue_mail
from events.seminars.notices import event_context
from events.seminars.tables import (
    LIVE_STATES,
    MESSAGE_AUDIENCES,
    SEAT_HOLDING_STATES,
    Event,
    EventMessage,
    Registration,
)

MAX_SUBJECT = 120
MAX_BODY = 5000
AUDIENCE_STATES = {
    "all": tuple(s for s in LIVE_STATES if s not in ("attended", "no_show")),
    "seated": tuple(s for s in SEAT_HOLDING_STATES if s not in ("attended", "no_show")),
    "waiting": ("waitlisted", "applied", "offered"),
}
AUDIENCE_LABELS = {"all": "申し込んでいる全員", "seated": "参加が確定している方（同意待ち・返事待ちを含む）",
                   "waiting": "キャンセル待ち・抽選の結果待ちの方"}
assert set(AUDIENCE_STATES) == set(MESSAGE_AUDIENCES)


def _audience(value: str) -> str:
    if value not in MESSAGE_AUDIENCES:
        raise Invalid("送る相手を選んでください。", code="invalid_audience", field="audience")
    return value


def clean_message(subject: str, body: str) -> tuple[str, str]:
    subject = " ".join(str(subject or "").split())  # one line: no CR/LF, tabs or runs of spaces in a header
    body = str(body or "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip()
    if not subject:
        raise Invalid("件名を入力してください。", code="subject_required", field="subject")
    if len(subject) > MAX_SUBJECT:
        raise Invalid(f"件名は{MAX_SUBJECT}文字以内で入力してください。", code="subject_too_long", field="subject")
    if not body:
        raise Invalid("本文を入力してください。", code="body_required", field="body")
    if len(body) > MAX_BODY:
        raise Invalid(f"本文は{MAX_BODY}文字以内で入力してください。", code="body_too_long", field="body")
    return subject, body


async def recipients(event_id: int, audience: str) -> list[dict[str, Any]]:
    return await Registration.select(
        Registration.id, Registration.person.email.as_alias("email"), Registration.person.name.as_alias("name"),
        Registration.person.locale.as_alias("locale"),
    ).where((Registration.event == event_id) & Registration.status.is_in(list(AUDIENCE_STATES[_audience(audience)]))
            & (Registration.person.active == True)).order_by(Registration.id)  # noqa: E712 - a SQL comparison


async def send_message(event_id: int, *, actor: Actor, audience: str, subject: str, body: str) -> dict[str, Any]:
    access.require_staff(actor)
    subject, body = clean_message(subject, body)
    async with write_transaction():
        event = await Event.select().where(Event.id == event_id).first()
        if event is None:
            raise NotFound("イベントが見つかりません。", code="event_not_found")
        for key in ("starts_at", "ends_at"):
            event[key] = aware(event[key])
        people = await recipients(event_id, audience)
        row = (await EventMessage.insert(EventMessage(
            event=event_id, audience=audience, subject=subject, body=body, recipients=len(people),
            sent_by=actor.person_id, sent_at=utcnow())).returning(EventMessage.id))[0]
        for person in people:
            await queue_mail("seminar_message", to_email=person["email"], to_name=person["name"],
                             locale=person["locale"], key=f"event-message:{row['id']}:{person['id']}",
                             context={**event_context(event, person["locale"]), "message_subject": subject,
                                      "message_body": body, "registration_id": person["id"]})
        await audit.record(actor, "event_message_sent", subject_type="event", subject_id=event_id,
                           detail={"message_id": row["id"], "audience": audience, "recipients": len(people)})
    return {"id": row["id"], "event_id": event_id, "audience": audience, "subject": subject, "recipients": len(people)}


async def messages_of(event_id: int, *, actor: Actor) -> list[dict[str, Any]]:
    access.require_staff(actor)
    rows = await EventMessage.select(
        EventMessage.id, EventMessage.audience, EventMessage.subject, EventMessage.body, EventMessage.recipients,
        EventMessage.sent_at, EventMessage.sent_by.name.as_alias("sent_by_name"),
    ).where(EventMessage.event == event_id).order_by(EventMessage.id, ascending=False)
    return [{**r, "sent_at": aware(r["sent_at"])} for r in rows]
