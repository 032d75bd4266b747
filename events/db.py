"""The one write-transaction helper, and the engines it runs on.

SQLite: WAL journal, a busy timeout, and `BEGIN IMMEDIATE` for writes so that concurrent
writers queue for the write lock instead of failing half-way. PostgreSQL: an ordinary
transaction; services that must serialise take a row lock (`FOR UPDATE`) late, then re-check.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from piccolo.engine import engine_finder
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType
from piccolo.querystring import QueryString

from events.clock import now as utcnow  # noqa: F401 - the domain's one clock, re-exported
from events.errors import Busy

SQLITE_BUSY_TIMEOUT_S = 30.0


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


@asynccontextmanager
async def write_transaction() -> AsyncIterator[Any]:
    """Every service that writes runs inside this; nested calls join the outer transaction."""
    db = engine()
    try:
        if isinstance(db, SQLiteEngine):
            async with db.transaction(transaction_type=TransactionType.immediate) as tx:
                yield tx
        else:
            async with db.transaction() as tx:
                yield tx
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise Busy("the database is busy; please retry") from exc
        raise


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


def for_update() -> str:
    """Row-lock suffix: PostgreSQL locks the row; SQLite already holds the write lock (IMMEDIATE)."""
    return "" if is_sqlite() else " FOR UPDATE"


async def raw(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Raw SQL with `{}` placeholders (Piccolo's portable style); runs in the current transaction."""
    rows = await engine().run_querystring(QueryString(sql, *args))
    return [dict(row) for row in rows or []]

