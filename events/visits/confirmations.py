"""Both sides answer an offered visit; a slot's confirmed visit becomes a private home_visit Event.

A slot's visit is confirmed for the accepted students the safeguarding rule lets go together
(events.safeguarding.may_confirm: never a minor alone). Their places on the slot's private Event (venue =
district only) are the place ledger's (events.places, source `match`); the ledger keeps the invariant
afterwards, and this module follows its changes (`on_place_changed`): a place ended elsewhere declines the
match, a place put on hold marks it `on_hold` for the coordinator. It also answers the kernel's questions
about visits (`signals.VISIT_HOST`, `VISIT_MATCHED`, `EVENT_MEMBERS`). Everything runs in the caller's
write transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events import access, audit, consent, places, safeguarding, signals, timefmt
from events.access import Actor
from events.config import config
from events.core.tables import Person
from events.db import is_sqlite, raw, utcnow, write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.mail import queue_mail
from events.seminars.tables import SEAT_HOLDING_STATES, Event, Registration
from events.visits import guardians, requests
from events.visits.states import visit_state
from events.visits.tables import LIVE_MATCH_STATES, VisitMatch, VisitSlot

SIDES = ("student", "family")
MAX_REASON = 1000


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


def _common(row: dict[str, Any], locale: str = "ja") -> dict[str, Any]:
    return {"round_name": row["round_name"], "district": row["district"], "starts_at": row["starts_at"],
            "ends_at": row["ends_at"], "when": timefmt.span(row["starts_at"], row["ends_at"], locale),
            "link": f"{config().base_url}/visits/my"}


def _reason(text: str, *, required: bool) -> str:
    reason = " ".join((text or "").split())
    if required and not reason:
        raise Invalid("理由を入力してください（お知らせするメールに記載されます）。", code="reason_required",
                      field="reason")
    if len(reason) > MAX_REASON:
        raise Invalid(f"理由は{MAX_REASON}文字以内で入力してください。", code="too_long", field="reason")
    return reason


async def tell_offers(proposal_id: int, *, moved: Mapping[int, int] | None = None) -> None:
    """Mail each newly offered student, and each host family once, asking them to confirm or decline. `moved`
    maps a student to the live match the offer replaces: a minor's guardian gets one mail saying what changed."""
    rows = await VisitMatch.select(*_context_columns()).where(
        (VisitMatch.proposal == proposal_id) & (VisitMatch.status == "confirmed_by_coordinator")).order_by(
        VisitMatch.id)
    by_family: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        await queue_mail("visit_offer", to_email=row["student_email"], to_name=row["student_name"],
                         locale=row["student_locale"], context={**_common(row, row["student_locale"]),
                                                                "side": "student"},
                         key=f"visit-offer:{row['id']}:student")
        await guardians.tell(row["id"], "matched", previous=(moved or {}).get(row["student"]))
        by_family.setdefault(row["family_person"], []).append(row)
    for family_rows in by_family.values():
        first = family_rows[0]
        locale = first["family_locale"]
        visits = [timefmt.span(start, end, locale)
                  for start, end in sorted({(r["starts_at"], r["ends_at"]) for r in family_rows})]
        await queue_mail("visit_offer", to_email=first["family_email"], to_name=first["family_name"],
                         locale=locale,
                         context={**_common(first, locale), "side": "family", "students": len(family_rows),
                                  "visits": visits},
                         key=f"visit-offer:{proposal_id}:family:{first['family_person']}")


async def tell_cancelled(match_id: int, *, reason: str, note: str = "", guardian: bool = True) -> None:
    """A live visit is off (re-match, cancelled by the ward, or no longer safe): both sides are told, and the
    guardian of a minor (a hold is the safeguarding rule's own mail to the guardian; a re-match that offers the
    minor another visit tells the guardian in that offer's mail: `guardian` False). `note` is the ward's
    reason, quoted in the mails."""
    row = await _match_context(match_id)
    for side, email, name, locale in (("student", row["student_email"], row["student_name"], row["student_locale"]),
                                      ("family", row["family_email"], row["family_name"], row["family_locale"])):
        await queue_mail("visit_cancelled", to_email=email, to_name=name, locale=locale,
                         context={**_common(row, locale), "side": side, "reason": reason, "note": note,
                                  "student_name": row["student_name"]},
                         key=f"visit-cancelled:{match_id}:{side}:{reason}:{utcnow().isoformat()}")
    if reason != "hold" and guardian:
        await guardians.tell(match_id, "cancelled", reason=reason, note=note)


