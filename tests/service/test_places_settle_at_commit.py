"""Seats and places in line settled at commit (events.places, rule 1, PostgreSQL): what the commit re-checks.

The entry is written without the event row's lock, as a seat while the committed state shows one free, else as
waiting; the deferred trigger takes the lock inside COMMIT. If the last seat went to another commit, a seat came
free, or the event closed, the commit is refused and nothing of the transaction is kept; the public registration
path then runs again on what is committed. Another connection (a real one, not a mock) takes or frees the seat or
closes the event while the first transaction is still open.
"""

from __future__ import annotations

import asyncpg
import pytest

from events import places
from events.core.tables import OutboxMessage
from events.db import engine, write_transaction
from events.errors import Conflict
from events.seminars import registration
from events.seminars.tables import Event, Registration
from tests.conftest import ON_POSTGRES
from tests.service.seminars_helpers import adult, minor, new_event

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="SQLite runs writers one at a time: nothing to settle late")


async def _full_event() -> int:
    event_id = await new_event(capacity=1)
    await registration.register(event_id, await adult("先着 一郎"))
    return event_id


async def _meanwhile(settings, sql: str, *args) -> None:
    """Another session commits `sql` while ours is open."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute(sql, *args)
    finally:
        await connection.close()


def _after_the_notice(monkeypatch, settings, sql: str, event_id: int, *, once: bool = True) -> list[bool]:
    """Another session commits `sql` right after the ledger wrote the notice (the entry is written, our commit not
    yet run); the list records each time it did."""
    changed, done = places._changed, []

    async def meanwhile(*args, **kwargs):
        await changed(*args, **kwargs)
        if not (once and done):
            done.append(True)
            await _meanwhile(settings, sql, event_id)

    monkeypatch.setattr(places, "_changed", meanwhile)
    return done


async def test_a_full_event_queues_without_a_position_until_commit(db):
    event_id = await _full_event()
    person = await adult()
    async with places.settle_at_commit():
        async with write_transaction():
            row = await places.place(event_id, person, source=places.Source.SELF)
            assert row["status"] == "waitlisted" and row["queue_position"] == places.SETTLED_AT_COMMIT
    assert await places.place_in_line(row["id"]) == (1, 1)


async def test_a_seat_freed_before_commit_refuses_the_commit_and_keeps_nothing(db, settings):
    event_id = await _full_event()
    person = await adult()
    with pytest.raises(places.SeatFreed):
        async with places.settle_at_commit():
            async with write_transaction():
                await places.place(event_id, person, source=places.Source.SELF)
                await _meanwhile(settings, "UPDATE event SET taken = taken - 1 WHERE id = $1", event_id)
    assert not await Registration.exists().where(Registration.person == person)
    assert not await OutboxMessage.exists().where(OutboxMessage.kind == "seminar_waitlisted")
    # the control: outside settle_at_commit the lock decides at once, and the free seat is taken
    async with write_transaction():
        row = await places.place(event_id, person, source=places.Source.SELF)
    assert row["status"] == "confirmed"


async def test_registration_runs_again_and_takes_the_freed_seat(db, settings, monkeypatch):
    event_id = await _full_event()
    person = await adult()
    freed = _after_the_notice(monkeypatch, settings, "UPDATE event SET taken = taken - 1 WHERE id = $1", event_id)
    result = await registration.register(event_id, person)
    assert freed and result["status"] == "confirmed"
    assert (await Event.select(Event.taken).where(Event.id == event_id).first())["taken"] == 1
    rows = await Registration.select(Registration.status).where(Registration.person == person)
    assert [r["status"] for r in rows] == ["confirmed"]  # the first attempt left nothing behind


@pytest.mark.parametrize("capacity", [1, 3], ids=["waiting entry", "seat entry"])
async def test_an_event_closed_before_commit_refuses_the_entry(db, settings, monkeypatch, capacity):
    event_id = await new_event(capacity=capacity)
    await registration.register(event_id, await adult("先着 一郎"))
    person = await adult()
    _after_the_notice(monkeypatch, settings, "UPDATE event SET status = 'cancelled' WHERE id = $1", event_id,
                      once=False)
    with pytest.raises(Conflict) as refused:
        await registration.register(event_id, person)
    assert refused.value.code == "event_not_published"
    assert not await Registration.exists().where(Registration.person == person) and await _taken(event_id) == 1


async def test_the_mail_states_the_rank_settled_at_commit(db):
    event_id = await _full_event()
    first, second = await adult("待ち 一"), await adult("待ち 二")
    for person in (first, second):
        result = await registration.register(event_id, person)
        assert result["status"] == "waitlisted"
    assert result["queue_position"] == 2 and result["waitlist_rank"] == 2
    from events.mime import Draft

    row = await OutboxMessage.select(OutboxMessage.message).where(
        OutboxMessage.idempotency_key == f"seminar:{result['id']}:waitlisted").first()
    draft = Draft.decode(bytes(row["message"]))
    assert "キャンセル待ち順: 2番目" in draft.text and places.RANK_AT_COMMIT not in draft.html
    assert "2" in draft.html


async def _taken(event_id: int) -> int:
    return (await Event.select(Event.taken).where(Event.id == event_id).first())["taken"]


async def test_a_seat_is_taken_at_commit_and_keeps_no_position(db):
    event_id = await new_event(capacity=2)
    async with places.settle_at_commit():
        async with write_transaction():
            row = await places.place(event_id, await adult(), source=places.Source.SELF)
            assert row["status"] == "confirmed" and row["queue_position"] is None
            assert await _taken(event_id) == 0  # not yet: the commit takes it
    assert await _taken(event_id) == 1
    stored = await Registration.select(Registration.queue_position).where(Registration.id == row["id"]).first()
    assert stored["queue_position"] is None


async def test_a_minors_seat_at_commit_waits_for_the_guardian(db):
    event_id = await new_event(capacity=1)
    async with places.settle_at_commit():
        async with write_transaction():
            row = await places.place(event_id, await minor(), source=places.Source.SELF)
    assert row["status"] == "pending_consent" and await _taken(event_id) == 1


async def test_a_seat_gone_before_commit_refuses_the_commit_and_keeps_nothing(db, settings):
    event_id = await new_event(capacity=1)
    person = await adult()
    with pytest.raises(places.SeatGone):
        async with places.settle_at_commit():
            async with write_transaction():
                row = await places.place(event_id, person, source=places.Source.SELF)
                assert row["status"] == "confirmed"
                await _meanwhile(settings, "UPDATE event SET taken = capacity WHERE id = $1", event_id)
    assert not await Registration.exists().where(Registration.person == person)
    assert not await OutboxMessage.exists().where(OutboxMessage.kind == "seminar_confirmed")
    assert await _taken(event_id) == 1  # the other commit's seat, and no more


async def test_registration_whose_seat_went_joins_the_line_and_is_told_so(db, settings, monkeypatch):
    event_id = await new_event(capacity=1)
    person = await adult()
    gone = _after_the_notice(monkeypatch, settings, "UPDATE event SET taken = capacity WHERE id = $1", event_id)
    result = await registration.register(event_id, person)
    assert gone and result["status"] == "waitlisted"
    assert (result["queue_position"], result["waitlist_rank"]) == (1, 1)
    rows = await Registration.select(Registration.status).where(Registration.person == person)
    assert [r["status"] for r in rows] == ["waitlisted"]
    kinds = [r["kind"] for r in await OutboxMessage.select(OutboxMessage.kind)]
    assert "seminar_waitlisted" in kinds and "seminar_confirmed" not in kinds  # one mail, the true one


async def test_a_run_that_keeps_losing_ends_under_the_lock(db, settings, monkeypatch):
    """Every run settled at commit is refused (another commit always frees the seat first): the last run takes
    the lock and decides, so registration always ends."""
    event_id = await _full_event()
    person = await adult()
    changed = places._changed
    runs = []

    async def free_and_retake(*args, **kwargs):
        await changed(*args, **kwargs)
        runs.append(places._late.get() is not None)
        if places._late.get():  # free the seat before this commit, and take it back after it failed
            await _meanwhile(settings, "UPDATE event SET taken = 0 WHERE id = $1", event_id)

    monkeypatch.setattr(places, "_changed", free_and_retake)
    real_decide = places._decide

    async def decide(event, count, waitlist):
        await _meanwhile(settings, "UPDATE event SET taken = capacity WHERE id = $1", event_id)
        return await real_decide(event, count, waitlist)

    monkeypatch.setattr(places, "_decide", decide)
    result = await registration.register(event_id, person)
    assert runs == [True] * registration._UNLOCKED_RUNS + [False]
    assert result["status"] == "waitlisted" and result["queue_position"] == 1


# ---------------------------------------------------------------- the trigger's plans, as a long-lived connection keeps them

_OLD_OUTBOX_GUARD = places._SETTLE_AT_COMMIT[0].replace(
    "WHERE idempotency_key = 'seminar:' || NEW.id || ':waitlisted';",
    "WHERE idempotency_key = 'seminar:' || NEW.id || ':waitlisted' AND status = 'queued';")


async def _settled_plans(settings, event_id: int, person: int) -> list[str]:
    """The plans of the statements the deferred trigger runs when a waiting entry commits, as PostgreSQL's generic
    plans (what a pooled connection keeps using once its plan cache settles; planned here on near-empty tables, as
    a connection opened before a rush plans them), heard through auto_explain."""
    connection = await asyncpg.connect(settings.database_url)
    plans: list[str] = []
    connection.add_log_listener(lambda _connection, message: plans.append(message.message))
    try:
        await connection.execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;"
            " SET auto_explain.log_level = notice; SET plan_cache_mode = force_generic_plan")
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO registration (event, person, status, answers, queue_position, created_at, updated_at)"
                " VALUES ($1, $2, 'waitlisted', '{}', $3, now(), now())", event_id, person, places.SETTLED_AT_COMMIT)
    finally:
        await connection.close()
    return [plan for plan in plans if "Query Text" in plan and "outbox_message" in plan]


async def test_the_commit_finds_the_waiting_mail_by_its_key_alone(db, settings):
    """The trigger rewrites the waiting mail by its unique key only. Control: with a status test beside the key
    (as it was), the generic plan planned on an empty outbox walks the status index — every queued mail, under the
    event lock, on each commit (bench/registration.py, 3,000-registration races: one process fell from ~520 to
    ~150 registrations/s once the outbox held the earlier races' queued mail)."""
    event_id = await _full_event()
    plans = await _settled_plans(settings, event_id, await adult())
    assert plans and all("outbox_message_idempotency_key_key" in plan for plan in plans), plans
    await engine().run_ddl(_OLD_OUTBOX_GUARD)
    try:
        control = await _settled_plans(settings, event_id, await adult())
    finally:
        await places.install_settle_at_commit()
    assert control and any("outbox_message_status" in plan for plan in control), control
