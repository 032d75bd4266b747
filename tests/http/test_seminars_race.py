"""200 concurrent HTTP registrations for 10 seats: exactly 10 confirmed, 190 waitlisted, no 5xx — on both engines.

The negative controls, defined here and nowhere in production code: one replaces the ledger's conditional seat
write (events.places._take_seat) by a read-then-write and shows that the same race oversells on PostgreSQL,
so the test can fail. (SQLite runs every write transaction one at a time behind BEGIN IMMEDIATE, so even the
unsafe path cannot oversell there; the control is PostgreSQL-only.) The other settles the waiting list at
commit without the event row's lock, and shows two entries given the same place.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from events import places
from events.seminars.tables import Event, Registration
from tests.conftest import ON_POSTGRES
from tests.http.seminars_race import people_with_tokens, race, running_server
from tests.service.seminars_helpers import new_event

CLIENTS, SEATS = 200, 10


async def _counts(event_id: int) -> dict[str, int]:
    rows = await Registration.select(Registration.status).where(Registration.event == event_id)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


async def test_race_never_oversells(db, settings):
    racers = await people_with_tokens(CLIENTS)
    rounds = 2 if ON_POSTGRES else 1  # repeated on PostgreSQL: a lucky interleaving must not pass by chance
    async with running_server(settings) as base_url:
        for _ in range(rounds):
            event_id = await new_event(capacity=SEATS)
            outcome = await race(base_url, f"/api/v1/events/{event_id}/registrations", [t for _, t in racers])
            assert [s for s in outcome.statuses if s >= 500] == [], outcome.bodies[:3]
            assert set(outcome.statuses) == {201}, {s for s in outcome.statuses}
            answered = [b["status"] for b in outcome.bodies]
            assert answered.count("confirmed") == SEATS and answered.count("waitlisted") == CLIENTS - SEATS
            assert await _counts(event_id) == {"confirmed": SEATS, "waitlisted": CLIENTS - SEATS}
            event = await Event.select(Event.taken).where(Event.id == event_id).first()
            assert event["taken"] == SEATS
            positions = sorted(b["queue_position"] for b in outcome.bodies if b["status"] == "waitlisted")
            assert positions == list(range(1, CLIENTS - SEATS + 1))  # a strict order, no ties
            ranks = sorted(b["waitlist_rank"] for b in outcome.bodies if b["status"] == "waitlisted")
            assert ranks == positions  # nobody left the line: each is told their own place
            assert await _mailed_ranks(event_id) == positions  # and the mail says the same, once each


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


_UNLOCKED_SETTLE = """
CREATE OR REPLACE FUNCTION registration_queue_at_commit() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE place integer;
BEGIN
  SELECT COALESCE(MAX(queue_position), 0) + 1 INTO place FROM registration WHERE event = NEW.event;
  PERFORM pg_sleep(0.005);
  UPDATE registration SET queue_position = place WHERE id = NEW.id AND queue_position IS NULL;
  RETURN NULL;
END
$fn$
"""


@pytest.mark.skipif(not ON_POSTGRES, reason="the place in line is settled at commit on PostgreSQL only")
async def test_negative_control_settling_without_the_lock_ties_places(db, settings):
    """The deferred trigger's lock is what keeps the waiting list a strict order: the same trigger without it
    (defined here, for this test only) hands out the same place twice."""
    from events.db import engine

    racers = await people_with_tokens(CLIENTS // 2)
    await engine().run_ddl(_UNLOCKED_SETTLE)
    try:
        async with running_server(settings) as base_url:
            event_id = await new_event(capacity=SEATS)
            outcome = await race(base_url, f"/api/v1/events/{event_id}/registrations", [t for _, t in racers])
    finally:
        await places.install_queue_at_commit()
    assert [s for s in outcome.statuses if s >= 500] == []
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
    async with running_server(settings) as base_url:
        event_id = await new_event(capacity=SEATS)
        outcome = await race(base_url, f"/api/v1/events/{event_id}/registrations", [t for _, t in racers])
    confirmed = (await _counts(event_id)).get("confirmed", 0)
    assert confirmed > SEATS, f"the unsafe path should oversell, got {confirmed} confirmed ({set(outcome.statuses)})"
