"""The place ledger: the only code that writes `Event.taken` and `Registration.status`.

Every area that gives or ends a place — seminar registration, lottery draws, guardian consent, home-visit
confirmations, exchange sessions, demo loaders — calls this module; nothing else updates those two
columns (a test parses the code for other writers). The rules it keeps, each here and nowhere else:

1. **Seats never oversell.** `Event.taken` counts the registrations in a seat-holding state (confirmed,
   pending_consent, attended, no_show). It moves only together with a status change, by one conditional
   `UPDATE … SET taken = taken + 1 WHERE taken < capacity` (a CHECK backs it), never by check-then-insert.
   `Event.waiting` counts the waitlisted ones the same way (`_count_waiting`), so a newcomer's rank — the last
   in line — is that counter, whatever the line's length, not a count of the line under the lock. Whoever
   moves a registration into or out of the line changes the counter first: locks are taken event row first,
   then its registrations, on every path (promotion's too), so no two transactions each hold what the other
   waits for (a deadlock).
   The critical section is short: whatever does not decide the seat (who may hold it, the answers, the
   person) is read before; the conditional UPDATE — or, when it finds no seat, the event row's lock — comes
   late, and the row is inserted with its waiting-list position computed in the same statement.
   On PostgreSQL a single applicant on the public registration path (`settle_at_commit()`) does not lock the
   event at all while the request runs: the row is written as a seat (position -1) or as waitlisted (position
   0) — whichever the caller's snapshot of the event offers — and a deferred trigger (`install_settle_at_commit`)
   decides *inside COMMIT*, under the event row's lock: a seat entry takes its seat by the same conditional
   UPDATE, a waiting entry is counted in and gets the next position, and its exact rank is written into the
   notice. If the seat went meanwhile, a seat came free, or the event closed, the commit is refused (nothing is
   kept) and the caller runs again on the state then committed. Only this module writes those two positions, and no
   committed row keeps them. Such an entry, when its id was reserved with the caller's snapshot (RESERVE_ID),
   is written behind (`events.db.insert_behind`): with its notice it is the transaction's one statement. The
   lock is held for microseconds inside the server, not for the request's remaining round trips nor for the
   disk's flush of the commit (events.db: the commit is asynchronous, and the caller waits for it to be on disk
   after the lock is gone), so N processes scale; positions stay a strict order and every rank told is true.
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
   event is not published or is a lottery not yet drawn — as an *offer* that holds the seat until its
   deadline (`offer_deadline`: `offer_hours`, never past `offer_fallback_hours` before the start, where the
   seat is confirmed at once instead). An unanswered or declined offer passes to the next in line.
   Companions (one application, a shared `group_key`) take seats, wait and move up together, never split.
6. **Safeguarding holds at all times** on home-visit events: after every change there, the invariant of
   events.safeguarding is re-established in the same transaction (places that break it are ended with
   reason `safeguarding_hold`, and the people who must know are told).
7. **It runs only inside a write transaction** (`events.db.write_transaction`); anywhere else it raises.

Every change sends `signals.PLACE_CHANGED` after the event kind's notice (`signals.PLACE_NOTICE`: the one
mail the person gets), so invites, reminders, surveys and visit pages follow without writing a place.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from piccolo.querystring import QueryString

from events import consent, safeguarding, signals, timefmt
from events.config import config
from events.db import (
    BUSY_MESSAGE,
    aware,
    commit_notice,
    commit_refusal,
    decoded,
    engine,
    for_update,
    in_write_transaction,
    insert_behind,
    insert_query,
    is_sqlite,
    raw,
    utcnow,
    write_transaction,
)
from events.errors import Busy, Conflict, Forbidden, NotFound
from events.seminars.tables import (
    LIVE_STATES,
    SEAT_HOLDING_STATES,
    Event,
    EventInvitation,
    Registration,
)

REGISTRATION_SUBJECT = "registration"
MIN_OFFER = timedelta(hours=1)  # an offer that could not stay open this long is a confirmation instead


class Source(enum.StrEnum):
    """Where a place comes from (rule 3)."""

    SELF = "self"  # the person, on a public event (or a private one they are invited to)
    COORDINATOR = "coordinator"  # at the counter, on the phone, or a demo loader
    INVITATION = "invitation"  # an invited person on a private event
    MATCH = "match"  # an accepted home-visit match


class Full(Conflict):
    code = "capacity_exceeded"


def _not_published() -> Conflict:
    return Conflict("このイベントは現在、申込を受け付けていません。", code="event_not_published")


def _require_transaction() -> None:
    if not in_write_transaction():
        raise RuntimeError("the place ledger runs only inside events.db.write_transaction()")


# ---------------------------------------------------------------- reading


async def event_row(event_id: int) -> dict[str, Any]:
    event = await Event.select().where(Event.id == event_id).output(load_json=True).first()
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
        await raw("SELECT id FROM event WHERE id = {}" + for_update(), event_id)


async def _next_queue_position(event_id: int) -> int:
    await lock_event(event_id)
    rows = await raw("SELECT MAX(queue_position) AS top FROM registration WHERE event = {}", event_id)
    return int(rows[0]["top"] or 0) + 1 if rows else 1


async def _event_state(event_id: int, *, lock: bool) -> dict[str, Any]:
    """What decides a place, read fresh — with `lock`, under the event row's lock (PostgreSQL; SQLite's
    IMMEDIATE transaction already serialises): status, seats, the draw."""
    rows = await raw("SELECT status, taken, capacity, allocation, lottery_drawn_at FROM event WHERE id = {}"
                     + (for_update() if lock else ""), event_id)
    if not rows:
        raise NotFound("そのイベントは見つかりません。", code="event_not_found")
    rows[0]["lottery_drawn_at"] = aware(rows[0]["lottery_drawn_at"])
    return rows[0]


# ---------------------------------------------------------------- seats and places in line, settled at commit (PostgreSQL)

SETTLED_AT_COMMIT = 0  # the queue_position of a waiting entry whose place in line the commit hands out
SEAT_AT_COMMIT = -1  # the queue_position of a seat entry whose seat the commit takes (NULL once committed)
RANK_AT_COMMIT = "\u27e6waitlist-rank\u27e7"  # stands for the rank in a notice written before the rank is known
_SEAT_FREED, _NOT_PUBLISHED, _SEAT_GONE = "LD001", "LD002", "LD003"  # the SQLSTATEs the trigger refuses with
_PLACE_TOLD = "LD100"  # the SQLSTATE of the trigger's notice: "<registration id> <queue_position> <rank>"
_SNAPSHOT, _FRESH = "snapshot", "fresh"  # what an entry settled at commit is written on (settle_at_commit)
_late: ContextVar[str | None] = ContextVar("places_settle_at_commit", default=None)
_told: ContextVar[tuple[int, int, int] | None] = ContextVar("places_told_at_commit", default=None)

_SETTLE_AT_COMMIT = (f"""
CREATE OR REPLACE FUNCTION registration_settle_at_commit() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  seats RECORD;
  place integer;
