"""`Event.waiting` (events.places, rule 1): the count of the waiting list, kept by the ledger on every way into and
out of the line, so that a newcomer's rank is that counter and not a count of the line under the lock.

The counter is written before the registration row on every path (promotion's too): the event row's lock first,
then its registrations. The race below proves that order matters — the same ledger counting after the row write
(the control) deadlocks against a promotion, the real one does not.
"""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from events import places
from events.db import raw, write_transaction
from events.errors import Busy
from events.seminars import registration
from events.seminars.tables import Event, Registration
from tests.conftest import ON_POSTGRES, as_person, as_staff
from tests.service.seminars_helpers import adult, coordinator, new_event


async def _uncounted(event_id: int) -> int:
    """How far `Event.waiting` is from the waitlisted registrations (0 when it holds)."""
    event = await Event.select(Event.waiting).where(Event.id == event_id).first()
    return event["waiting"] - await Registration.count().where(
        (Registration.event == event_id) & (Registration.status == "waitlisted"))


async def _registered(event_id: int, people: list[int]) -> list[dict]:
    return [await registration.register(event_id, person) for person in people]


async def test_the_count_follows_every_way_into_and_out_of_the_line(db):
    event_id = await new_event(capacity=1, offer_hours=48)
    seat, *line = await _registered(event_id, [await adult() for _ in range(5)])
    assert seat["status"] == "confirmed"
    assert [r["waitlist_rank"] for r in line] == [1, 2, 3, 4]  # each newcomer's rank is the count
    assert await _uncounted(event_id) == 0
    staff = as_staff(await coordinator())

    await registration.leave_waitlist(line[1]["id"], actor=staff)  # leaves the line
    assert await _uncounted(event_id) == 0
    await registration.cancel_registration(seat["id"], actor=staff)  # the first in line is offered the seat
    assert (await places.registration_row(line[0]["id"]))["status"] == "offered"
    assert await _uncounted(event_id) == 0
    async with write_transaction():  # the offer declined: it passes to the next in line
        await places.answer_offer(line[0]["id"], accept=False)
    assert (await places.registration_row(line[2]["id"]))["status"] == "offered"
    assert await _uncounted(event_id) == 0
    late = await registration.register(event_id, await adult())
    assert late["waitlist_rank"] == 2 and await _uncounted(event_id) == 0  # line[3] and the newcomer wait
    async with write_transaction():
        await places.end_all(event_id, reason="event_cancelled")
    assert (await Event.select(Event.waiting).where(Event.id == event_id).first())["waiting"] == 0
    assert await _uncounted(event_id) == 0


async def test_negative_control_a_place_in_line_written_behind_the_ledger_is_seen(db):
    """The check above bites: a registration put on the waiting list by a raw UPDATE (not the ledger) leaves the
    counter one short, and the next newcomer would be told a rank one too good."""
    event_id = await new_event(capacity=1)
    seat, _ = await _registered(event_id, [await adult(), await adult()])
    await raw("UPDATE registration SET status = 'waitlisted', queue_position = 2 WHERE id = {}", seat["id"])
    assert await _uncounted(event_id) == -1
    assert (await registration.register(event_id, await adult()))["waitlist_rank"] == 2  # told 2nd, truly 3rd


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite's one writer goes without the CHECK (a trigger per UPDATE)")
async def test_the_count_never_goes_below_zero(db):
    """A CHECK backs the counter: a ledger bug taking one too many out of the line aborts, it does not wrap."""
    event_id = await new_event(capacity=1)
    with pytest.raises(Exception, match="(?i)check|constraint"):
        await raw("UPDATE event SET waiting = waiting - 1 WHERE id = {}", event_id)
    assert (await Event.select(Event.waiting).where(Event.id == event_id).first())["waiting"] == 0


# ---------------------------------------------------------------- lock order (PostgreSQL: writers run in parallel)

_counted_later: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("counted_later", default=None)


def _pause_after_each_row_write(monkeypatch, *, count_after_the_row: bool) -> None:
    """Each status UPDATE holds its row a moment before the transaction goes on (the window a deadlock needs).
    With `count_after_the_row` (the control) the counter is moved after the row write instead of before it."""
    update, count = places._update_status, places._count_waiting

    async def held(row, new, values):
        updated = await update(row, new, values)
        await asyncio.sleep(0.05)
        if (later := _counted_later.get()) is not None:
            _counted_later.set(None)
            await count(*later)
        return updated

    async def remembered(event_id: int, change: int) -> int:
        _counted_later.set((event_id, change))
        return 0

    monkeypatch.setattr(places, "_update_status", held)
    if count_after_the_row:
        monkeypatch.setattr(places, "_count_waiting", remembered)


async def _leave_while_a_seat_frees(event_id: int, seat: dict, first: dict) -> list[BaseException | dict]:
    """A coordinator cancels the seat (its promotion locks the event, then moves the first in line) while the
    first in line leaves the line; the leaver starts once the cancellation holds its own row."""
    staff = as_staff(await coordinator())

    async def leave() -> dict:
        await asyncio.sleep(0.02)
        return await registration.leave_waitlist(first["id"], actor=as_person(first["person_id"], "student"))

    return await asyncio.gather(registration.cancel_registration(seat["id"], actor=staff), leave(),
                                return_exceptions=True)


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite runs writers one at a time: no two hold locks at once")
async def test_leaving_the_line_while_a_freed_seat_moves_it_up_never_deadlocks(db, monkeypatch):
    event_id = await new_event(capacity=1, offer_hours=48)
    seat, first, second = await _registered(event_id, [await adult(), await adult(), await adult()])
    _pause_after_each_row_write(monkeypatch, count_after_the_row=False)
    outcome = await _leave_while_a_seat_frees(event_id, seat, first)
    assert [type(o).__name__ for o in outcome if isinstance(o, BaseException)] == []
    assert (await places.registration_row(first["id"]))["status"] == "cancelled"
    assert (await places.registration_row(second["id"]))["status"] == "offered"  # the seat went to the next
    assert await _uncounted(event_id) == 0


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite runs writers one at a time: no two hold locks at once")
async def test_negative_control_counting_after_the_row_write_deadlocks(db, monkeypatch):
    """The same race with the counter moved after the registration row: the leaver holds its row and waits for
    the event, the promotion holds the event and waits for that row — PostgreSQL ends one of them."""
    event_id = await new_event(capacity=1, offer_hours=48)
    seat, first, _ = await _registered(event_id, [await adult(), await adult(), await adult()])
    _pause_after_each_row_write(monkeypatch, count_after_the_row=True)
    outcome = await _leave_while_a_seat_frees(event_id, seat, first)
    refused = [o for o in outcome if isinstance(o, Busy)]
    assert refused and "deadlock" in repr(refused[0].__cause__).lower()
