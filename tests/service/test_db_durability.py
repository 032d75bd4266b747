"""PostgreSQL: a write transaction lets its locks go before the disk syncs, yet its caller goes on only once its
commit is on disk (events.db: `synchronous_commit` off for the transaction itself, then `DURABLE`).

Read off the server's own log positions: the position the transaction's writes had reached, read inside the
transaction (or, for a transaction of held writes alone, written by its own INSERT), lies behind the flushed
position by the time `write_transaction()` returns — for a transaction that began (BEGIN … COMMIT) and for one
of held writes alone, which is its own statement. The control replaces DURABLE by a statement that writes
nothing: the same commits then return with the log not yet flushed past them, so the check sees a missing
flush; and a plain synchronous COMMIT (a read transaction's) needs no DURABLE to be flushed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg.connection
import pytest
from piccolo.querystring import QueryString

from events import db as events_db
from events.core.tables import OutboxMessage
from events.db import insert_query, raw, read_transaction, write_behind, write_transaction
from tests.conftest import ON_POSTGRES

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's asynchronous commit; SQLite syncs each commit")

WHEN = datetime(2026, 5, 1, 3, 4, 5, tzinfo=UTC)
ROUNDS = 8


def _outbox(key: str, subject: object = "s") -> dict:
    return {"idempotency_key": key, "kind": "x", "recipient": "d@example.jp", "subject": subject, "message": b"m",
            "due_at": WHEN, "created_at": WHEN}


async def _flushed_past(lsn: str) -> bool:
    return (await raw("SELECT pg_current_wal_flush_lsn() > CAST({}::text AS pg_lsn) AS past", lsn))[0]["past"]


async def _begun(key: str) -> bool:
    """A transaction that began: its writes, then the log position read inside it; flushed past it on return?"""
    async with write_transaction():
        await raw("INSERT INTO outbox_message (idempotency_key, kind, recipient, subject, message, due_at, created_at)"
                  " VALUES ({}, 'x', 'd@example.jp', 's', {}, {}, {})", key, b"m", WHEN, WHEN)
        lsn = (await raw("SELECT pg_current_wal_insert_lsn()::text AS lsn"))[0]["lsn"]
    return await _flushed_past(lsn)


async def _held(key: str) -> bool:
    """A transaction of one held write (its own statement): the row keeps the log position it was written at."""
    async with write_transaction():
        await write_behind(insert_query(OutboxMessage, _outbox(key, QueryString("pg_current_wal_insert_lsn()::text"))))
    lsn = (await raw("SELECT subject FROM outbox_message WHERE idempotency_key = {}", key))[0]["subject"]
    return await _flushed_past(lsn)


async def test_a_write_transaction_returns_only_once_its_commit_is_on_disk(db):
    begun = [await _begun(f"begun-{n}") for n in range(ROUNDS)]
    held = [await _held(f"held-{n}") for n in range(ROUNDS)]
    assert all(begun) and all(held), (begun, held)


async def test_control_without_durable_the_commits_return_unflushed(db, monkeypatch):
    monkeypatch.setattr(events_db, "DURABLE", "SELECT 1")  # a statement that writes nothing: no flush waited for
    begun = [await _begun(f"begun-{n}") for n in range(ROUNDS)]
    held = [await _held(f"held-{n}") for n in range(ROUNDS)]
    # the WAL writer flushes in the background every wal_writer_delay (200 ms): some may be flushed by then
    assert not all(begun) and not all(held), (begun, held)
    assert len(await raw("SELECT id FROM outbox_message")) == 2 * ROUNDS  # committed all the same


async def test_concurrent_commits_share_one_wait_and_each_is_on_disk(db, monkeypatch):
    """A DURABLE sent after a commit returned covers it: commits that return while one is in flight wait for it to
    land and then share the next. Its flush is held up 50 ms (so the others return meanwhile, on any machine)."""
    monkeypatch.setattr(events_db, "DURABLE", "SELECT pg_sleep(0.05), pg_logical_emit_message(true, 'lifedesign', '')")
    sent: list[str] = []
    real = asyncpg.connection.Connection.execute

    async def counted(self, query, *args, **kwargs):
        if query == events_db.DURABLE:
            sent.append(query)
        return await real(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", counted)
    together = await asyncio.gather(*(_begun(f"together-{n}") for n in range(12)))
    assert all(together) and 1 <= len(sent) <= 3, (together, len(sent))
    sent.clear()
    one_by_one = [await _begun(f"alone-{n}") for n in range(3)]  # control: nobody to share with
    assert all(one_by_one) and len(sent) == 3


async def test_a_read_transaction_commits_as_before(db, monkeypatch):
    monkeypatch.setattr(events_db, "DURABLE", "SELECT 1/0")  # fails wherever it runs
    async with read_transaction():  # a read transaction does not wait for a flush: it wrote nothing
        await raw("SELECT 1 AS one")
    with pytest.raises(Exception, match="division by zero"):  # control: a write transaction does run it
        async with write_transaction():
            await raw("SELECT 1 AS one")


async def test_a_server_that_refuses_durable_keeps_synchronous_commits(db, monkeypatch):
    """A role without the right to run DURABLE: the first write transaction commits synchronously and finds out,
    the next ones commit synchronously too, and every one returns flushed. The control, with early release taken
    for granted, shows what the probe prevents: a commit that went through, answered with an error."""
    from events.db import engine

    refused = "DO $$ BEGIN RAISE insufficient_privilege USING MESSAGE = 'permission denied'; END $$"
    monkeypatch.setattr(events_db, "DURABLE", refused)
    monkeypatch.setattr(engine(), "early_release", None)
    assert await _begun("refused-first") and engine().early_release is False
    assert await _begun("refused-next") and await _held("refused-held")
    monkeypatch.setattr(engine(), "early_release", True)
    with pytest.raises(Exception, match="permission denied"):
        await _begun("refused-control")
    assert len(await raw("SELECT id FROM outbox_message WHERE idempotency_key = 'refused-control'")) == 1