async def respond(match_id: int, person_id: int, *, side: str, accept: bool, reason: str = "") -> str:
    """A student or host family accepts or declines an offered visit; returns the match status. A decline's
    reason (optional here; the pages ask for it) goes to the coordinator only."""
    if side not in SIDES:
        raise Invalid("回答者の種別が正しくありません。", code="invalid_side")
    reason = _reason(reason, required=False)
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
        await _tell_declined([row], by=side, reason=reason)
        await sync_slot_visit(row["slot"])
        return "declined"


async def respond_slot(slot_id: int, person_id: int, *, accept: bool, reason: str = "") -> dict[str, Any]:
    """The host family answers once for a slot, for every student offered to it there: one confirmation, one
    sync of the visit (so one confirmation mail), or one decline for all (the reason goes to the coordinator).
    Returns {"slot", "answered", "status"}."""
    reason = _reason(reason, required=False)
    async with write_transaction():
        await lock_slots("id = {}", slot_id)
        ids = [r["id"] for r in await VisitMatch.select(VisitMatch.id).where(
            (VisitMatch.slot == slot_id) & (VisitMatch.household.person == person_id)
            & VisitMatch.status.is_in(list(LIVE_MATCH_STATES))).order_by(VisitMatch.id)]
        if not ids:
            raise NotFound("その訪問は見つかりません。", code="match_not_found")
        rows = [await _match_context(match_id) for match_id in ids]
        now = utcnow()
        if accept:
            pending = [r for r in rows if r["family_response"] != "accepted"]
            for row in pending:
                status = "accepted" if row["student_response"] == "accepted" else row["status"]
                await VisitMatch.update({VisitMatch.family_response: "accepted", VisitMatch.status: status,
                                         VisitMatch.responded_at: now}).where(VisitMatch.id == row["id"])
            if pending:
                await sync_slot_visit(slot_id)
            return {"slot": slot_id, "answered": len(pending), "status": "accepted"}
        await VisitMatch.update({VisitMatch.family_response: "declined", VisitMatch.status: "declined",
                                 VisitMatch.responded_at: now}).where(VisitMatch.id.is_in(ids))
        await _tell_declined(rows, by="family", reason=reason)
        await sync_slot_visit(slot_id)
        return {"slot": slot_id, "answered": len(rows), "status": "declined"}


async def _tell_declined(rows: list[dict[str, Any]], *, by: str, reason: str = "") -> None:
    """One side declined these matches (all of one slot): the other side of each is told, the guardian of a
    minor too, and the round's coordinator once, with the reason."""
    row = rows[0]
    for item in rows:
        if by == "student":
            email, name, locale = item["family_email"], item["family_name"], item["family_locale"]
        else:
            email, name, locale = item["student_email"], item["student_name"], item["student_locale"]
        other_side = "family" if by == "student" else "student"
        await queue_mail("visit_declined", to_email=email, to_name=name, locale=locale,
                         context={**_common(item, locale), "side": other_side, "by": by, "reason": ""},
                         key=f"visit-declined:{item['id']}:{other_side}")
        await guardians.tell(item["id"], "cancelled", reason=f"declined_by_{by}")
    if row["coordinator"]:
        coordinator = await Person.select(Person.email, Person.name, Person.locale).where(
            Person.id == row["coordinator"]).first()
        if coordinator:
            locale = coordinator["locale"]
            await queue_mail("visit_declined", to_email=coordinator["email"], to_name=coordinator["name"],
                             locale=locale,
                             context={**_common(row, locale), "side": "coordinator", "by": by, "reason": reason,
                                      "student_name": "、".join(r["student_name"] for r in rows),
                                      "household_name": row["household_name"],
                                      "link": f"{config().base_url}/visits/admin/rounds/{row['round']}"},
                             key=f"visit-declined:{row['id']}:coordinator")