BEGIN
  IF NEW.queue_position = {SEAT_AT_COMMIT} THEN
    UPDATE registration SET queue_position = NULL
     WHERE id = NEW.id AND queue_position = {SEAT_AT_COMMIT} AND status IN ('confirmed', 'pending_consent');
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    UPDATE event SET taken = taken + 1 WHERE id = NEW.event AND taken < capacity AND status = 'published';
    IF NOT FOUND THEN
      SELECT status INTO seats FROM event WHERE id = NEW.event;
      IF seats.status IS DISTINCT FROM 'published' THEN
        RAISE EXCEPTION 'event % is not published', NEW.event USING ERRCODE = '{_NOT_PUBLISHED}';
      END IF;
      RAISE EXCEPTION 'the last seat of event % went', NEW.event USING ERRCODE = '{_SEAT_GONE}';
    END IF;
    RETURN NULL;
  END IF;
  -- the event row's lock and the newcomer counted in, one statement (a refusal below undoes the count)
  UPDATE event SET waiting = waiting + 1 WHERE id = NEW.event RETURNING status, taken, capacity, waiting INTO seats;
  IF seats.status IS DISTINCT FROM 'published' THEN
    RAISE EXCEPTION 'event % is not published', NEW.event USING ERRCODE = '{_NOT_PUBLISHED}';
  END IF;
  IF seats.taken < seats.capacity THEN
    RAISE EXCEPTION 'a seat of event % is free', NEW.event USING ERRCODE = '{_SEAT_FREED}';
  END IF;
  SELECT COALESCE(MAX(queue_position), 0) + 1 INTO place FROM registration WHERE event = NEW.event;
  UPDATE registration SET queue_position = place WHERE id = NEW.id AND queue_position = {SETTLED_AT_COMMIT};
  -- the unique key alone (the mail was written by this transaction: it cannot have gone): a plan cached while the
  -- outbox was empty would otherwise walk its status index through every queued mail, under the lock
  UPDATE outbox_message
     SET message = convert_to(replace(convert_from(message, 'UTF8'), '{RANK_AT_COMMIT}', seats.waiting::text), 'UTF8')
   WHERE idempotency_key = 'seminar:' || NEW.id || ':waitlisted';
  RAISE NOTICE '% % %', NEW.id, place, seats.waiting USING ERRCODE = '{_PLACE_TOLD}';
  RETURN NULL;
