"""Invitations to a private event: the only way (besides a coordinator's counter registration) to hold a place
in an event that is not public (the place ledger checks it, events.places rule 3), and to see its page
(events.access).

- `invite(event_id, guests, *, actor) -> dict`   guests: [(email, name)]; a person not yet known is created
      (an adult without a role); each new invitation is mailed once with the event's link; audited.
- `invitations_of(event_id, *, actor) -> list[dict]`   who is invited and whether they registered (audited).
- `withdraw(event_id, person_id, *, actor) -> None`   the invitation ends; a live registration stays (a
      coordinator cancels it separately, with its own mail).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from events import access, audit, people
from events.access import Actor
from events.db import utcnow, write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.mail import queue_mail
from events.seminars.notices import event_context
from events.seminars.tables import LIVE_STATES, Event, EventInvitation, Registration

MAX_GUESTS = 500


def parse_guests(text: str) -> list[tuple[str, str]]:
    """One guest per line: `e-mail` or `e-mail, name` (a tab, a comma or a Japanese comma separates them)."""
    guests = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        for separator in ("\t", ",", "、", "，"):
            if separator in line:
                email, _, name = line.partition(separator)
                break
        else:
            email, name = line, ""
        try:
            guests.append((people.normalize_email(email), " ".join(name.split())))
        except Invalid:
            raise Invalid(f"{number}行目のメールアドレスの形式が正しくありません: {email.strip()[:60]}",
                          code="invalid_email", field="guests", line=number) from None
    return guests


async def invite(event_id: int, guests: Iterable[tuple[str, str]], *, actor: Actor) -> dict[str, int]:
    access.require_staff(actor)
    guests = list(dict((email, name) for email, name in guests).items())
    if not guests:
        raise Invalid("招待する方のメールアドレスを入力してください。", code="guests_required", field="guests")
    if len(guests) > MAX_GUESTS:
        raise Invalid(f"一度に招待できるのは{MAX_GUESTS}人までです。", code="too_many_guests", field="guests")
    invited = created = 0
    async with write_transaction():
        event = await Event.select().where(Event.id == event_id).first()
        if event is None:
            raise NotFound("そのイベントは見つかりません。", code="event_not_found")
        if event["visibility"] != "private":
            raise Conflict("招待は非公開のイベントだけで使えます。公開イベントはどなたでも申し込めます。",
                           code="event_not_private")
        if event["status"] in ("cancelled", "completed") or event["kind"] == "home_visit":
            raise Conflict("このイベントには招待できません。", code="event_not_invitable")
        for email, name in guests:
            person = await people.find_by_email(email)
            if person is None:
                person_id = await people.create_person(email, name or email.split("@")[0])
                created += 1
            else:
                person_id = person["id"]
            rows = await EventInvitation.insert(EventInvitation(
                event=event_id, person=person_id, invited_by=actor.person_id, created_at=utcnow(),
            )).on_conflict(action="DO NOTHING").returning(EventInvitation.id)
            if not rows:
                continue  # invited before: no second mail
            invited += 1
            found = await people.get_person(person_id)
            await queue_mail("seminar_invitation", to_email=found["email"], to_name=found["name"], locale=found["locale"],
                             context=event_context(event, found["locale"]), key=f"invitation:{rows[0]['id']}")
        await audit.record(actor, "invitation_sent", subject_type="event", subject_id=event_id,
                           detail={"invited": invited, "people_created": created})
    return {"invited": invited, "already": len(guests) - invited, "people_created": created}


async def invitations_of(event_id: int, *, actor: Actor) -> list[dict[str, Any]]:
    access.require_staff(actor)

    async def read() -> list[dict[str, Any]]:
        rows = await EventInvitation.select(
            EventInvitation.person, EventInvitation.created_at, EventInvitation.person.name.as_alias("name"),
            EventInvitation.person.email.as_alias("email"),
        ).where(EventInvitation.event == event_id).order_by(EventInvitation.id)
        live = {r["person"]: r["status"] for r in await Registration.select(Registration.person, Registration.status).where(
            (Registration.event == event_id) & Registration.status.is_in(list(LIVE_STATES)))}
        return [{**row, "registration_status": live.get(row["person"])} for row in rows]

    return await audit.viewed(actor, "staff_viewed_invitations", read, subject_type="event", subject_id=event_id,
                              detail=lambda rows: {"count": len(rows)})


async def withdraw(event_id: int, person_id: int, *, actor: Actor) -> None:
    access.require_staff(actor)
    async with write_transaction():
        removed = await EventInvitation.delete().where(
            (EventInvitation.event == event_id) & (EventInvitation.person == person_id)).returning(EventInvitation.id)
        if not removed:
            raise NotFound("その招待は見つかりません。", code="invitation_not_found")
        await audit.record(actor, "invitation_withdrawn", subject_type="event", subject_id=event_id,
                           detail={"person": person_id})