async def cancel_visit(match_id: int, actor: Actor, *, reason: str) -> dict[str, Any]:
    """A coordinator calls off an offered or confirmed visit: the reason is required (both sides and the
    guardian of a minor are told it); the place ends through the ledger, which keeps the others safe."""
    access.require_staff(actor)
    reason = _reason(reason, required=True)
    async with write_transaction():
        await lock_slots("id = (SELECT slot FROM visit_match WHERE id = {})", match_id)
        row = await _match_context(match_id)
        if row["status"] not in LIVE_MATCH_STATES:
            raise Conflict("この訪問は既に取りやめ、または終了しています。", code="match_not_live")
        await VisitMatch.update({VisitMatch.status: "cancelled", VisitMatch.responded_at: utcnow()}).where(
            VisitMatch.id == match_id)
        await tell_cancelled(match_id, reason="coordinator", note=reason)
        await sync_slot_visit(row["slot"], by=actor.person_id)
        await audit.record(actor, "visit_cancelled", subject_type="visit_match", subject_id=match_id,
                           detail={"round": row["round"], "student": row["student"], "reason": reason})
    return {"id": match_id, "round": row["round"], "status": "cancelled"}


async def _slot(slot_id: int) -> dict[str, Any]:
    return await VisitSlot.select(
        VisitSlot.all_columns(), VisitSlot.household.district.as_alias("district"),
        VisitSlot.household.person.as_alias("family_person"), VisitSlot.household.vetted_until.as_alias("vetted_until"),
        VisitSlot.round.name.as_alias("round_name"),
    ).where(VisitSlot.id == slot_id).first()


async def sync_slot_visit(slot_id: int, *, by: int | None = None) -> None:
    """Make the slot's private Event and its places follow the slot's accepted matches (caller's transaction).

    Who of the accepted students may be confirmed together is the safeguarding rule's (`may_confirm`): adults
    first, then consented minors once an adult holds a place. Places of matches no longer accepted end; if
    that leaves a minor alone, the ledger's invariant puts that visit on hold. Places go through the ledger
    (events.places) only."""
    slot = await _slot(slot_id)
    matches = await VisitMatch.select(
        VisitMatch.id, VisitMatch.student, VisitMatch.status, VisitMatch.request, VisitMatch.registration,
        VisitMatch.registration.status.as_alias("registration_status"),
    ).where(VisitMatch.slot == slot_id).order_by(VisitMatch.id)
    day = timefmt.tokyo_date(slot["starts_at"])
    before = {m["id"]: m["student"] for m in matches if m["registration_status"] in SEAT_HOLDING_STATES}
    accepted = [m for m in matches if m["status"] == "accepted"]
    minors = await consent.minors_among([m["student"] for m in accepted], day)
    consents = await consent.states_of(requests.CONSENT_SUBJECT, [m["request"] for m in accepted])
    candidates = [safeguarding.Visitor(m["id"], m["student"], m["student"] in minors,
                                       consents.get(m["request"]) == "given") for m in accepted]
    target = safeguarding.may_confirm(candidates, vetted_until=slot["vetted_until"], day=day)
    event_id = slot["event"]
    for m in matches:  # places whose match is no longer accepted end first
        if m["registration_status"] in SEAT_HOLDING_STATES and m["status"] != "accepted":
            await places.end(m["registration"], reason="visit_regrouped", by=by)
    order = sorted((c for c in candidates if c.key in target), key=lambda c: c.minor)  # adults before minors
    by_id = {m["id"]: m for m in matches}
    newly_confirmed: list[int] = []
    for candidate in order:
        m = by_id[candidate.key]
        if m["registration_status"] in SEAT_HOLDING_STATES:
            continue
        if event_id is None:
            event_id = await _create_event(slot, utcnow())
        await Event.update({Event.status: "published", Event.updated_at: utcnow()}).where(
            (Event.id == event_id) & (Event.status == "cancelled"))
        row = await places.place(event_id, m["student"], source=places.Source.MATCH, reason="visit_confirmed",
                                 registered_by=by)
        await VisitMatch.update({VisitMatch.registration: row["id"]}).where(VisitMatch.id == m["id"])
        newly_confirmed.append(m["id"])
    if event_id is not None:
        await _close_if_empty(event_id)
    if newly_confirmed:
        await _tell_confirmed(slot, newly_confirmed, event_id)
    await _tell_group_changed(slot, before, set(newly_confirmed))


async def _holding(slot_id: int) -> list[dict[str, Any]]:
    """The slot's matches whose student holds a place now."""
    return await VisitMatch.select(VisitMatch.id, VisitMatch.student).where(
        (VisitMatch.slot == slot_id) & (VisitMatch.status == "accepted")
        & VisitMatch.registration.status.is_in(list(SEAT_HOLDING_STATES))).order_by(VisitMatch.id)


