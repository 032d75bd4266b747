"""Both sides answer an offered visit; a slot's confirmed visit becomes a private home_visit Event.

A slot's visit is confirmed when its accepted matches form a safe group (no minor alone). Then a
private Event (venue = district only) holds one confirmed Registration per student, `Event.taken`
equals their number, and "registration.confirmed" / "registration.cancelled" are emitted so the
invites and feedback areas follow. Everything runs in the caller's write transaction.
"""

from __future__ import annotations

from typing import Any

from events import hooks
from events.config import config
from events.core.tables import Person
from events.db import is_sqlite, raw, utcnow, write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.mail import queue_mail
from events.seminars.tables import Event, Registration
from events.visits.tables import LIVE_MATCH_STATES, VisitMatch, VisitSlot

SIDES = ("student", "family")


async def lock_slots(where: str, arg: int) -> None:
    """PostgreSQL row locks, always slots before matches (SQLite's BEGIN IMMEDIATE already serialises writers).

    Both answers to one match, or answers to two matches of one slot, must not interleave: each would
    see the other still pending, and two Events could be created for one slot.
    """
    if not is_sqlite():
        await raw(f"SELECT id FROM visit_slot WHERE {where} ORDER BY id FOR UPDATE", arg)


def _context_columns() -> tuple:
    return (
        VisitMatch.all_columns(),
        VisitMatch.student.name.as_alias("student_name"), VisitMatch.student.email.as_alias("student_email"),
        VisitMatch.student.locale.as_alias("student_locale"),
        VisitMatch.household.person.as_alias("family_person"),
        VisitMatch.household.person.name.as_alias("family_name"),
        VisitMatch.household.person.email.as_alias("family_email"),
        VisitMatch.household.person.locale.as_alias("family_locale"),
        VisitMatch.household.display_name.as_alias("household_name"),
        VisitMatch.household.district.as_alias("district"),
        VisitMatch.slot.starts_at.as_alias("starts_at"), VisitMatch.slot.ends_at.as_alias("ends_at"),
        VisitMatch.slot.event.as_alias("event_id"), VisitMatch.request.is_minor.as_alias("is_minor"),
        VisitMatch.round.name.as_alias("round_name"), VisitMatch.round.created_by.as_alias("coordinator"),
    )


async def _match_context(match_id: int) -> dict[str, Any]:
    row = await VisitMatch.select(*_context_columns()).where(VisitMatch.id == match_id).first()
    if row is None:
        raise NotFound("その訪問は見つかりません。", code="match_not_found")
    return row


def _common(row: dict[str, Any]) -> dict[str, Any]:
    return {"round_name": row["round_name"], "district": row["district"], "starts_at": row["starts_at"],
            "ends_at": row["ends_at"], "link": f"{config().base_url}/visits/my"}


async def tell_offers(proposal_id: int) -> None:
    """Mail each newly offered student, and each host family once, asking them to confirm or decline."""
    rows = await VisitMatch.select(*_context_columns()).where(
        (VisitMatch.proposal == proposal_id) & (VisitMatch.status == "confirmed_by_coordinator")).order_by(
        VisitMatch.id)
    by_family: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        await queue_mail("visit_offer", to_email=row["student_email"], to_name=row["student_name"],
                         locale=row["student_locale"], context={**_common(row), "side": "student"},
                         key=f"visit-offer:{row['id']}:student")
        by_family.setdefault(row["family_person"], []).append(row)
    for family_rows in by_family.values():
        first = family_rows[0]
        visits = sorted({(r["starts_at"], r["ends_at"]) for r in family_rows})
        await queue_mail("visit_offer", to_email=first["family_email"], to_name=first["family_name"],
                         locale=first["family_locale"],
                         context={**_common(first), "side": "family", "students": len(family_rows), "visits": visits},
                         key=f"visit-offer:{proposal_id}:family:{first['family_person']}")


async def tell_cancelled(match_id: int, *, reason: str) -> None:
    """A live visit is off (re-match, or the group is no longer safe): both sides are told."""
    row = await _match_context(match_id)
    for side, email, name, locale in (("student", row["student_email"], row["student_name"], row["student_locale"]),
                                      ("family", row["family_email"], row["family_name"], row["family_locale"])):
        await queue_mail("visit_cancelled", to_email=email, to_name=name, locale=locale,
                         context={**_common(row), "side": side, "reason": reason},
                         key=f"visit-cancelled:{match_id}:{side}:{reason}:{utcnow().isoformat()}")


