"""events.db.insert_query writes the same row as Piccolo's `Table.insert(Table(**values))`: every column, its
defaults, JSON and timestamps — on the engine under test. The control: a value left out changes the row, and
a misspelt column is refused instead of silently dropped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from events.core.tables import OutboxMessage
from events.db import decoded, engine, insert_query, write_transaction
from events.seminars.tables import Registration
from tests.conftest import ON_POSTGRES, make_person
from tests.service.seminars_helpers import new_event

WHEN = datetime(2026, 5, 1, 3, 4, 5, tzinfo=UTC)


async def _row(table, row_id: int) -> dict:
    found = await table.select().where(table._meta.primary_key == row_id).output(load_json=True).first()
    found.pop("id")
    return decoded(found, table)


async def _both(table, values: dict, other: dict, tail: str = " RETURNING id") -> tuple[dict, dict]:
    async with write_transaction():
        by_piccolo = (await table.insert(table(**values)).returning(table._meta.primary_key))[0]["id"]
        ours = (await engine().run_querystring(insert_query(table, {**values, **other}, tail)))[0]["id"]
    return await _row(table, by_piccolo), await _row(table, ours)


async def test_an_outbox_row_is_the_same(db):
    values = {"idempotency_key": "k1", "kind": "seminar_waitlisted", "recipient": "a@example.jp", "subject": "件名",
              "message": b"\x00draft", "message_id": "<m1@example.jp>", "holds_secret": True, "due_at": WHEN,
              "created_at": WHEN, "group_key": "g"}
    piccolo, ours = await _both(OutboxMessage, values, {"idempotency_key": "k2", "message_id": "<m2@example.jp>"},
                                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id")
    assert {**piccolo, "idempotency_key": "k2", "message_id": "<m2@example.jp>"} == ours
    assert ours["status"] == "queued" and ours["attempts"] == 0 and ours["last_error"] == "" and ours["sent_at"] is None


async def test_a_registration_row_is_the_same(db):
    event_id = await new_event(capacity=3)
    first, second = await make_person("student"), await make_person("student")
    values = {"event": event_id, "person": first, "status": "waitlisted", "answers": {"q1": ["はい", 2]},
              "queue_position": 4, "created_at": WHEN, "updated_at": WHEN, "priority_reason": "none"}
    piccolo, ours = await _both(Registration, values, {"person": second})
    assert {**piccolo, "person": second} == ours
    assert ours["answers"] == {"q1": ["はい", 2]} and ours["calendar_sequence"] == 0 and ours["confirmed_at"] is None


async def test_control_a_difference_shows_and_a_misspelt_column_is_refused(db):
    values = {"idempotency_key": "k3", "kind": "x", "recipient": "b@example.jp", "subject": "s", "message": b"m",
              "due_at": WHEN, "created_at": WHEN}
    piccolo, ours = await _both(OutboxMessage, values, {"idempotency_key": "k4", "group_key": "other"})
    assert piccolo != {**ours, "idempotency_key": "k3"}  # the comparison sees one column's difference
    with pytest.raises(KeyError):
        insert_query(OutboxMessage, {**values, "recipeint": "typo@example.jp"})


# ---------------------------------------------------------------- writes held behind (events.db.write_behind)

async def _reserved() -> int:
    from events.db import is_sqlite, raw
    from events.places import RESERVE_ID

    if is_sqlite():  # SQLite runs a held write at once; any free id will do
        return (await raw("SELECT COALESCE(MAX(id), 0) + 1000 AS id FROM registration"))[0]["id"]
    return (await raw(f"SELECT {RESERVE_ID} AS id"))[0]["id"]


def _waiting(event_id: int, person: int, row_id: int) -> dict:
    return {"id": row_id, "event": event_id, "person": person, "status": "waitlisted", "answers": {"q": "はい"},
            "queue_position": 7, "created_at": WHEN, "updated_at": WHEN, "priority_reason": "none"}


def _outbox(key: str) -> dict:
    return {"idempotency_key": key, "kind": "x", "recipient": "c@example.jp", "subject": "s", "message": b"m",
            "due_at": WHEN, "created_at": WHEN}


async def test_a_row_written_behind_is_the_row_read_back(db):
    from events.db import insert_behind

    event_id, person = await new_event(capacity=3), await make_person("student")
    row_id = await _reserved()
    async with write_transaction():
        told = await insert_behind(Registration, _waiting(event_id, person, row_id))
    read = await _row(Registration, row_id)
    assert told.pop("id") == row_id and told == read and read["answers"] == {"q": "はい"}


async def test_held_writes_commit_together_or_not_at_all(db):
    from events.db import insert_behind, raw, write_behind

    event_id, person = await new_event(capacity=3), await make_person("student")
    row_id = await _reserved()
    with pytest.raises(Exception) as refused:  # the second row takes the first one's id: the whole commit fails
        async with write_transaction():
            await write_behind(insert_query(OutboxMessage, _outbox("behind-1")))
            await insert_behind(Registration, _waiting(event_id, person, row_id))
            await insert_behind(Registration, _waiting(event_id, await make_person("student"), row_id))
    from events.db import is_unique_violation

    assert is_unique_violation(refused.value), refused.value
    assert not await raw("SELECT id FROM outbox_message WHERE idempotency_key = {}", "behind-1")
    with pytest.raises(RuntimeError):  # the body fails after holding a write: nothing is written
        async with write_transaction():
            await write_behind(insert_query(OutboxMessage, _outbox("behind-2")))
            raise RuntimeError("the service failed")
    assert not await raw("SELECT id FROM outbox_message WHERE idempotency_key = {}", "behind-2")
    async with write_transaction():  # control: the same writes without the clash are all kept
        await write_behind(insert_query(OutboxMessage, _outbox("behind-1")))
        await insert_behind(Registration, _waiting(event_id, person, row_id))
        seen = await raw("SELECT COUNT(*) AS n FROM outbox_message WHERE idempotency_key = {}", "behind-1")
        assert seen[0]["n"] == 1  # a statement after a held write sees it (held writes go first)
    assert (await _row(Registration, row_id))["person"] == person


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite runs a held write at once")
async def test_a_held_write_that_fails_at_commit_leaves_no_transaction_open(db):
    """After BEGIN, writes held since the last statement go just before COMMIT; if one fails, the transaction is
    rolled back there, so its pooled connection goes back clean (the pool sends no reset). Control: the same
    failing statement after a bare BEGIN leaves asyncpg's connection inside the spoilt transaction."""
    from events.db import is_unique_violation, raw, write_behind

    await raw("INSERT INTO outbox_message (idempotency_key, kind, recipient, subject, message, due_at, created_at) "
              "VALUES ({}, 'x', 'c@example.jp', 's', {}, {}, {})", "taken-key", b"m", WHEN, WHEN)
    with pytest.raises(Exception) as refused:
        async with write_transaction() as transaction:
            connection = transaction.connection
            await raw("SELECT 1 AS begun")  # BEGIN went with it
            await write_behind(insert_query(OutboxMessage, _outbox("taken-key")))  # no ON CONFLICT: it clashes
    assert is_unique_violation(refused.value), refused.value
    assert not connection.is_in_transaction()
    async with write_transaction():  # and the next transaction runs as ever
        assert (await raw("SELECT COUNT(*) AS n FROM outbox_message WHERE idempotency_key = {}", "taken-key"))[0]["n"] == 1
    control = await engine().acquire()
    try:
        import asyncpg

        await control.execute("BEGIN")
        with pytest.raises(asyncpg.UniqueViolationError):
            await control.execute("INSERT INTO outbox_message (idempotency_key, kind, recipient, subject, message, "
                                  "due_at, created_at) VALUES ('taken-key', 'x', 'c', 's', '', now(), now())")
        assert control.is_in_transaction()
        await control.execute("ROLLBACK")
    finally:
        await engine().release(control)


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite runs a held write at once")
async def test_a_transaction_of_held_writes_is_one_statement_then_a_durable_wait(db):
    from events.db import raw, write_behind

    async def sent(read_between: bool) -> list[str]:
        seen: list[str] = []
        async with write_transaction() as transaction:
            transaction.connection.add_query_logger(lambda record: seen.append(record.query))
            await write_behind(insert_query(OutboxMessage, _outbox(f"one-{read_between}")))
            if read_between:
                await raw("SELECT 1 AS between")
            await write_behind(insert_query(OutboxMessage, _outbox(f"two-{read_between}")))
        await asyncio.sleep(0)  # asyncpg hands query records to its loggers on the next loop turn
        return seen

    from events.db import DURABLE

    held = await sent(False)  # the writes, then the wait for their commit to be on disk (test_db_durability)
    assert len(held) == 2 and held[0].startswith("WITH w0 AS (INSERT INTO outbox_message"), held
    assert "w1 AS (INSERT INTO outbox_message" in held[0] and held[1] == DURABLE
    control = await sent(True)  # a statement that must run now begins the transaction: BEGIN … COMMIT as ever
    assert control[0].startswith("BEGIN") and len(control) == 6 and control[-1] == DURABLE, control
    assert control[-2] == "SET LOCAL synchronous_commit = off; COMMIT", control
    keys = await raw("SELECT idempotency_key FROM outbox_message WHERE idempotency_key LIKE {} OR "
                     "idempotency_key LIKE {} ORDER BY idempotency_key", "one-%", "two-%")
    assert [k["idempotency_key"] for k in keys] == ["one-False", "one-True", "two-False", "two-True"]
