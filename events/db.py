"""The one write-transaction helper, and the engines it runs on.

SQLite: WAL journal, a busy timeout, and `BEGIN IMMEDIATE` for writes so that concurrent
writers queue for the write lock instead of failing half-way. PostgreSQL: an ordinary
transaction; services that must serialise take a row lock (`FOR UPDATE`) late, then re-check.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from piccolo.engine import engine_finder
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType
from piccolo.querystring import QueryString

from events.clock import now as utcnow  # noqa: F401 - the domain's one clock, re-exported
from events.errors import Busy

SQLITE_BUSY_TIMEOUT_S = 30.0
# PostgreSQL: a lock wait beyond this answers 503 + Retry-After instead of hanging.
LOCK_TIMEOUT_MS = 20_000


def sqlite_path(database_url: str) -> str:
    """sqlite:///relative/file or sqlite:////absolute/file (the SQLAlchemy convention)."""
    return database_url.removeprefix("sqlite:///") if database_url.startswith("sqlite:///") else database_url


class TunedSQLiteEngine(SQLiteEngine):
    """`synchronous=NORMAL` is per connection (safe with WAL: a crash loses at most the last commits, never
    consistency), and Piccolo opens a connection per transaction, so set it on each."""

    async def get_connection(self):  # type: ignore[override]
        connection = await super().get_connection()
        await connection.execute("PRAGMA synchronous = NORMAL")
        return connection


def make_engine(database_url: str) -> Engine:
    if database_url.startswith("postgres"):
        return PostgresEngine(config={"dsn": database_url})
    return TunedSQLiteEngine(path=sqlite_path(database_url), timeout=SQLITE_BUSY_TIMEOUT_S)


def engine() -> Engine:
    found = engine_finder()
    if found is None:  # pragma: no cover - configuration error, not a runtime path
        raise RuntimeError("no Piccolo engine configured (PICCOLO_CONF)")
    return found


def is_sqlite() -> bool:
    return engine().engine_type == "sqlite"


def prepare_sqlite(path: str) -> None:
    """WAL lets readers go on while one writer writes; it is a property of the file, set once."""
    con = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
    finally:
        con.close()


_sqlite_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
_writing: ContextVar[bool] = ContextVar("lifedesign_writing", default=False)


def in_write_transaction() -> bool:
    """True inside `write_transaction()` (the ledger and the audit log refuse to run anywhere else)."""
    return _writing.get() and engine().current_transaction.get() is not None


@asynccontextmanager
async def _queue_sqlite_writer() -> AsyncIterator[None]:
    """SQLite: this process's writers queue on an asyncio lock before BEGIN IMMEDIATE. The database lock
    still serialises processes; the queue only spares them SQLite's sleeping busy-handler (which wakes
    waiters late and made a 200-client race crawl)."""
    loop = asyncio.get_running_loop()
    lock = _sqlite_writers.setdefault(loop, asyncio.Lock())
    try:
        await asyncio.wait_for(lock.acquire(), timeout=SQLITE_BUSY_TIMEOUT_S)
    except TimeoutError:
        raise Busy("混み合っています。少し待ってからもう一度お試しください。") from None
    try:
        yield
    finally:
        lock.release()


def is_lock_error(exc: BaseException) -> bool:
    """The database stayed locked (or a lock wait was cut short): the caller may retry."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        return "locked" in text or "busy" in text
    try:
        import asyncpg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, asyncpg.exceptions.LockNotAvailableError | asyncpg.exceptions.DeadlockDetectedError
                      | asyncpg.exceptions.SerializationError | asyncpg.exceptions.TooManyConnectionsError)


def is_unique_violation(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE" in str(exc)
    try:
        import asyncpg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, asyncpg.exceptions.UniqueViolationError)


@asynccontextmanager
async def write_transaction() -> AsyncIterator[Any]:
    """Every service that writes runs inside this; nested calls join the outer transaction.

    SQLite: writers of this process queue, then `BEGIN IMMEDIATE`. PostgreSQL: a lock wait beyond
    LOCK_TIMEOUT_MS ends the transaction. Either way a lock held too long answers Busy (503 + Retry-After),
    never 500.
    """
    db = engine()
    if db.current_transaction.get() is not None:  # join the outer transaction (a read one stays a read one)
        yield db.current_transaction.get()
        return
    token = _writing.set(True)
    try:
        if isinstance(db, SQLiteEngine):
            async with _queue_sqlite_writer(), db.transaction(transaction_type=TransactionType.immediate) as tx:
                yield tx
        else:
            async with db.transaction() as tx:
                await db.run_querystring(QueryString(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'"))
                yield tx
    except Exception as exc:
        if is_lock_error(exc):
            raise Busy("混み合っています。少し待ってからもう一度お試しください。") from exc
        raise
    finally:
        _writing.reset(token)


@asynccontextmanager
async def read_transaction() -> AsyncIterator[Any]:
    """A consistent snapshot for multi-query reads (exports, summaries)."""
    db = engine()
    if isinstance(db, SQLiteEngine):
        async with db.transaction(transaction_type=TransactionType.deferred) as tx:
            yield tx
    else:
        async with db.transaction() as tx:
            yield tx


def aware(value: datetime | None) -> datetime | None:
    """Timestamps as aware UTC datetimes (a driver may hand back naive ones)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def for_update() -> str:
    """Row-lock suffix: PostgreSQL locks the row; SQLite already holds the write lock (IMMEDIATE)."""
    return "" if is_sqlite() else " FOR UPDATE"


async def raw(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Raw SQL with `{}` placeholders (Piccolo's portable style); runs in the current transaction."""
    rows = await engine().run_querystring(QueryString(sql, *args))
    return [dict(row) for row in rows or []]