async def respond(match_id: int, person_id: int, *, side: str, accept: bool) -> str:
    """A student or host family accepts or declines an offered visit; returns the match status."""
    if side not in SIDES:
        raise Invalid("回答者の種別が正しくありません。", code="invalid_side")
    async with write_transaction():
        await lock_slots("id = (SELECT slot FROM visit_match WHERE id = {})", match_id)
        row = await _match_context(match_id)
        owner = row["student"] if side == "student" else row["family_person"]
        if owner != person_id or row["status"] not in (*LIVE_MATCH_STATES, "declined"):
            raise NotFound("その訪問は見つかりません。", code="match_not_found")
        column = VisitMatch.student_response if side == "student" else VisitMatch.family_response
        mine = row["student_response" if side == "student" else "family_response"]
        if row["status"] == "declined":
            if not accept and mine == "declined":
                return "declined"  # the same answer twice changes nothing
            raise Conflict("この訪問は既に取りやめになっています。", code="match_declined")
        now = utcnow()
        if accept:
            if mine == "accepted":
                return row["status"]
            other = row["family_response" if side == "student" else "student_response"]
            status = "accepted" if other == "accepted" else row["status"]
            await VisitMatch.update({column: "accepted", VisitMatch.status: status, VisitMatch.responded_at: now}).where(
                VisitMatch.id == match_id)
            if status == "accepted":
                await sync_slot_visit(row["slot"])
            return status
        await VisitMatch.update({column: "declined", VisitMatch.status: "declined",
                                 VisitMatch.responded_at: now}).where(VisitMatch.id == match_id)
        await _tell_declined(row, by=side)
        await sync_slot_visit(row["slot"])
        return "declined"


async def _tell_declined(row: dict[str, Any], *, by: str) -> None:
    other_side = "family" if by == "student" else "student"
    email, name, locale = ((row["family_email"], row["family_name"], row["family_locale"]) if other_side == "family"
                           else (row["student_email"], row["student_name"], row["student_locale"]))
    context = {**_common(row), "side": other_side, "by": by}
    await queue_mail("visit_declined", to_email=email, to_name=name, locale=locale, context=context,
                     key=f"visit-declined:{row['id']}:{other_side}")
    if row["coordinator"]:
        coordinator = await Person.select(Person.email, Person.name, Person.locale).where(
            Person.id == row["coordinator"]).first()
        if coordinator:
            await queue_mail("visit_declined", to_email=coordinator["email"], to_name=coordinator["name"],
                             locale=coordinator["locale"],
                             context={**context, "side": "coordinator", "student_name": row["student_name"],
                                      "household_name": row["household_name"],
                                      "link": f"{config().base_url}/visits/admin/rounds/{row['round']}"},
                             key=f"visit-declined:{row['id']}:coordinator")


async def sync_slot_visit(slot_id: int) -> None:
    """Make the slot's private Event and Registrations match its accepted, safe group of students."""
    slot = await VisitSlot.select(
        VisitSlot.all_columns(), VisitSlot.household.district.as_alias("district"),
        VisitSlot.household.person.as_alias("family_person"), VisitSlot.round.name.as_alias("round_name"),
    ).where(VisitSlot.id == slot_id).first()
    matches = await VisitMatch.select(
        VisitMatch.id, VisitMatch.student, VisitMatch.status, VisitMatch.registration,
        VisitMatch.request.is_minor.as_alias("is_minor"),
        VisitMatch.registration.status.as_alias("registration_status"),
    ).where(VisitMatch.slot == slot_id)
    accepted = [m for m in matches if m["status"] == "accepted"]
    safe = bool(accepted) and (len(accepted) >= 2 or not any(m["is_minor"] for m in accepted))
    target = {m["id"] for m in accepted} if safe else set()
    now = utcnow()
    event_id = slot["event"]
    newly_confirmed: list[int] = []
    for m in matches:
        if m["registration_status"] == "confirmed" and m["id"] not in target:
            await Registration.update({Registration.status: "cancelled", Registration.cancelled_at: now,
                                       Registration.updated_at: now}).where(Registration.id == m["registration"])
            await raw("UPDATE event SET taken = taken - 1, updated_at = {} WHERE id = {} AND taken > 0", now,
                      event_id)
            await hooks.emit("registration.cancelled", registration_id=m["registration"], event_id=event_id,
                             person_id=m["student"], was_confirmed=True)
            if m["status"] == "accepted":  # still willing, but the group is no longer safe
                await tell_cancelled(m["id"], reason="companion")
    for m in accepted:
        if m["id"] in target and m["registration_status"] != "confirmed":
            if event_id is None:
                event_id = await _create_event(slot, now)
            await Event.update({Event.status: "published", Event.updated_at: now}).where(
                (Event.id == event_id) & (Event.status == "cancelled"))
            taken = await raw("UPDATE event SET taken = taken + 1, updated_at = {} WHERE id = {} AND taken < capacity "
                              "RETURNING id", now, event_id)
            if not taken:
                raise Conflict("この枠は満員です。", code="slot_full")
            row = await Registration.insert(Registration(
                event=event_id, person=m["student"], status="confirmed", created_at=now, updated_at=now,
                confirmed_at=now,
            )).returning(Registration.id)
            await VisitMatch.update({VisitMatch.registration: row[0]["id"]}).where(VisitMatch.id == m["id"])
            await hooks.emit("registration.confirmed", registration_id=row[0]["id"], event_id=event_id,
                             person_id=m["student"])
            newly_confirmed.append(m["id"])
    if event_id is not None and not target:
        stopped = await Event.update({Event.status: "cancelled", Event.updated_at: now}).where(
            (Event.id == event_id) & (Event.status == "published")).returning(Event.id)
        if stopped:  # the host family's invite is cancelled by the invites area
            await hooks.emit("event.cancelled", event_id=event_id)
    for match_id in newly_confirmed:
        await _tell_confirmed(match_id, event_id)