async def _tell_group_changed(slot: dict[str, Any], before: dict[int, int], newly: set[int]) -> None:
    """A minor's visit stayed confirmed while the adults going with them changed: the guardian is told who goes
    now. (A minor left without any adult is the safeguarding hold's, with its own mails.)"""
    after = {m["id"]: m["student"] for m in await _holding(slot["id"])}
    stayed = (set(after) & set(before)) - newly
    if not stayed or after == before:
        return
    minors = await consent.minors_among({*before.values(), *after.values()}, timefmt.tokyo_date(slot["starts_at"]))
    adults_before = {s for s in before.values() if s not in minors}
    adults_after = {s for s in after.values() if s not in minors}
    if adults_before == adults_after:
        return
    for match_id in sorted(stayed):
        if after[match_id] in minors:
            await guardians.tell(match_id, "changed", key=",".join(map(str, sorted(adults_after))))


async def _create_event(slot: dict[str, Any], now: Any) -> int:
    district = slot["district"]
    row = await Event.insert(Event(
        kind="home_visit", visibility="private", status="published", title=f"家庭訪問（{district}）",
        title_en=f"Home visit ({district})", description=f"{slot['round_name']}", venue=district, venue_en=district,
        starts_at=slot["starts_at"], ends_at=slot["ends_at"], capacity=slot["capacity"],
        audience="students", series=f"visit-round-{slot['round']}", created_at=now, updated_at=now,
    )).returning(Event.id)
    event_id = row[0]["id"]
    await VisitSlot.update({VisitSlot.event: event_id}).where(VisitSlot.id == slot["id"])
    return event_id


def visit_path(event_id: int) -> str:
    """signals.EVENT_PAGE["home_visit"]: a visit's calendar entry and mails link to the visit's own page."""
    return f"/visits/events/{event_id}"


def visit_link(event_id: int) -> str:
    return f"{config().base_url}{visit_path(event_id)}"


async def _tell_confirmed(slot: dict[str, Any], match_ids: list[int], event_id: int) -> None:
    """Each newly confirmed student is told (with the calendar invite), the guardian of a minor too; the host
    family gets one mail for the slot naming everyone now confirmed there (with its own invite) — worded as the
    visit's confirmation the first time, as "students added" when others were already confirmed there."""
    rows = [await _match_context(match_id) for match_id in match_ids]
    for row in rows:
        locale = row["student_locale"]
        invite = await signals.INVITE_PART.call(event_id=event_id, person_id=row["student"], method="REQUEST")
        await queue_mail("visit_confirmed", to_email=row["student_email"], to_name=row["student_name"],
                         locale=locale, context={**_common(row, locale), "side": "student", "added": [],
                                                 "link": visit_link(event_id)},
                         key=f"visit-confirmed:{row['id']}:{event_id}:student:{row['registration']}", calendar=invite)
        await guardians.tell(row["id"], "confirmed", key=str(row["registration"]))
    first = rows[0]
    holding = await _holding(slot["id"])
    names = {r["id"]: r["name"] for r in await Person.select(Person.id, Person.name).where(
        Person.id.is_in([m["student"] for m in holding] or [-1]))}
    locale = first["family_locale"]
    invite = await signals.INVITE_PART.call(event_id=event_id, person_id=first["family_person"], method="REQUEST")
    await queue_mail("visit_confirmed", to_email=first["family_email"], to_name=first["family_name"], locale=locale,
                     context={**_common(first, locale), "side": "family", "link": visit_link(event_id),
                              "student_names": [names[m["student"]] for m in holding if m["student"] in names],
                              "student_name": first["student_name"],
                              "added": [names[m["student"]] for m in holding
                                        if m["id"] in match_ids and m["student"] in names]
                              if len(holding) > len(match_ids) else []},
                     key=f"visit-confirmed:slot{slot['id']}:{event_id}:family:"
                         f"{','.join(str(r['registration']) for r in rows)}", calendar=invite)


