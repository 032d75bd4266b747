"""200 concurrent HTTP registrations for 10 seats: exactly 10 confirmed, 190 waitlisted, no 5xx — on both engines.

On PostgreSQL the race runs twice: once as the public path runs it (seats and places in line settled at commit,
events.places rule 1), once with every run under the event lock (the path coordinators and companions take).

The negative controls, defined here and nowhere in production code, show that each guard is what holds, so the
test can fail (PostgreSQL only: SQLite runs every write transaction one at a time behind BEGIN IMMEDIATE, so
even an unsafe path cannot oversell there):
- the commit's trigger deciding the seat by counting seat holders instead of its conditional UPDATE oversells;
- the lock path's conditional seat write (events.places._take_seat) replaced by a read-then-write oversells;
- the trigger settling the waiting list without the event row's lock gives two entries the same place.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import pytest

from events import places
from events.seminars.tables import Event, Registration
from tests.conftest import ON_POSTGRES
from tests.http.seminars_race import people_with_tokens, race, running_server
from tests.service.seminars_helpers import new_event

CLIENTS, SEATS = 200, 10


def _under_the_lock(**_):
    """In place of places.settle_at_commit: every run decides under the event lock."""
    return contextlib.nullcontext()


async def _counts(event_id: int) -> dict[str, int]:
    rows = await Registration.select(Registration.status).where(Registration.event == event_id)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


async def test_race_never_oversells(db, settings, monkeypatch):
    racers = await people_with_tokens(CLIENTS)
    paths = ["settled at commit", "under the lock"] if ON_POSTGRES else ["one writer at a time"]
    async with running_server(settings) as base_url:
        for path in paths:
            if path == "under the lock":
                monkeypatch.setattr(places, "settle_at_commit", _under_the_lock)
            event_id = await new_event(capacity=SEATS)
            outcome = await race(base_url, f"/api/v1/events/{event_id}/registrations", [t for _, t in racers])
            assert [s for s in outcome.statuses if s >= 500] == [], (path, outcome.bodies[:3])
            assert set(outcome.statuses) == {201}, (path, {s for s in outcome.statuses})
            answered = [b["status"] for b in outcome.bodies]
            assert answered.count("confirmed") == SEATS and answered.count("waitlisted") == CLIENTS - SEATS, path
            assert await _counts(event_id) == {"confirmed": SEATS, "waitlisted": CLIENTS - SEATS}, path
            event = await Event.select(Event.taken).where(Event.id == event_id).first()
            assert event["taken"] == SEATS, path
            assert all(b["queue_position"] is None for b in outcome.bodies if b["status"] == "confirmed"), path
            positions = sorted(b["queue_position"] for b in outcome.bodies if b["status"] == "waitlisted")
            assert positions == list(range(1, CLIENTS - SEATS + 1)), path  # a strict order, no ties
            ranks = sorted(b["waitlist_rank"] for b in outcome.bodies if b["status"] == "waitlisted")
            assert ranks == positions, path  # nobody left the line: each is told their own place
            assert await _mailed_ranks(event_id) == positions, path  # and the mail says the same, once each
            assert await _confirmations(event_id) == SEATS, path


async def _confirmations(event_id: int) -> int:
    """Confirmation mails written for the event: one per seat (a run refused at commit left none behind)."""
    from events.core.tables import OutboxMessage

    ids = [r["id"] for r in await Registration.select(Registration.id).where(Registration.event == event_id)]
    return await OutboxMessage.count().where(
        OutboxMessage.idempotency_key.is_in([f"seminar:{i}:confirmed" for i in ids]))


async def _mailed_ranks(event_id: int) -> list[int]:
    """The rank each waiting-list mail states (the rank settled at commit on PostgreSQL, under the lock)."""
    from events.core.tables import OutboxMessage
    from events.mime import Draft

    ids = [r["id"] for r in await Registration.select(Registration.id).where(
        (Registration.event == event_id) & (Registration.status == "waitlisted"))]
    rows = await OutboxMessage.select(OutboxMessage.message).where(
        OutboxMessage.idempotency_key.is_in([f"seminar:{i}:waitlisted" for i in ids]))
    assert len(rows) == len(ids)
    ranks = []
    for row in rows:
        text = Draft.decode(bytes(row["message"])).text
        assert places.RANK_AT_COMMIT not in text
        found = re.search(r"キャンセル待ち順: (\d+)番目", text)
        assert found, text[:300]
        ranks.append(int(found.group(1)))
    return sorted(ranks)


def _altered_trigger(old: str, new: str) -> str:
    """The production trigger with one guard changed (for a negative control; the text must still be there)."""
    function = places._SETTLE_AT_COMMIT[0]
    assert old in function, "the trigger changed: update the negative control"
    return function.replace(old, new)


_UNLOCKED_SETTLE = _altered_trigger(  # reads the event row instead of counting the newcomer in (its lock)
    "UPDATE event SET waiting = waiting + 1 WHERE id = NEW.event RETURNING status, taken, capacity, waiting INTO seats;",
    "SELECT status, taken, capacity, waiting + 1 AS waiting INTO seats FROM event WHERE id = NEW.event;"
    " PERFORM pg_sleep(0.005);")

_COUNTED_SEAT = _altered_trigger(
    "UPDATE event SET taken = taken + 1 WHERE id = NEW.event AND taken < capacity AND status = 'published';",
    """IF (SELECT COUNT(*) FROM registration WHERE event = NEW.event AND id <> NEW.id
          AND status IN ('confirmed', 'pending_consent')) < (SELECT capacity FROM event WHERE id = NEW.event) THEN
      PERFORM pg_sleep(0.005);
      UPDATE event SET taken = LEAST(taken + 1, capacity) WHERE id = NEW.event;
    END IF;""")


async def _race_with_trigger(settings, function: str, clients: int) -> int:
    from events.db import engine

    racers = await people_with_tokens(clients)
    await engine().run_ddl(function)
    try:
        async with running_server(settings) as base_url:
            event_id = await new_event(capacity=SEATS)
            outcome = await race(base_url, f"/api/v1/events/{event_id}/registrations", [t for _, t in racers])
    finally:
        await places.install_settle_at_commit()
    assert [s for s in outcome.statuses if s >= 500] == []
    return event_id


@pytest.mark.skipif(not ON_POSTGRES, reason="seats are settled at commit on PostgreSQL only")
async def test_negative_control_a_seat_counted_at_commit_oversells(db, settings):
    """The commit's conditional UPDATE is what keeps the seats: the same trigger deciding by a count of the
    seat holders (defined here, for this test only) confirms more people than there are seats."""
    event_id = await _race_with_trigger(settings, _COUNTED_SEAT, CLIENTS // 2)
    confirmed = (await _counts(event_id)).get("confirmed", 0)
    assert confirmed > SEATS, f"counting the seat holders should oversell, got {confirmed} confirmed"


@pytest.mark.skipif(not ON_POSTGRES, reason="the place in line is settled at commit on PostgreSQL only")
async def test_negative_control_settling_without_the_lock_ties_places(db, settings):
    """The deferred trigger's lock is what keeps the waiting list a strict order: the same trigger without it
    (defined here, for this test only) hands out the same place twice."""
    event_id = await _race_with_trigger(settings, _UNLOCKED_SETTLE, CLIENTS // 2)
    rows = await Registration.select(Registration.queue_position).where(
        (Registration.event == event_id) & (Registration.status == "waitlisted"))
    positions = [r["queue_position"] for r in rows]
    assert len(set(positions)) < len(positions), "without the lock two entries should share a place"


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite serialises writers: the unsafe path cannot oversell there")
async def test_negative_control_unsafe_check_then_insert_oversells(db, settings, monkeypatch):
    racers = await people_with_tokens(CLIENTS // 2)  # half the crowd is plenty to show the oversell
    async def check_then_take(event_id: int) -> bool:
        """The classic oversell: count the seat holders, wait a moment, decide (no conditional UPDATE)."""
        held = await Registration.count().where(
            (Registration.event == event_id) & Registration.status.is_in(list(places.SEAT_HOLDING_STATES)))
        capacity = (await Event.select(Event.capacity).where(Event.id == event_id).first())["capacity"]
        await asyncio.sleep(0.005)
        return held < capacity

    async def no_release(event_id: int) -> None:
        return None

    monkeypatch.setattr(places, "_take_seat", check_then_take)
    monkeypatch.setattr(places, "_release_seat", no_release)
    monkeypatch.setattr(places, "settle_at_commit", _under_the_lock)  # the lock path, where it is used
    async with running_server(settings) as base_url:
        event_id = await new_event(capacity=SEATS)
        outcome = await race(base_url, f"/api/v1/events/{event_id}/registrations", [t for _, t in racers])
    confirmed = (await _counts(event_id)).get("confirmed", 0)
    assert confirmed > SEATS, f"the unsafe path should oversell, got {confirmed} confirmed ({set(outcome.statuses)})"