END
$fn$
""", """DROP TRIGGER IF EXISTS registration_queue_at_commit ON registration""",
    """DROP FUNCTION IF EXISTS registration_queue_at_commit()""",
    """DROP TRIGGER IF EXISTS registration_settle_at_commit ON registration""", f"""
CREATE CONSTRAINT TRIGGER registration_settle_at_commit AFTER INSERT ON registration
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (NEW.queue_position IN ({SEAT_AT_COMMIT}, {SETTLED_AT_COMMIT}))
  EXECUTE FUNCTION registration_settle_at_commit()
""")


async def install_settle_at_commit() -> None:
    """The deferred trigger of rule 1 (a migration step; nothing on SQLite, whose writers run one at a time)."""
    if not is_sqlite():
        for statement in _SETTLE_AT_COMMIT:
            await engine().run_ddl(statement)


class Unsettled(Busy):
    """The commit refused an entry written without the lock: run the transaction again (`settle_at_commit`)."""


class SeatFreed(Unsettled):
    code = "seat_freed"  # a waiting entry, but a seat is free


class SeatGone(Unsettled):
    code = "seat_gone"  # a seat entry, but the last seat went to another commit first


commit_refusal(_SEAT_FREED, lambda: SeatFreed(BUSY_MESSAGE))
commit_refusal(_SEAT_GONE, lambda: SeatGone(BUSY_MESSAGE))
commit_refusal(_NOT_PUBLISHED, _not_published)


def _heard(message: str) -> None:
    """The trigger's notice of the place it handed out: kept for `place_in_line` in the committing task."""
    registration_id, position, rank = (int(part) for part in message.split())
    _told.set((registration_id, position, rank))


commit_notice(_PLACE_TOLD, _heard)


@asynccontextmanager
async def settle_at_commit(*, fresh: bool = False) -> AsyncIterator[None]:
    """Within this block (PostgreSQL), a single applicant is placed without locking the event: as a seat while
    the event's state shows one free, else at the end of the line; the commit settles which. The state is the
    caller's snapshot (`place_group(event=…)`, read before the transaction: no statement more), or with `fresh`
    the state committed now. The commit may raise Unsettled (the seats moved meanwhile): run the transaction
    again, `fresh` — a last run outside this block, where the lock decides at once, always settles."""
    token = _late.set(None if is_sqlite() else _FRESH if fresh else _SNAPSHOT)
    try:
        yield
    finally:
        _late.reset(token)