async def host_of_event(event_id: int) -> list[int]:
    """The host family of a confirmed home visit (for follow-up surveys and calendars); [] for other events."""
    rows = await VisitSlot.select(VisitSlot.household.person.as_alias("person")).where(
        (VisitSlot.event == event_id) & VisitSlot.event.status.is_in(["published", "completed"]))
    return [row["person"] for row in rows]


async def members_of_event(event_id: int) -> set[int]:
    """signals.EVENT_MEMBERS: the host family belongs to its visit's event (it sees the event page)."""
    rows = await VisitSlot.select(VisitSlot.household.person.as_alias("person")).where(VisitSlot.event == event_id)
    return {row["person"] for row in rows}


async def visit_host(event_id: int) -> signals.VisitHost | None:
    """signals.VISIT_HOST: what the safeguarding invariant needs to know about the home of a visit event."""
    slot = await VisitSlot.select(
        VisitSlot.id, VisitSlot.round, VisitSlot.household, VisitSlot.household.person.as_alias("host"),
        VisitSlot.household.vetted_until.as_alias("vetted_until"),
        VisitSlot.household.display_name.as_alias("household_name"),
        VisitSlot.household.district.as_alias("district"), VisitSlot.round.created_by.as_alias("coordinator"),
    ).where(VisitSlot.event == event_id).first()
    if slot is None:
        return None
    matches = await VisitMatch.select(VisitMatch.student, VisitMatch.request).where(
        (VisitMatch.slot == slot["id"]) & (VisitMatch.status == "accepted"))
    states = await consent.states_of(requests.CONSENT_SUBJECT, [m["request"] for m in matches])
    return signals.VisitHost(
        household_id=slot["household"], host_person_id=slot["host"], slot_id=slot["id"], round_id=slot["round"],
        vetted_until=slot["vetted_until"], coordinator_id=slot["coordinator"],
        consented=frozenset(m["student"] for m in matches if states.get(m["request"]) == "given"),
        household_name=slot["household_name"], district=slot["district"],
    )


async def visit_matched(event_id: int, person_id: int) -> bool:
    """signals.VISIT_MATCHED: the person's match for this visit's slot is accepted by both sides."""
    return await VisitMatch.exists().where(
        (VisitMatch.slot.event == event_id) & (VisitMatch.student == person_id) & (VisitMatch.status == "accepted"))


async def on_place_changed(change: signals.PlaceChanged) -> None:
    """Follow the ledger on home-visit places this module did not end itself."""
    if change.event_kind != "home_visit" or change.new != "cancelled":
        return
    row = await VisitMatch.select(*_context_columns()).where(
        (VisitMatch.registration == change.registration_id) & (VisitMatch.status == "accepted")).first()
    if row is None:
        return
    now = utcnow()
    if change.reason == "safeguarding_hold":
        await VisitMatch.update({VisitMatch.status: "on_hold", VisitMatch.responded_at: now}).where(
            VisitMatch.id == row["id"])
        await tell_cancelled(row["id"], reason="hold")
    elif change.reason in ("cancelled", "account_deleted"):  # the student (or a coordinator) ended the place
        by_student = change.by == row["student"] or change.reason == "account_deleted"
        if by_student:
            await VisitMatch.update({VisitMatch.status: "declined", VisitMatch.student_response: "declined",
                                     VisitMatch.responded_at: now}).where(VisitMatch.id == row["id"])
            await _tell_declined([row], by="student")
        else:
            await VisitMatch.update({VisitMatch.status: "cancelled", VisitMatch.responded_at: now}).where(
                VisitMatch.id == row["id"])
            await tell_cancelled(row["id"], reason="coordinator", note=str(change.detail.get("reason", "") or ""))
        # the minors still going are told who goes with them now (none left: the ledger's hold follows)
        for other in await _holding(row["slot"]):
            if other["id"] != row["id"]:
                await guardians.tell(other["id"], "changed", key=f"left:{row['id']}")
    await _close_if_empty(change.event_id)


async def _close_if_empty(event_id: int) -> None:
    if await Registration.exists().where(
        (Registration.event == event_id) & Registration.status.is_in(list(SEAT_HOLDING_STATES))
    ):
        return
    stopped = await Event.update({Event.status: "cancelled", Event.updated_at: utcnow()}).where(
        (Event.id == event_id) & (Event.status == "published")).returning(Event.id)
    if stopped:  # the host family's invite is cancelled by the invites area
        await signals.EVENT_CANCELLED.send(signals.EventCancelled(event_id=event_id))


