"""The place ledger: the only code that writes `Event.taken` and `Registration.status`.

Every area that gives or ends a place — seminar registration, lottery draws, guardian consent, home-visit
confirmations, exchange sessions, demo loaders — calls this module; nothing else updates those two
columns (a test parses the code for other writers). The rules it keeps, each here and nowhere else:

1. **Seats never oversell.** `Event.taken` counts the registrations in a seat-holding state (confirmed,
   pending_consent, attended, no_show). It moves only together with a status change, by one conditional
   `UPDATE … SET taken = taken + 1 WHERE taken < capacity` (a CHECK backs it), never by check-then-insert.
2. **Every status change is a conditional UPDATE on the old status**, so two racing changes cannot both
   apply; the loser sees None (or the refusal its caller maps).
3. **Who may hold a place.** A home-visit event's places come only from an accepted match (the visits area
   vouches for it through `signals.VISIT_MATCHED`); a private event's only from an invitation, a
   coordinator or a match; a public event's from anyone the caller's own rules admit (window, audience).
4. **A minor's place waits for the guardian.** A seat given to a student under 18 on the day starts as
   pending_consent and the consent request goes out in the same transaction (events.consent); consent
   confirms it, refusal or expiry ends it. (A home visit's consent is the visit request's, given before any
   match; the safeguarding invariant keeps checking it.)
5. **A freed seat goes to the first in line** (waiting-list order) in the same transaction, unless the
   event is not published or is a lottery not yet drawn.
6. **Safeguarding holds at all times** on home-visit events: after every change there, the invariant of
   events.safeguarding is re-established in the same transaction (places that break it are ended with
   reason `safeguarding_hold`, and the people who must know are told).
7. **It runs only inside a write transaction** (`events.db.write_transaction`); anywhere else it raises.

Every change sends `signals.PLACE_CHANGED` after the event kind's notice (`signals.PLACE_NOTICE`: the one
mail the person gets), so invites, reminders, surveys and visit pages follow without writing a place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from events import consent, safeguarding, signals, timefmt
from events.config import config
from events.db import aware, in_write_transaction, is_sqlite, raw, utcnow
from events.errors import Conflict, Forbidden, NotFound
from events.seminars.tables import (
    LIVE_STATES,
    SEAT_HOLDING_STATES,
    Event,
    EventInvitation,
    Registration,
)

REGISTRATION_SUBJECT = "registration"


class Source(enum.StrEnum):
    """Where a place comes from (rule 3)."""

    SELF = "self"  # the person, on a public event (or a private one they are invited to)
    COORDINATOR = "coordinator"  # at the counter, on the phone, or a demo loader
    INVITATION = "invitation"  # an invited person on a private event
    MATCH = "match"  # an accepted home-visit match


class Full(Conflict):
    code = "capacity_exceeded"


def _require_transaction() -> None:
    if not in_write_transaction():
        raise RuntimeError("the place ledger runs only inside events.db.write_transaction()")


# ---------------------------------------------------------------- reading


async def event_row(event_id: int) -> dict[str, Any]:
    event = await Event.select().where(Event.id == event_id).first()
    if event is None:
        raise NotFound("そのイベントは見つかりません。", code="event_not_found")
    for key in ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at", "lottery_drawn_at"):
        event[key] = aware(event[key])
    return event


async def registration_row(registration_id: int) -> dict[str, Any]:
    row = await Registration.select().where(Registration.id == registration_id).output(load_json=True).first()
    if row is None:
        raise NotFound("その申込は見つかりません。", code="registration_not_found")
    return row


def event_day(event: Mapping[str, Any]):
    return timefmt.tokyo_date(event["starts_at"])


# ---------------------------------------------------------------- seats (rule 1)


async def _take_seat(event_id: int) -> bool:
    """The one atomic conditional write that holds a seat; no row back means the event is full."""
    rows = await raw(
        "UPDATE event SET taken = taken + 1 WHERE id = {} AND taken < capacity AND status = 'published' RETURNING taken",
        event_id,
    )
    return bool(rows)


async def _release_seat(event_id: int) -> None:
    await raw("UPDATE event SET taken = taken - 1 WHERE id = {} AND taken > 0", event_id)


async def lock_event(event_id: int) -> None:
    """PostgreSQL: serialise waiting-list appends per event (SQLite's IMMEDIATE transaction already does)."""
    if not is_sqlite():
        await raw("SELECT id FROM event WHERE id = {} FOR UPDATE", event_id)


async def _next_queue_position(event_id: int) -> int:
    await lock_event(event_id)
    rows = await raw("SELECT MAX(queue_position) AS top FROM registration WHERE event = {}", event_id)
    return int(rows[0]["top"] or 0) + 1 if rows else 1


# ---------------------------------------------------------------- who may hold a place (rule 3)


async def _may_hold(event: Mapping[str, Any], person_id: int, source: Source) -> None:
    if event["kind"] == "home_visit":
        matched = source == Source.MATCH and await signals.VISIT_MATCHED.call(event["id"], person_id, default=False)
        if not matched:
            raise Forbidden("家庭訪問の参加者は、マッチングで双方が参加を確定した方だけです。", code="visit_by_match_only")
        return
    if event.get("visibility", "public") == "public" or source in (Source.COORDINATOR, Source.MATCH):
        return
    invited = await EventInvitation.exists().where(
        (EventInvitation.event == event["id"]) & (EventInvitation.person == person_id))
    if not invited:  # the same answer as for an event that does not exist: no hint that it does
        raise NotFound("そのイベントは見つかりません。", code="event_not_found")


async def _seat_status(event: Mapping[str, Any], person_id: int) -> str:
    """confirmed, or pending_consent for a minor (rule 4; a home visit's consent came with the request)."""
    if event["kind"] != "home_visit" and await consent.needs_consent(person_id, event_day(event)):
        return "pending_consent"
    return "confirmed"


# ---------------------------------------------------------------- the one state change


async def _update_status(row: Mapping[str, Any], new: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """Conditional UPDATE on the old status (rule 2): None when someone else changed it first."""
    now = utcnow()
    update: dict[Any, Any] = {Registration.status: new, Registration.updated_at: now}
    if new == "confirmed" and row["status"] != "confirmed":
        update[Registration.confirmed_at] = now
    if new == "cancelled":
        update[Registration.cancelled_at] = now
    for key, value in values.items():
        update[getattr(Registration, key)] = value
    rows = await Registration.update(update).where(
        (Registration.id == row["id"]) & (Registration.status == row["status"])
    ).returning(*Registration.all_columns())
    return rows[0] if rows else None


async def _changed(row: Mapping[str, Any], event: Mapping[str, Any], old: str | None, *, reason: str,
                   by: int | None, detail: Mapping[str, Any] | None) -> None:
    change = signals.PlaceChanged(
        registration_id=row["id"], event_id=event["id"], person_id=row["person"], event_kind=event["kind"],
        old=old, new=row["status"], reason=reason, by=by, detail=dict(detail or {}),
    )
    notice = signals.PLACE_NOTICE.get(event["kind"])
    if notice is not None:
        await notice(change)
    await signals.PLACE_CHANGED.send(change)


async def _apply(row: Mapping[str, Any], event: Mapping[str, Any], new: str, *, reason: str, by: int | None = None,
                 detail: Mapping[str, Any] | None = None, keep_safe: bool = True,
                 **values: Any) -> dict[str, Any] | None:
    old = row["status"]
    held_before, held_after = old in SEAT_HOLDING_STATES, new in SEAT_HOLDING_STATES
    took = False
    if held_after and not held_before:
        if not await _take_seat(event["id"]):
            raise Full("満席のため席を確保できませんでした。")
        took = True
    updated = await _update_status(row, new, values)
    if updated is None:
        if took:
            await _release_seat(event["id"])
        return None
    if held_before and not held_after:
        await _release_seat(event["id"])
    subject = consent.Subject(REGISTRATION_SUBJECT, row["id"])
    if old == "pending_consent" and new == "cancelled":
        await consent.withdraw(subject)
    await _changed(updated, event, old, reason=reason, by=by, detail=detail)
    if new == "pending_consent" and old != "pending_consent":
        await consent.request(subject, row["person"], not_after=event["starts_at"])
    if held_before and not held_after:
        await promote(event["id"])
    if keep_safe and event["kind"] == "home_visit":
        await recheck(event["id"])
    return updated


# ---------------------------------------------------------------- public operations


async def place(event_id: int, person_id: int, *, source: Source, answers: Mapping[str, Any] | None = None,
                idempotency_key: str | None = None, registered_by: int | None = None, reason: str = "registered",
                waitlist: bool = True) -> dict[str, Any]:
    """Give the person a place: applied (a lottery not yet drawn), a seat, or the end of the waiting list.

    A UNIQUE index refuses a second live registration of the same person (the caller maps it)."""
    _require_transaction()
    event = await event_row(event_id)
    await _may_hold(event, person_id, source)
    queue_position = None
    if event["allocation"] == "lottery" and not event["lottery_drawn_at"] and event["kind"] != "home_visit":
        status = "applied"
    elif await _take_seat(event_id):
        status = await _seat_status(event, person_id)
    elif waitlist and event["kind"] != "home_visit" and event["status"] == "published":
        status = "waitlisted"
        queue_position = await _next_queue_position(event_id)
    elif event["status"] != "published":
        raise Conflict("このイベントは現在、申込を受け付けていません。", code="event_not_published")
    else:
        raise Full("満席のため席を確保できませんでした。")
    now = utcnow()
    rows = await Registration.insert(Registration(
        event=event_id, person=person_id, status=status, answers=dict(answers or {}), queue_position=queue_position,
        idempotency_key=idempotency_key, registered_by=registered_by, created_at=now, updated_at=now,
        confirmed_at=now if status == "confirmed" else None,
    )).returning(*Registration.all_columns())
    row = rows[0]
    await _changed(row, event, None, reason=reason, by=registered_by,
                   detail={"waitlist_rank": await waitlist_rank(event_id, queue_position)} if queue_position else None)
    if status == "pending_consent":
        await consent.request(consent.Subject(REGISTRATION_SUBJECT, row["id"]), person_id,
                              not_after=event["starts_at"])
    if event["kind"] == "home_visit":
        await recheck(event_id)
    return row


async def end(registration_id: int, *, reason: str, by: int | None = None,
              expect: tuple[str, ...] = LIVE_STATES, detail: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """A place or application ends (cancelled); its seat goes to the next in line. None if it was not in `expect`."""
    _require_transaction()
    row = await registration_row(registration_id)
    if row["status"] not in expect or row["status"] == "cancelled":
        return None
    return await _apply(row, await event_row(row["event"]), "cancelled", reason=reason, by=by, detail=detail)


async def move(registration_id: int, new: str, *, expect: tuple[str, ...], reason: str, by: int | None = None,
               detail: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Any other change (consent given: pending_consent → confirmed; attendance): None if not in `expect`."""
    _require_transaction()
    row = await registration_row(registration_id)
    if row["status"] not in expect:
        return None
    return await _apply(row, await event_row(row["event"]), new, reason=reason, by=by, detail=detail)


async def promote(event_id: int) -> list[int]:
    """Free seats go to the waiting list, first in line first (rule 5)."""
    _require_transaction()
    event = await event_row(event_id)
    if event["status"] != "published" or (event["allocation"] == "lottery" and not event["lottery_drawn_at"]):
        return []
    promoted: list[int] = []
    passed_over: list[int] = []
    while True:
        candidate = await Registration.select().where(
            (Registration.event == event_id) & (Registration.status == "waitlisted")
            & Registration.id.not_in(passed_over or [-1])
        ).order_by(Registration.queue_position).order_by(Registration.id).output(load_json=True).first()
        if candidate is None:
            return promoted
        status = await _seat_status(event, candidate["person"])
        if status == "pending_consent" and not (await consent.guardian_of(candidate["person"]))[0]:
            passed_over.append(candidate["id"])  # nobody to ask: the seat goes to the next in line, the minor waits
            continue
        try:
            updated = await _apply(candidate, event, status, reason="promoted")
        except Full:
            return promoted
        if updated is not None:
            promoted.append(candidate["id"])


async def end_all(event_id: int, *, reason: str, by: int | None = None, detail: Mapping[str, Any] | None = None) -> int:
    """The event is off: every live place and application ends, nobody is promoted."""
    _require_transaction()
    event = await event_row(event_id)
    rows = await Registration.select().where(
        (Registration.event == event_id) & Registration.status.is_in(list(LIVE_STATES))
    ).order_by(Registration.id).output(load_json=True)
    ended = 0
    for row in rows:
        if await _apply(row, {**event, "status": "cancelled"}, "cancelled", reason=reason, by=by, detail=detail,
                        keep_safe=False) is not None:
            ended += 1
    return ended


async def draw(event_id: int, winners: list[int], waitlist: list[int]) -> None:
    """A lottery's result: winners take seats (pending_consent for minors), the rest join the waiting list in
    draw order. Only applications (status applied) move."""
    _require_transaction()
    event = await event_row(event_id)
    for registration_id in winners:
        row = await registration_row(registration_id)
        if row["status"] == "applied":
            await _apply(row, event, await _seat_status(event, row["person"]), reason="lottery_won")
    base = await _next_queue_position(event_id)
    for offset, registration_id in enumerate(waitlist):
        row = await registration_row(registration_id)
        if row["status"] == "applied":
            await _apply(row, event, "waitlisted", reason="lottery_lost", detail={"waitlist_rank": offset + 1},
                         queue_position=base + offset)


async def recheck(event_id: int, *, by: int | None = None) -> list[int]:
    """Re-establish the safeguarding invariant on a home-visit event (rule 6); returns the places ended.

    Called after every change on such an event, and by whatever else can break the invariant (a guardian
    revoking consent, a household's vetting ending)."""
    _require_transaction()
    event = await event_row(event_id)
    if event["kind"] != "home_visit":
        return []
    held: list[int] = []
    for registration_id, reasons in (await safeguarding.unsafe_places(event)).items():
        row = await registration_row(registration_id)
        if row["status"] not in SEAT_HOLDING_STATES:
            continue
        updated = await _apply(row, event, "cancelled", reason="safeguarding_hold", by=by,
                               detail={"reasons": list(reasons)}, keep_safe=False)
        if updated is not None:
            held.append(registration_id)
            await safeguarding.tell_hold(event, updated, reasons)
    return held


async def waitlist_rank(event_id: int, queue_position: int | None) -> int | None:
    if queue_position is None:
        return None
    ahead = await Registration.count().where(
        (Registration.event == event_id) & (Registration.status == "waitlisted")
        & (Registration.queue_position < queue_position)
    )
    return ahead + 1


# ---------------------------------------------------------------- guardian consent for a registration


class _RegistrationConsent(consent.ConsentSubject):
    """Rule 4 seen from events.consent: what a seminar place's consent is about, and what an answer does."""

    async def describe(self, subject_id: int) -> consent.Description:
        row = await Registration.select(Registration.event, Registration.person.name.as_alias("student_name")).where(
            Registration.id == subject_id).first()
        if row is None:
            raise NotFound("このリンクは無効です。", code="consent_not_found")
        event = await event_row(row["event"])
        when = timefmt.event_when(event)
        venue = event["venue"] or "未定"
        return consent.Description(
            title=event["title"],
            asks="次のイベントへの参加申込がありました。",
            facts=(("イベント", event["title"]), ("日時", when), ("会場", venue),
                   ("主催", "横浜市金沢区 こども家庭支援課（金沢若者ライフデザイン事業）")),
            notes=("同意いただけない場合や期限までにご回答がない場合、お申込みは取り消され、席はキャンセル待ちの方にお譲りします。",),
            purpose=f"{row['student_name']}さんが「{event['title']}」（{when}、会場: {venue}）に参加することへの保護者の同意",
            starts_at=event["starts_at"], text_version="2025-1", link=f"{config().base_url}/events/{event['id']}",
        )

    async def decided(self, subject_id: int, decision: str) -> None:
        if decision == "given":
            await move(subject_id, "confirmed", expect=("pending_consent",), reason="consent_given")
        elif decision in ("refused", "expired"):
            await end(subject_id, reason=f"consent_{decision}", expect=("pending_consent",))
        elif decision == "revoked":
            await end(subject_id, reason="consent_revoked", expect=SEAT_HOLDING_STATES)


consent.register_subject(REGISTRATION_SUBJECT, _RegistrationConsent())