async def place_in_line(registration_id: int) -> tuple[int | None, int | None]:
    """(queue_position, waitlist rank) of a waiting entry as committed; (None, None) for any other status. Right
    after the commit that settled it, the trigger's notice already said (no statement); otherwise it is read."""
    told = _told.get()
    if told is not None and told[0] == registration_id:
        _told.set(None)  # once: it was true at that commit
        return told[1], told[2]
    rows = await raw("SELECT queue_position, " + _WAITLIST_RANK + " AS waitlist_rank FROM registration"
                     " WHERE id = {} AND status = 'waitlisted'", registration_id)
    return (rows[0]["queue_position"], rows[0]["waitlist_rank"]) if rows else (None, None)


_WAITLIST_RANK = ("(SELECT COUNT(*) FROM registration AS ahead WHERE ahead.event = registration.event"
                  " AND ahead.status = 'waitlisted' AND ahead.queue_position < registration.queue_position) + 1")


_RETURNING = " RETURNING " + ", ".join(c._meta.db_column_name for c in Registration._meta.columns)

# A registration id taken before the transaction (PostgreSQL; one sequence value, whether or not it is used):
# a caller reads it with its snapshot and passes it as `place_group(reserved_id=…)`.
RESERVE_ID = "nextval(pg_get_serial_sequence('registration', 'id'))"


async def _insert_row(values: dict[str, Any], *, queued: bool, reserved_id: int | None = None) -> dict[str, Any]:
    """One INSERT … RETURNING the row; a waiting-list entry gets the next position (read in the same statement,
    under the lock) and its rank back — unless its place is settled at commit (no position yet). An entry
    settled at commit whose id was reserved is written behind (`db.insert_behind`): with its notice it is the
    transaction's one statement, and the commit's answer (the trigger's notice) tells the place."""
    if reserved_id is not None:  # place_group passes it only for a single entry settled at commit
        return await insert_behind(Registration, {**values, "id": reserved_id})
    rank = None
    if queued:
        rank = await _count_waiting(values["event"], 1)  # the newcomer is last: its rank is the count
        values["queue_position"] = QueryString(
            "(SELECT COALESCE(MAX(queue_position), 0) + 1 FROM registration WHERE event = {})", values["event"])
    query = insert_query(Registration, values, _RETURNING)
    found = [dict(r) for r in await engine().run_querystring(query)]
    row = decoded(found[0], Registration)
    if rank is not None:
        row["waitlist_rank"] = rank
    return row


async def _count_waiting(event_id: int, change: int) -> int:
    """`Event.waiting` moved by `change` (+1 joins the line, -1 leaves it), under the event row's lock; the new
    count. Every change of a registration into or out of `waitlisted` comes here *before* the registration row
    is written, so the locks are always taken event first, then its registrations (promote's order too): no
    two transactions each hold a row the other waits for."""
    rows = await raw("UPDATE event SET waiting = waiting + {} WHERE id = {} RETURNING waiting", change, event_id)
    return int(rows[0]["waiting"])


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


async def _seat_status(event: Mapping[str, Any], person_id: int, person: Mapping[str, Any] | None = None) -> str:
    """confirmed, or pending_consent for a minor (rule 4; a home visit's consent came with the request). The birth
    date is the caller's when it read the person in this request (the same row a read here would find)."""
    if event["kind"] == "home_visit":
        return "confirmed"
    day = event_day(event)
    if person is not None and "birth_date" in person:
        minor = consent.is_minor(person["birth_date"], day)
    else:
        minor = await consent.needs_consent(person_id, day)
    return "pending_consent" if minor else "confirmed"


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
                   by: int | None, detail: Mapping[str, Any] | None, person: Mapping[str, Any] | None = None) -> None:
    change = signals.PlaceChanged(
        registration_id=row["id"], event_id=event["id"], person_id=row["person"], event_kind=event["kind"],
        old=old, new=row["status"], reason=reason, by=by, detail=dict(detail or {}), event=event, person=person,
    )
    notice = signals.PLACE_NOTICE.get(event["kind"])
    if notice is not None:
        await notice(change)
    await signals.PLACE_CHANGED.send(change)