async def _create_event(slot: dict[str, Any], now: Any) -> int:
    district = slot["district"]
    row = await Event.insert(Event(
        kind="home_visit", visibility="private", status="published", title=f"家庭訪問（{district}）",
        title_en=f"Home visit ({district})", description=f"{slot['round_name']}", venue=district, venue_en=district,
        starts_at=slot["starts_at"], ends_at=slot["ends_at"], capacity=slot["capacity"], taken=0,
        audience="students", series=f"visit-round-{slot['round']}", created_at=now, updated_at=now,
    )).returning(Event.id)
    event_id = row[0]["id"]
    await VisitSlot.update({VisitSlot.event: event_id}).where(VisitSlot.id == slot["id"])
    return event_id


async def _tell_confirmed(match_id: int, event_id: int) -> None:
    """Both sides are told, each mail carrying its calendar invite (the host family gets one too)."""
    row = await _match_context(match_id)
    context = _common(row)
    student_invite = await hooks.invite_for(event_id=event_id, person_id=row["student"])
    await queue_mail("visit_confirmed", to_email=row["student_email"], to_name=row["student_name"],
                     locale=row["student_locale"], context={**context, "side": "student"},
                     key=f"visit-confirmed:{match_id}:{event_id}:student:{row['registration']}",
                     calendar=student_invite)
    family_invite = await hooks.invite_for(event_id=event_id, person_id=row["family_person"])
    await queue_mail("visit_confirmed", to_email=row["family_email"], to_name=row["family_name"],
                     locale=row["family_locale"],
                     context={**context, "side": "family", "student_name": row["student_name"]},
                     key=f"visit-confirmed:{match_id}:{event_id}:family:{row['registration']}", calendar=family_invite)


async def host_of_event(event_id: int) -> list[int]:
    """The host family of a confirmed home visit (for follow-up surveys and calendars); [] for other events."""
    rows = await VisitSlot.select(VisitSlot.household.person.as_alias("person")).where(
        (VisitSlot.event == event_id) & VisitSlot.event.status.is_in(["published", "completed"]))
    return [row["person"] for row in rows]


# ------------------------------------------------------------------------- what each side sees


async def matches_of_student(student_id: int) -> list[dict[str, Any]]:
    """The student's offered/confirmed/declined visits: district and time only (the address is separate)."""
    rows = await VisitMatch.select(
        VisitMatch.id, VisitMatch.status, VisitMatch.student_response, VisitMatch.family_response,
        VisitMatch.household, VisitMatch.household.district.as_alias("district"),
        VisitMatch.slot.starts_at.as_alias("starts_at"), VisitMatch.slot.ends_at.as_alias("ends_at"),
        VisitMatch.round.name.as_alias("round_name"), VisitMatch.registration.status.as_alias("registration_status"),
    ).where((VisitMatch.student == student_id)
            & VisitMatch.status.is_in([*LIVE_MATCH_STATES, "declined", "cancelled"])).order_by(
        VisitMatch.id, ascending=False)
    for row in rows:
        row["visit_confirmed"] = row["registration_status"] == "confirmed" and row["status"] == "accepted"
    return rows


async def matches_of_family(person_id: int) -> list[dict[str, Any]]:
    """The family's offered/confirmed visits: who is coming (name and school year), never unmatched students."""
    rows = await VisitMatch.select(
        VisitMatch.id, VisitMatch.status, VisitMatch.student_response, VisitMatch.family_response,
        VisitMatch.student, VisitMatch.student.name.as_alias("student_name"),
        VisitMatch.request.is_minor.as_alias("is_minor"), VisitMatch.slot,
        VisitMatch.slot.starts_at.as_alias("starts_at"), VisitMatch.slot.ends_at.as_alias("ends_at"),
        VisitMatch.round.name.as_alias("round_name"), VisitMatch.registration.status.as_alias("registration_status"),
    ).where((VisitMatch.household.person == person_id)
            & VisitMatch.status.is_in([*LIVE_MATCH_STATES, "declined", "cancelled"])).order_by(
        VisitMatch.slot.starts_at).order_by(VisitMatch.id)
    for row in rows:
        row["visit_confirmed"] = row["registration_status"] == "confirmed" and row["status"] == "accepted"
    return rows


async def match_of(match_id: int, person_id: int, *, side: str) -> dict[str, Any]:
    """A match seen by one of its two sides (NotFound for anyone else: no hint that it exists)."""
    row = await VisitMatch.select(
        VisitMatch.id, VisitMatch.student, VisitMatch.household, VisitMatch.status,
        VisitMatch.household.person.as_alias("family_person"),
    ).where(VisitMatch.id == match_id).first()
    owner = None if row is None else row["student"] if side == "student" else row["family_person"]
    if row is None or owner != person_id or row["status"] in ("proposed", "superseded"):
        raise NotFound("その訪問は見つかりません。", code="match_not_found")
    return row