# ------------------------------------------------------------------------- what each side sees


def _with_state(rows: list[dict[str, Any]], side: str) -> list[dict[str, Any]]:
    for row in rows:
        row["visit_confirmed"] = row["registration_status"] == "confirmed" and row["status"] == "accepted"
        row["state"] = visit_state({**row, "place_confirmed": row["visit_confirmed"]}, side)
    return rows


SHOWN = [*LIVE_MATCH_STATES, "declined", "cancelled", "on_hold"]


async def matches_of_student(student_id: int) -> list[dict[str, Any]]:
    """The student's offered/confirmed/declined visits: district and time only (the address is separate), with
    `state` true to both sides' answers (events.visits.states)."""
    rows = await VisitMatch.select(
        VisitMatch.id, VisitMatch.status, VisitMatch.student_response, VisitMatch.family_response,
        VisitMatch.household, VisitMatch.household.district.as_alias("district"), VisitMatch.slot,
        VisitMatch.slot.starts_at.as_alias("starts_at"), VisitMatch.slot.ends_at.as_alias("ends_at"),
        VisitMatch.slot.event.as_alias("event_id"),
        VisitMatch.round.name.as_alias("round_name"), VisitMatch.registration.status.as_alias("registration_status"),
    ).where((VisitMatch.student == student_id) & VisitMatch.status.is_in(SHOWN)).order_by(
        VisitMatch.id, ascending=False)
    return _with_state(rows, "student")


async def matches_of_family(person_id: int) -> list[dict[str, Any]]:
    """The family's offered/confirmed visits: who is coming (name and school year), never unmatched students."""
    rows = await VisitMatch.select(
        VisitMatch.id, VisitMatch.status, VisitMatch.student_response, VisitMatch.family_response,
        VisitMatch.student, VisitMatch.student.name.as_alias("student_name"),
        VisitMatch.request.is_minor.as_alias("is_minor"), VisitMatch.slot,
        VisitMatch.slot.starts_at.as_alias("starts_at"), VisitMatch.slot.ends_at.as_alias("ends_at"),
        VisitMatch.slot.event.as_alias("event_id"),
        VisitMatch.round.name.as_alias("round_name"), VisitMatch.registration.status.as_alias("registration_status"),
    ).where((VisitMatch.household.person == person_id) & VisitMatch.status.is_in(SHOWN)).order_by(
        VisitMatch.slot.starts_at).order_by(VisitMatch.id)
    return _with_state(rows, "family")


def group_by_slot(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The family's visits, one entry per slot: its students and whether the family still has to answer (one
    answer for the whole slot) or may still decline it."""
    slots: dict[int, dict[str, Any]] = {}
    for row in rows:
        entry = slots.setdefault(row["slot"], {
            "slot": row["slot"], "starts_at": row["starts_at"], "ends_at": row["ends_at"],
            "round_name": row["round_name"], "event_id": row["event_id"], "students": []})
        entry["students"].append(row)
    for entry in slots.values():
        live = [r for r in entry["students"] if r["status"] in LIVE_MATCH_STATES]
        entry["answer_needed"] = any(r["family_response"] != "accepted" for r in live)
        entry["may_decline"] = bool(live)
        entry["confirmed"] = [r for r in entry["students"] if r["visit_confirmed"]]
        entry["live"] = live
    return list(slots.values())


async def visit_of_event(event_id: int, person_id: int, *, side: str) -> dict[str, Any]:
    """The page a visit's calendar entry links to: the student's own match there, or the family's slot with its
    students (NotFound for anyone else)."""
    if side == "student":
        rows = [r for r in await matches_of_student(person_id) if r["event_id"] == event_id]
        if not rows:
            raise NotFound("その訪問は見つかりません。", code="visit_not_found")
        return {"side": side, "visit": rows[0]}
    groups = [g for g in group_by_slot(await matches_of_family(person_id)) if g["event_id"] == event_id]
    if not groups:
        raise NotFound("その訪問は見つかりません。", code="visit_not_found")
    return {"side": side, "slot": groups[0]}


async def slot_of_match(match_id: int) -> int:
    row = await VisitMatch.select(VisitMatch.slot).where(VisitMatch.id == match_id).first()
    if row is None:
        raise NotFound("その訪問は見つかりません。", code="match_not_found")
    return row["slot"]


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