def _ended_by(reason: str, detail: Mapping[str, Any] | None) -> str:
    """What the guardian is told ended a place that waited for their consent (events.consent.ENDED_BY)."""
    if reason == "cancelled":
        return "coordinator" if (detail or {}).get("by_coordinator") else "student"
    return {"event_cancelled": "event", "account_deleted": "account"}.get(reason, "")


async def _apply(row: Mapping[str, Any], event: Mapping[str, Any], new: str, *, reason: str, by: int | None = None,
                 detail: Mapping[str, Any] | None = None, keep_safe: bool = True,
                 **values: Any) -> dict[str, Any] | None:
    old = row["status"]
    held_before, held_after = old in SEAT_HOLDING_STATES, new in SEAT_HOLDING_STATES
    in_line = (new == "waitlisted") - (old == "waitlisted")  # joins (+1) or leaves (-1) the waiting list
    took = False
    if held_after and not held_before:
        if not await _take_seat(event["id"]):
            raise Full("満席のため席を確保できませんでした。")
        took = True
    if in_line:
        await _count_waiting(event["id"], in_line)  # the event row first (lock order, see _count_waiting)
    updated = await _update_status(row, new, values)
    if updated is None:
        if took:
            await _release_seat(event["id"])
        if in_line:
            await _count_waiting(event["id"], -in_line)
        return None
    if held_before and not held_after:
        await _release_seat(event["id"])
    subject = consent.Subject(REGISTRATION_SUBJECT, row["id"])
    if old == "pending_consent" and new == "cancelled":
        await consent.withdraw(subject, ended_by=_ended_by(reason, detail))
    await _changed(updated, event, old, reason=reason, by=by, detail=detail)
    if new == "pending_consent" and old != "pending_consent":
        await consent.request(subject, row["person"], not_after=event["starts_at"])
    if held_before and not held_after:
        await promote(event["id"])
    if keep_safe and event["kind"] == "home_visit":
        await recheck(event["id"])
    return updated


# ---------------------------------------------------------------- public operations


@dataclass(frozen=True)
class Applicant:
    """One person of an application: their answers and what is recorded with the row (lottery ticket,
    priority and its reason, accommodation request, ward tie)."""

    person_id: int
    answers: Mapping[str, Any] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)
    # The person's row as the caller read it, for the notice and the invite (email, name, locale, reminders) and,
    # with a key "birth_date" (None: no student profile), for rule 4; without that key the ledger reads it.
    person: Mapping[str, Any] | None = None


_ROW_VALUES = ("lottery_ticket", "priority", "priority_reason", "group_key", "accommodation", "ward_tie")


async def place(event_id: int, person_id: int, *, source: Source, answers: Mapping[str, Any] | None = None,
                idempotency_key: str | None = None, registered_by: int | None = None, reason: str = "registered",
                waitlist: bool = True, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Give the person a place: applied (a lottery not yet drawn), a seat, or the end of the waiting list.

    A UNIQUE index refuses a second live registration of the same person (the caller maps it)."""
    rows = await place_group(event_id, [Applicant(person_id, answers or {}, values or {})], source=source,
                             idempotency_key=idempotency_key, registered_by=registered_by, reason=reason,
                             waitlist=waitlist)
    return rows[0]


async def place_group(event_id: int, applicants: list[Applicant], *, source: Source,
                      idempotency_key: str | None = None, registered_by: int | None = None,
                      reason: str = "registered", waitlist: bool = True,
                      event: Mapping[str, Any] | None = None, reserved_id: int | None = None) -> list[dict[str, Any]]:
    """An application of one person, or of companions together: all of them get seats, or all apply to the
    lottery, or all wait — consecutively — on the waiting list (never some in and some out).

    `event` may be the caller's snapshot of the row, read before the transaction: what decides the place
    (status, seats, the draw) is read again late, under the lock (`_decide`). `reserved_id` (RESERVE_ID, read
    with the snapshot) is the id of a single applicant settled at commit, whose row is then written behind."""
    _require_transaction()
    if not applicants:
        raise ValueError("an application needs at least one person")
    event = dict(event) if event is not None else await event_row(event_id)
    for applicant in applicants:
        await _may_hold(event, applicant.person_id, source)
    outcome = await _decide(event, len(applicants), waitlist)
    late = {"seat_at_commit": SEAT_AT_COMMIT, "queued_at_commit": SETTLED_AT_COMMIT}.get(outcome)
    if outcome in ("seat", "seat_at_commit"):
        statuses = [await _seat_status(event, a.person_id, a.person) for a in applicants]
    else:
        statuses = ["waitlisted" if late is not None else outcome] * len(applicants)
    now = utcnow()
    made = []
    for offset, (applicant, status) in enumerate(zip(applicants, statuses, strict=True)):
        extra = {key: applicant.values[key] for key in _ROW_VALUES if key in applicant.values}
        row = await _insert_row(dict(
            event=event_id, person=applicant.person_id, status=status, answers=dict(applicant.answers),
            idempotency_key=idempotency_key if offset == 0 else None, registered_by=registered_by, created_at=now,
            updated_at=now, confirmed_at=now if status == "confirmed" else None, **extra,
            **({"queue_position": late} if late is not None else {}),
        ), queued=status == "waitlisted" and late is None,
            reserved_id=reserved_id if late is not None and len(applicants) == 1 else None)
        if late == SEAT_AT_COMMIT:
            row["queue_position"] = None  # as it is committed: a seat holds no place in line
        made.append(row)
    for row, applicant in zip(made, applicants, strict=True):
        rank = RANK_AT_COMMIT if late == SETTLED_AT_COMMIT else row.get("waitlist_rank")
        await _changed(row, event, None, reason=reason, by=registered_by,
                       detail={"waitlist_rank": rank} if rank else None, person=applicant.person)
        if row["status"] == "pending_consent":
            await consent.request(consent.Subject(REGISTRATION_SUBJECT, row["id"]), row["person"],
                                  not_after=event["starts_at"])
    if event["kind"] == "home_visit":
        await recheck(event_id)
    return made


def _drawing(event: Mapping[str, Any]) -> bool:
    """A lottery not yet drawn: applications wait for the draw, nobody takes a seat or a place in line."""
    return event["allocation"] == "lottery" and not event["lottery_drawn_at"] and event["kind"] != "home_visit"


async def _decide(event: dict[str, Any], count: int, waitlist: bool) -> str:
    """The critical section: "seat" (taken), "applied" (a lottery not yet drawn) or "waitlisted" (the event row
    stays locked until commit, so positions are handed out one at a time). A single applicant whose snapshot
    shows a free seat tries the conditional UPDATE at once; otherwise the row is locked and read fresh first —
    except within `settle_at_commit()` (PostgreSQL), where a single applicant takes no lock at all: on the
    snapshot (or the state committed now) the answer is "seat_at_commit" (a seat shows free) or
    "queued_at_commit" (it is full); the commit takes the seat or settles the place in line (rule 1).
    `event` is brought up to date with what was read."""
    late = _late.get()
    if count == 1 and late and event["kind"] != "home_visit":
        fresh = event if late == _SNAPSHOT else await _event_state(event["id"], lock=False)
        if not _drawing({**event, **fresh}):
            if fresh["status"] != "published":
                raise _not_published()
            free = fresh["taken"] < fresh["capacity"]
            if free or waitlist:
                event.update(fresh)
                return "seat_at_commit" if free else "queued_at_commit"
    drawing = _drawing(event)
    if count == 1 and not drawing and event["taken"] < event["capacity"] and await _take_seat(event["id"]):
        return "seat"
    event.update(await _event_state(event["id"], lock=True))
    if _drawing(event):
        return "applied"
    # Under the lock the row just read is the truth: a full event skips the conditional UPDATE (one round trip
    # less while the lock is held); a free one still takes its seats by that UPDATE.
    if event["taken"] + count <= event["capacity"] and await _take_seats(event["id"], count):
        return "seat"
    if waitlist and event["kind"] != "home_visit" and event["status"] == "published":
        return "waitlisted"
    if event["status"] != "published":
        raise _not_published()
    raise Full("満席のため席を確保できませんでした。")


async def _take_seats(event_id: int, count: int) -> bool:
    """`count` seats at once, or none (a group's seats are taken whole)."""
    taken = 0
    while taken < count:
        if not await _take_seat(event_id):
            for _ in range(taken):
                await _release_seat(event_id)
            return False
        taken += 1
    return True


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


def offer_deadline(event: Mapping[str, Any], now: datetime) -> datetime | None:
    """When a waiting-list offer made now must be answered, or None to confirm at once: within
    `offer_fallback_hours` of the start (or with offers switched off, `offer_hours` 0) nobody waits for an
    answer; an offer never runs past that fallback point."""
    hours = int(event.get("offer_hours") or 0)
    if hours <= 0:
        return None
    latest = event["starts_at"] - timedelta(hours=int(event.get("offer_fallback_hours") or 0))
    deadline = min(now + timedelta(hours=hours), latest)
    return deadline if deadline - now >= MIN_OFFER else None


async def promote(event_id: int) -> list[int]:
    """Free seats go to the waiting list, first in line first (rule 5). A seat is offered with a deadline
    (`offer_deadline`), or confirmed at once near the start. Companions waiting together move together; an
    entry that does not fit the seats left is passed over for the next, as in the draw."""
    _require_transaction()
    event = await event_row(event_id)
    if event["status"] != "published" or (event["allocation"] == "lottery" and not event["lottery_drawn_at"]):
        return []
    await lock_event(event_id)
    event = await event_row(event_id)  # the seats left, read under the lock
    waiting = await Registration.select().where(
        (Registration.event == event_id) & (Registration.status == "waitlisted")
    ).order_by(Registration.queue_position).order_by(Registration.id).output(load_json=True)
    entries: list[list[dict[str, Any]]] = []
    for row in waiting:
        if row["group_key"] and entries and entries[-1][0]["group_key"] == row["group_key"]:
            entries[-1].append(row)
        else:
            entries.append([row])
    free = event["capacity"] - event["taken"]
    deadline = offer_deadline(event, utcnow())
    promoted: list[int] = []
    for entry in entries:
        if free <= 0:
            break
        if len(entry) > free:
            continue  # a group that does not fit waits; the next may fit
        statuses = []
        for row in entry:
            status = await _seat_status(event, row["person"])
            if status == "pending_consent" and not (await consent.guardian_of(row["person"]))[0]:
                break  # nobody to ask: the seat goes to the next in line, the minor waits
            statuses.append("offered" if deadline is not None else status)
        else:
            for row, status in zip(entry, statuses, strict=True):
                updated = await _apply(row, event, status, reason="promoted",
                                       offer_expires_at=deadline if status == "offered" else None)
                if updated is not None:
                    promoted.append(row["id"])
                    free -= 1
    return promoted


async def answer_offer(registration_id: int, *, accept: bool, by: int | None = None) -> dict[str, Any] | None:
    """The person takes the offered seat (confirmed, or pending_consent for a minor) or lets it go to the next."""
    _require_transaction()
    row = await registration_row(registration_id)
    if row["status"] != "offered":
        return None
    event = await event_row(row["event"])
    if not accept:
        return await _apply(row, event, "cancelled", reason="offer_declined", by=by)
    return await _apply(row, event, await _seat_status(event, row["person"]), reason="offer_accepted", by=by,
                        offer_expires_at=None)


async def expire_offers(now: datetime | None = None, limit: int = 200) -> int:
    """Worker job: offers past their deadline end and pass to the next in line (one transaction each)."""
    now = now or utcnow()
    due = await Registration.select(Registration.id).where(
        (Registration.status == "offered") & (Registration.offer_expires_at <= now)
    ).order_by(Registration.offer_expires_at).limit(limit)
    ended = 0
    for item in due:
        async with write_transaction():
            row = await registration_row(item["id"])
            if row["status"] == "offered" and row["offer_expires_at"] and aware(row["offer_expires_at"]) <= now:
                await _apply(row, await event_row(row["event"]), "cancelled", reason="offer_expired")
                ended += 1
    return ended


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
