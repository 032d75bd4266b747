"""The one write-transaction helper, and the engines it runs on.

SQLite: WAL journal and persistent connections per process (per event loop): one writer, on which write
transactions (`BEGIN IMMEDIATE`) and single writing statements queue behind an asyncio lock; one reader for
single reads; snapshot connections lent to read transactions. Pragmas are set once per connection, and the
statements run on the event loop's own thread: SQLite answers in microseconds, and a thread hand-off per
statement cost more than the statement. A write lock held by another process is waited for without blocking
the loop (SQLite's own busy handler is off; the wait is an asyncio back-off up to SQLITE_BUSY_TIMEOUT_S).

PostgreSQL: an asyncpg pool with connect, acquire and statement timeouts; `connection_scope()` lends one pooled
connection to everything a request does (the transaction included), and a connection goes back to the pool
without a reset query (nothing here leaves session state behind). A write transaction sends BEGIN with its first
statement that must run now; writes whose answer nobody reads are held behind until then (`write_behind`), so a
transaction of such writes alone is one statement, its own transaction. Requests waiting for a connection are served
in arrival order (asyncpg's own queue lets newcomers overtake a woken waiter). Services that must serialise
take a row lock late (`for_update()`: FOR NO KEY UPDATE, or the ledger's conditional UPDATE), then re-check; a
deferred trigger may refuse the commit itself (`commit_refusal`: the ledger's seats and waiting list settled
at commit), or tell what it decided (`commit_notice`: the place in line it handed out, without a query more).
A write transaction's locks are not held while the disk syncs: it commits with `synchronous_commit` off for
itself alone (its locks go as soon as its commit record is written), and its caller goes on only once that
record is on disk (`DURABLE`: a transaction of one tiny WAL record whose synchronous commit flushes the log up
to and past it; one sent after a commit returned covers it, so the commits of concurrent requests share one).
Nothing is answered before it is durable, and as the log is flushed in order, a later commit that is durable
implies this one is; but N writers of one event no longer queue behind one disk flush each. (A server that
refuses DURABLE to this role keeps synchronous commits: the first write transaction finds out.)

Either way a lock held too long answers Busy, and a database that cannot be reached answers Unavailable:
both 503 with Retry-After, never 500 and never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from string import Formatter
from typing import Any

from piccolo.engine import engine_finder
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType, dict_factory
from piccolo.querystring import QueryString

from events.clock import now as utcnow  # noqa: F401 - the domain's one clock, re-exported
from events.errors import Busy

SQLITE_BUSY_TIMEOUT_S = 30.0
# PostgreSQL: a lock wait beyond this answers 503 + Retry-After instead of hanging.
LOCK_TIMEOUT_MS = 20_000
# Defaults of LIFEDESIGN_DB_TIMEOUT (connect and pool acquire) and LIFEDESIGN_DB_STATEMENT_TIMEOUT.
CONNECT_TIMEOUT_S = 5.0
STATEMENT_TIMEOUT_S = 30.0
RETRY_AFTER_S = 5
BUSY_MESSAGE = "混み合っています。少し待ってからもう一度お試しください。"


class Unavailable(Busy):
    """The database cannot be reached (down, restarting, or not answering in time)."""

    code = "database_unavailable"


def unavailable() -> Unavailable:
    return Unavailable("ただいまデータベースに接続できません。少し待ってからもう一度お試しください。",
                       retry_after=RETRY_AFTER_S)


def sqlite_path(database_url: str) -> str:
    """sqlite:///relative/file or sqlite:////absolute/file (the SQLAlchemy convention)."""
    return database_url.removeprefix("sqlite:///") if database_url.startswith("sqlite:///") else database_url


def make_engine(database_url: str, *, connect_timeout: float = CONNECT_TIMEOUT_S,
                statement_timeout: float = STATEMENT_TIMEOUT_S) -> Engine:
    if database_url.startswith("postgres"):
        return PooledPostgresEngine(database_url, connect_timeout=connect_timeout,
                                    statement_timeout=statement_timeout)
    return PersistentSQLiteEngine(path=sqlite_path(database_url), timeout=SQLITE_BUSY_TIMEOUT_S)


_engine: list[Engine] = []


def engine() -> Engine:
    """The configured engine (looked up once: Piccolo's finder imports the configuration on every call)."""
    if not _engine:
        found = engine_finder()
        if found is None:  # pragma: no cover - configuration error, not a runtime path
            raise RuntimeError("no Piccolo engine configured (PICCOLO_CONF)")
        _engine.append(found)
    return _engine[0]


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


# ---------------------------------------------------------------- errors


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


def is_connection_error(exc: BaseException) -> bool:
    """The server is gone, restarting, unreachable or too slow: nothing the request did wrong."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    try:
        import asyncpg
    except ImportError:  # pragma: no cover
        return False
    if isinstance(exc, asyncpg.exceptions.PostgresConnectionError | asyncpg.exceptions.CannotConnectNowError
                  | asyncpg.exceptions.AdminShutdownError | asyncpg.exceptions.CrashShutdownError
                  | asyncpg.exceptions.QueryCanceledError | asyncpg.exceptions.ConnectionDoesNotExistError
                  | asyncpg.exceptions.IdleInTransactionSessionTimeoutError):
        return True
    return isinstance(exc, asyncpg.exceptions.InterfaceError) and "closed" in str(exc)


_COMMIT_REFUSALS: dict[str, Callable[[], Exception]] = {}


def commit_refusal(sqlstate: str, error: Callable[[], Exception]) -> None:
    """A deferred trigger that refuses a commit with `sqlstate` (PostgreSQL) reaches the caller as `error()`
    (events.places: a seat came free, or the event closed, while the entry was being written)."""
    _COMMIT_REFUSALS[sqlstate] = error


_COMMIT_NOTICES: dict[str, Callable[[str], None]] = {}


def commit_notice(sqlstate: str, handler: Callable[[str], None]) -> None:
    """A deferred trigger's `RAISE NOTICE … USING ERRCODE = sqlstate` during COMMIT (PostgreSQL) reaches
    `handler(message)` in the committing task, once the commit has succeeded (events.places: the place in line
    handed out at commit). A notice is news, never a decision: the caller must do without one."""
    _COMMIT_NOTICES[sqlstate] = handler


def _refused(exc: BaseException) -> Exception | None:
    error = _COMMIT_REFUSALS.get(getattr(exc, "sqlstate", None) or "")
    return error() if error is not None else None


def is_unique_violation(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE" in str(exc)
    try:
        import asyncpg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, asyncpg.exceptions.UniqueViolationError)


# ---------------------------------------------------------------- SQL text


@lru_cache(maxsize=8192)
def _literals(template: str) -> tuple[str, ...]:
    """The literal pieces of a Piccolo template between its `{}` (parsed once per template, not per query)."""
    return tuple(literal for literal, *_ in Formatter().parse(template))


def compiled(querystring: QueryString, engine_type: str) -> tuple[str, list[Any]]:
    """`QueryString.compile_string`, the same SQL and arguments, without re-parsing every template of the tree
    on every statement (Piccolo's own took a tenth of a registration's CPU)."""
    frozen = querystring._frozen_compiled_strings
    if frozen is not None:
        return frozen
    parts: list[str] = []
    args: list[Any] = []
    numbered = engine_type != "sqlite"

    def walk(node: QueryString) -> None:
        values = node.args
        count = len(values)
        for index, literal in enumerate(_literals(node.template)):
            parts.append(literal)
            if index < count:
                value = values[index]
                if isinstance(value, QueryString):
                    walk(value)
                else:
                    args.append(value)
                    parts.append(f"${len(args)}" if numbered else "?")

    walk(querystring)
    return "".join(parts), args


@lru_cache(maxsize=64)
def _insert_plan(table: Any, with_key: bool = False) -> tuple[str, frozenset[str], tuple[tuple[Any, ...], ...]]:
    """The INSERT's text, its columns' names, and per column: the column, its name and database name, whether it
    is JSON (dumped unless already text), its default and whether that is called (Column.get_default_value, read
    once here: on a ForeignKey every attribute read goes through a costly __getattribute__)."""
    from enum import Enum

    from piccolo.columns.column_types import JSON, JSONB

    columns = tuple(c for c in table._meta.columns if with_key or c is not table._meta.primary_key)
    names = ", ".join(c._meta.db_column_name for c in columns)
    template = f"INSERT INTO {table._meta.tablename} ({names}) VALUES ({', '.join('{}' for _ in columns)})"
    plan = []
    for column in columns:
        default = getattr(column, "default", None)
        default = default.value if isinstance(default, Enum) else None if default is ... else default
        plan.append((column, column._meta.name, column._meta.db_column_name, isinstance(column, JSON | JSONB),
                     default, callable(default)))
    return template, frozenset(c._meta.name for c in columns), tuple(plan)


_PLAIN = (str, int, float, bool, bytes, datetime, type(None))  # written as they are (convert_to_sql_value's else)


def _insert_args(table: Any, values: dict[str, Any]) -> tuple[str, tuple[tuple[Any, ...], ...], list[Any]]:
    """Piccolo's convert_to_sql_value for each column (JSON dumped, Enums and rows to their values), with the
    common cases — a plain value, a JSON column's dict — decided here without its imports and checks per call."""
    from piccolo.utils.encoding import dump_json
    from piccolo.utils.sql_values import convert_to_sql_value

    template, known, plan = _insert_plan(table, table._meta.primary_key._meta.name in values)
    if not known.issuperset(values):
        raise KeyError(f"{table._meta.tablename} has no column {sorted(set(values) - known)}")
    args = []
    for column, name, _, is_json, default, call in plan:
        value = values[name] if name in values else default() if call else default
        if is_json and isinstance(value, dict | list):
            args.append(dump_json(value))
        elif not is_json and type(value) in _PLAIN:
            args.append(value)
        else:
            args.append(convert_to_sql_value(value, column))
    return template, plan, args


def insert_query(table: Any, values: dict[str, Any], tail: str = "", *tail_args: Any) -> QueryString:
    """One row's INSERT as Piccolo's `table.insert(table(**values))` writes it (the columns' defaults, JSON
    dumped), without building a Table instance and its query on every statement (on the hot path they cost a
    registration more than its SQL did). `tail` follows the VALUES: ON CONFLICT, RETURNING. A primary key in
    `values` is written too (a key reserved beforehand, see `insert_behind`)."""
    template, _, args = _insert_args(table, values)
    return QueryString(template + tail, *args, *tail_args)


async def write_behind(querystring: QueryString) -> None:
    """A write whose answer nobody reads, held behind (PostgreSQL, in a write transaction) until the
    transaction's next statement or its commit, and then sent together with the others held, as one statement:
    a transaction of such writes alone is one statement, with no BEGIN and no COMMIT (then the wait for its
    commit to be on disk, `DURABLE`); after BEGIN, the writes held between two statements cost one round trip.
    Anywhere else it runs now. An error it meets (a UNIQUE index, a trigger's refusal) comes at that later
    statement or at the commit, inside the same transaction."""
    transaction = engine().current_transaction.get()
    if isinstance(transaction, LeasedTransaction):
        transaction.hold(compiled(querystring, "postgres"))
        return
    await engine().run_querystring(querystring)


async def insert_behind(table: Any, values: dict[str, Any]) -> dict[str, Any]:
    """One row whose primary key is in `values` (reserved beforehand), written behind (`write_behind`); the
    row as `RETURNING *` would give it, decoded — built here, not read back."""
    template, plan, args = _insert_args(table, values)
    await write_behind(QueryString(template, *args))
    return decoded({column[2]: arg for column, arg in zip(plan, args, strict=True)}, table)


# ---------------------------------------------------------------- SQLite: persistent connections

_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.I)


def _is_read(sql: str) -> bool:
    words = sql.lstrip(" \t\r\n(").split(None, 1)
    verb = words[0].upper() if words else ""
    return verb in ("SELECT", "PRAGMA", "EXPLAIN", "VALUES") or (verb == "WITH" and not _WRITES.search(sql))


class _Lanes:
    """One event loop's connections (a sqlite3 connection belongs to the thread that opened it)."""

    def __init__(self) -> None:
        self.writer: sqlite3.Connection | None = None
        self.reader: sqlite3.Connection | None = None
        self.snapshots: list[sqlite3.Connection] = []
        self.write_lock = asyncio.Lock()


class PersistentSQLiteEngine(SQLiteEngine):
    """SQLite with connections kept open (see the module doc); `connection_kwargs["timeout"]` is the bound a
    writer waits for the write lock."""

    def __init__(self, path: str, timeout: float = SQLITE_BUSY_TIMEOUT_S) -> None:
        super().__init__(path=path, timeout=timeout)
        self._lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lanes] = weakref.WeakKeyDictionary()
        self._last: tuple[asyncio.AbstractEventLoop, _Lanes] | None = None

    def lanes(self) -> _Lanes:
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop:  # the usual case: one loop, no weak-dictionary lookup
            return last[1]
        found = self._lanes.get(loop)
        if found is None:
            found = self._lanes[loop] = _Lanes()
        self._last = (loop, found)
        return found

    def bound_s(self) -> float:
        return float(self.connection_kwargs.get("timeout", SQLITE_BUSY_TIMEOUT_S))

    def open_connection(self) -> sqlite3.Connection:
        kwargs = {**self.connection_kwargs, "timeout": 0}  # no sleeping busy handler: we wait in asyncio
        connection = sqlite3.connect(**kwargs)
        connection.row_factory = dict_factory
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = NORMAL")
        return connection

    async def execute(self, connection: sqlite3.Connection, sql: str, args: Sequence[Any] = (), *,
                      wait: bool = True) -> list[dict[str, Any]]:
        """One statement; a lock held by another process is waited for (with back-off) up to the bound."""
        deadline = None
        pause = 0.001
        while True:
            try:
                cursor = connection.execute(sql, args)
                try:
                    return cursor.fetchall()
                finally:
                    cursor.close()
            except sqlite3.OperationalError as exc:
                if not wait or not is_lock_error(exc):
                    raise
                now = time.monotonic()
                deadline = deadline or now + self.bound_s()
                if now >= deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[sqlite3.Connection]:
        """This process's writers queue here: the lock, then the one writer connection."""
        lanes = self.lanes()
        try:
            async with asyncio.timeout(self.bound_s()):
                await lanes.write_lock.acquire()
        except TimeoutError:
            raise Busy(BUSY_MESSAGE) from None
        try:
            if lanes.writer is None:
                lanes.writer = self.open_connection()
            yield lanes.writer
        finally:
            lanes.write_lock.release()

    async def _run(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        transaction = self.current_transaction.get()
        if transaction is not None:
            return await self.execute(transaction.connection, sql, args, wait=False)
        if _is_read(sql):
            lanes = self.lanes()
            if lanes.reader is None:
                lanes.reader = self.open_connection()
            return await self.execute(lanes.reader, sql, args)
        async with self.writer() as connection:
            return await self.execute(connection, sql, args)

    async def run_querystring(self, querystring: QueryString, in_pool: bool = False):
        sql, args = compiled(querystring, self.engine_type)
        return await self._run(sql, args)

    async def run_ddl(self, ddl: str, in_pool: bool = False):
        return await self._run(ddl)

    def transaction(self, transaction_type: TransactionType = TransactionType.deferred,
                    allow_nested: bool = True) -> SQLiteTransaction:
        """A writing transaction whatever the type asked (Piccolo's own, such as migrations, write)."""
        return LaneTransaction(self, TransactionType.exclusive if transaction_type == TransactionType.exclusive
                               else TransactionType.immediate, allow_nested)

    def snapshot(self) -> SQLiteTransaction:
        return LaneTransaction(self, TransactionType.deferred, True, snapshot=True)

    def close_connections(self) -> None:
        loop = asyncio.get_running_loop()
        lanes = self._lanes.pop(loop, None)
        if self._last is not None and self._last[0] is loop:
            self._last = None
        if lanes is not None:
            for connection in [lanes.writer, lanes.reader, *lanes.snapshots]:
                if connection is not None:
                    connection.close()


class LaneTransaction(SQLiteTransaction):
    """A write transaction on the writer connection (holding this loop's write lock), or a read snapshot on a
    connection of its own."""

    def __init__(self, engine: PersistentSQLiteEngine, transaction_type: TransactionType, allow_nested: bool = True,
                 *, snapshot: bool = False) -> None:
        super().__init__(engine, transaction_type=transaction_type, allow_nested=allow_nested)
        self.snapshot = snapshot
        self._writer: Any = None

    async def __aenter__(self) -> SQLiteTransaction:
        if self._parent is not None:
            return self._parent
        engine: PersistentSQLiteEngine = self.engine  # type: ignore[assignment]
        if self.snapshot:
            lanes = engine.lanes()
            self.connection = lanes.snapshots.pop() if lanes.snapshots else engine.open_connection()
            await engine.execute(self.connection, "BEGIN DEFERRED")
        else:
            self._writer = engine.writer()
            self.connection = await self._writer.__aenter__()
            try:
                await engine.execute(self.connection, f"BEGIN {self.transaction_type.value}")
            except BaseException as exc:
                await self._writer.__aexit__(type(exc), exc, exc.__traceback__)
                raise
        self.context = self.engine.current_transaction.set(self)
        return self

    async def begin(self) -> None:  # pragma: no cover - __aenter__ begins
        raise NotImplementedError

    async def commit(self) -> None:
        self.connection.execute("COMMIT")
        self._committed = True

    async def rollback(self) -> None:
        self.connection.execute("ROLLBACK")
        self._rolled_back = True

    async def savepoint(self, name: str | None = None):  # pragma: no cover - nothing here uses savepoints
        raise NotImplementedError("savepoints are not used with the persistent SQLite engine")

    async def __aexit__(self, exception_type, exception, traceback) -> bool:
        if self._parent:
            return exception is None
        try:
            if exception:
                if not self._rolled_back:
                    await self.rollback()
            elif not self._committed and not self._rolled_back:
                await self.commit()
        finally:
            if self.connection.in_transaction:  # a failed COMMIT must not leave the connection inside one
                self.connection.execute("ROLLBACK")
            self.engine.current_transaction.reset(self.context)
            if self.snapshot:
                lanes = self.engine.lanes()  # type: ignore[attr-defined]
                if len(lanes.snapshots) < 4:
                    lanes.snapshots.append(self.connection)
                else:
                    self.connection.close()
            else:
                await self._writer.__aexit__(None, None, None)
        return exception is None


# ---------------------------------------------------------------- PostgreSQL: a pool with bounds


class _Lease:
    """The pooled connection a request borrows once (taken at its first statement, given back at its end)."""

    def __init__(self, db: PooledPostgresEngine) -> None:
        self.db = db
        self.connection: Any = None
        self.in_use = False
        self.done = False

    async def take(self) -> Any | None:
        """The request's connection, or None when it is in use right now (a concurrent statement takes its own)."""
        if self.done or self.in_use:
            return None
        self.in_use = True
        if self.connection is None:
            try:
                self.connection = await self.db.acquire()
            except BaseException:
                self.in_use = False
                raise
        return self.connection

    async def give_back(self, *, broken: bool = False) -> None:
        if broken:
            self.connection = None
        self.in_use = False
        if self.done:
            await self.close()

    async def close(self) -> None:
        if self.connection is not None and not self.in_use:
            connection, self.connection = self.connection, None
            await self.db.release(connection)


_lease: ContextVar[_Lease | None] = ContextVar("lifedesign_db_lease", default=None)


async def _no_reset(connection: Any) -> None:
    """asyncpg rolls back an open transaction itself; there is no session state to reset (SET LOCAL only,
    advisory locks on connections of their own), so releasing costs no round trip."""


class PooledPostgresEngine(PostgresEngine):
    def __init__(self, dsn: str, *, connect_timeout: float, statement_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        # May write transactions commit asynchronously and then wait for DURABLE? None: not yet known (the first
        # commits synchronously, then tries DURABLE once); False: DURABLE is refused here (a role without the
        # right to run it), so every commit waits for the disk itself, as PostgreSQL does by default.
        self.early_release: bool | None = None
        super().__init__(config={
            "dsn": dsn, "timeout": connect_timeout, "command_timeout": statement_timeout,
            "server_settings": {
                "statement_timeout": str(int(statement_timeout * 1000)),
                # a process that vanished mid-transaction must not hold a row lock for ever
                "idle_in_transaction_session_timeout": str(int(max(statement_timeout * 2, 60) * 1000)),
            },
        })

    async def start_connection_pool(self, **kwargs: Any) -> None:
        # One waiter at a time in the pool's own queue, the others in line behind it: asyncpg's queue lets a
        # newcomer take a connection just given back before the waiter it woke runs, and that waiter goes to the
        # back again — under load the first requests of a burst waited a second while later ones took 60 ms.
        # asyncio.Lock hands over in arrival order.
        if self.pool is None:
            self._turn = asyncio.Lock()
            try:
                import asyncpg

                self.pool = await asyncpg.create_pool(**self.config, reset=_no_reset, **kwargs)
            except Exception as exc:
                if is_connection_error(exc) or isinstance(exc, OSError):
                    raise unavailable() from exc
                raise

    async def acquire(self) -> Any:
        if self.pool is not None:
            try:  # a wait for a free connection is a queue under load: bounded by the statement timeout
                async with asyncio.timeout(self.statement_timeout) as waited:
                    async with self._turn:  # first come, first served (see _turn)
                        return await self.pool.acquire()
            except Exception as exc:
                if isinstance(exc, TimeoutError) and waited.expired():
                    raise Busy(BUSY_MESSAGE) from None
                if is_connection_error(exc) or isinstance(exc, OSError):  # the pool could not (re)connect
                    raise unavailable() from exc
                raise
        try:
            return await self.get_new_connection()
        except Exception as exc:
            if is_connection_error(exc) or isinstance(exc, OSError):
                raise unavailable() from exc
            raise

    async def release(self, connection: Any) -> None:
        try:
            if self.pool is not None:
                await self.pool.release(connection, timeout=self.connect_timeout)
            else:
                await asyncio.wait_for(connection.close(), timeout=self.connect_timeout)
        except Exception:
            connection.terminate()  # broken or hung: the pool makes a new one when needed

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        transaction = self.current_transaction.get()
        try:
            if transaction is not None:
                await transaction.ready()
                return await transaction.connection.fetch(sql, *args)
            lease = _lease.get()
            connection = await lease.take() if lease is not None else None
            if connection is not None:
                broken = False
                try:
                    return await connection.fetch(sql, *args)
                except Exception as exc:
                    broken = is_connection_error(exc)
                    if broken:
                        connection.terminate()
                    raise
                finally:
                    await lease.give_back(broken=broken)  # type: ignore[union-attr]
            connection = await self.acquire()
            try:
                return await connection.fetch(sql, *args)
            finally:
                await self.release(connection)
        except Exception as exc:
            if is_connection_error(exc):
                raise unavailable() from exc
            raise

    async def run_querystring(self, querystring: QueryString, in_pool: bool = True):
        sql, args = compiled(querystring, self.engine_type)
        return await self.fetch(sql, args)

    async def run_ddl(self, ddl: str, in_pool: bool = True):
        return await self.fetch(ddl)

    def transaction(self, allow_nested: bool = True) -> PostgresTransaction:
        return LeasedTransaction(self, allow_nested=allow_nested)


_PLACEHOLDER = re.compile(r"\$(\d+)")


def _fused(statements: Sequence[tuple[str, Sequence[Any]]], early: bool) -> tuple[str, list[Any]]:
    """Writes held behind as one statement: each a data-modifying WITH (PostgreSQL runs every one of them,
    read or not), the lock timeout set for the statement's own transaction (its deferred triggers included);
    with `early`, its commit asynchronous (the caller then waits for DURABLE)."""
    args: list[Any] = []
    for _, values in statements:
        args.extend(values)
    args.append(f"{int(LOCK_TIMEOUT_MS)}ms")
    return _fused_text(tuple((sql, len(values)) for sql, values in statements), early), args


@lru_cache(maxsize=256)
def _fused_text(shapes: tuple[tuple[str, int], ...], early: bool) -> str:
    """The text of `_fused` for statements of these texts and argument counts (the same few on every request)."""
    parts: list[str] = []
    offset = 0
    for index, (sql, count) in enumerate(shapes):
        parts.append(f"w{index} AS ({_PLACEHOLDER.sub(lambda m, o=offset: f'${int(m.group(1)) + o}', sql)})")
        offset += count
    return (f"WITH {', '.join(parts)} SELECT set_config('lock_timeout', ${offset + 1}, true)"
            + (", set_config('synchronous_commit', 'off', true)" if early else ""))


# After an asynchronous commit, before the caller goes on: a WAL record in a transaction of its own, whose
# synchronous commit waits until the log is on disk up to it, and so up to the commit before it. (An xid alone is
# not enough: a transaction that wrote no WAL but its commit record does not wait for the flush.)
DURABLE = "SELECT pg_logical_emit_message(true, 'lifedesign', '')"


class _Flushes:
    """This event loop's commits waiting to be on disk: one DURABLE, sent after a commit returned, covers it and
    every commit that returned before it was sent, so the commits of concurrent requests share one."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.commits = 0  # commits of this loop that returned (asynchronous, not yet known to be on disk)
        self.covered = 0  # the commits up to this count are on disk
        self.flight: asyncio.Future[None] | None = None  # the DURABLE in flight (done once it landed or failed)


_flushes: _Flushes | None = None  # one slot, as for the ping in flight


async def _wait_durable(connection: Any) -> None:
    """Return once the commit that just returned on `connection` is on disk. A DURABLE in flight may have been
    sent before that commit returned: wait for it to land, then look again; the first to look sends the next
    one, on its own connection, and it covers every commit counted so far (read and sent with no await between)."""
    global _flushes
    loop = asyncio.get_running_loop()
    flushes = _flushes
    if flushes is None or flushes.loop is not loop:
        flushes = _flushes = _Flushes(loop)
    flushes.commits += 1
    mine = flushes.commits
    while flushes.covered < mine:
        if flushes.flight is not None and not flushes.flight.done():
            await asyncio.shield(flushes.flight)
            continue
        flight = flushes.flight = loop.create_future()
        covers = flushes.commits
        try:
            await connection.execute(DURABLE)
            flushes.covered = max(flushes.covered, covers)
        finally:
            flight.set_result(None)  # those waiting look again: covered, or one of them sends the next


async def _try_durable(db: Any, connection: Any) -> None:
    """Once per engine, after a synchronous commit: may DURABLE run here? If the server refuses it (not a lost
    connection: that is raised), commits stay synchronous for good, and the log says so once."""
    try:
        await connection.execute(DURABLE)
    except Exception as exc:
        if is_connection_error(exc) or isinstance(exc, OSError):
            raise
        db.early_release = False
        logging.getLogger("lifedesign").warning(
            "PostgreSQL refused %s (%s): write transactions commit synchronously, holding their locks until the "
            "disk has synced", DURABLE, exc)
        return
    db.early_release = True


class LeasedTransaction(PostgresTransaction):
    """A write transaction on the request's connection (when it has one) that sends BEGIN, with the lock
    timeout, in one round trip together — and only when its first statement runs: a transaction that runs
    nothing costs nothing, and one that only holds writes behind (`write_behind`) commits them as one statement
    of its own, without BEGIN or COMMIT. Writes held after BEGIN go as one statement before the next one that
    runs now, or before COMMIT. A write transaction commits asynchronously and then waits for its commit
    to be on disk (`DURABLE`): its locks are gone before the flush (see the module's docstring); a read
    transaction commits as ever."""

    async def __aenter__(self) -> PostgresTransaction:
        if self._parent is not None:
            return self._parent
        db: PooledPostgresEngine = self.engine  # type: ignore[assignment]
        self._lease = _lease.get()
        self.connection = await self._lease.take() if self._lease is not None else None
        if self.connection is None:
            self._lease = None
            self.connection = await db.acquire()
        self._begun = False
        self._behind: list[tuple[str, Sequence[Any]]] = []
        self._broken = False
        self.context = self.engine.current_transaction.set(self)
        return self

    def hold(self, statement: tuple[str, Sequence[Any]]) -> None:
        self._behind.append(statement)

    async def ready(self) -> None:
        """Before a statement runs now: BEGIN (first time only), then the writes held behind."""
        if not self._begun:
            try:
                await self.connection.execute(f"BEGIN; SET LOCAL lock_timeout = '{int(LOCK_TIMEOUT_MS)}ms'")
            except BaseException:
                self._broken = True
                raise
            self._begun = True
        await self._send_held()

    async def _send_held(self, early: bool = False) -> None:
        if self._behind:
            sql, args = _fused(self._behind, early)
            self._behind = []
            await self.connection.execute(sql, *args)

    async def begin(self) -> None:  # pragma: no cover - the first statement begins
        raise NotImplementedError

    async def commit(self) -> None:
        if not self._begun and not self._behind:  # nothing ran, nothing held: nothing to send
            self._committed = True
            return
        heard: list[Any] = []

        def listen(_connection: Any, message: Any) -> None:
            # asyncpg schedules this (call_soon) as the notice arrives, before the statement's own answer wakes us
            if message.sqlstate in _COMMIT_NOTICES:
                heard.append(message)

        self.connection.add_log_listener(listen)
        try:
            writing = not self._begun or _writing.get()  # held writes are a write transaction's
            db = self.engine
            early = writing and db.early_release is True  # type: ignore[attr-defined]
            if self._begun:  # what is held since the last statement, then COMMIT
                try:
                    await self._send_held()
                except BaseException:  # a held write failed: the transaction is spoilt, and must not stay open
                    with contextlib.suppress(Exception):
                        await self.connection.execute("ROLLBACK")
                    self._rolled_back = True
                    raise
                await self.connection.execute("SET LOCAL synchronous_commit = off; COMMIT" if early else "COMMIT")
            else:  # only held writes: one statement, its own transaction (its triggers run at its end)
                await self._send_held(early)
            if early:
                await _wait_durable(self.connection)
            elif writing and db.early_release is None:  # type: ignore[attr-defined]
                await _try_durable(db, self.connection)
        finally:
            self.connection.remove_log_listener(listen)
        self._committed = True
        for message in heard:
            try:
                _COMMIT_NOTICES[message.sqlstate](message.message)
            except Exception:  # news only: what was committed stands, whatever a handler makes of the notice
                logging.getLogger("lifedesign").exception("commit notice %s not understood", message.sqlstate)

    async def rollback(self) -> None:
        self._behind = []
        if self._begun:
            await self.connection.execute("ROLLBACK")
        self._rolled_back = True

    async def _give_back(self, *, broken: bool = False) -> None:
        if broken:
            self.connection.terminate()
        if self._lease is not None:
            await self._lease.give_back(broken=broken)
        elif not broken:
            await self.engine.release(self.connection)  # type: ignore[attr-defined]

    async def __aexit__(self, exception_type, exception, traceback) -> bool:
        if self._parent:
            return exception is None
        broken = self._broken
        try:
            if exception:
                if not self._rolled_back and not broken:
                    try:
                        await self.rollback()
                    except Exception:  # the connection died with the transaction: the error that matters is above
                        broken = True
            elif not self._committed and not self._rolled_back:
                try:
                    await self.commit()
                except Exception as exc:
                    broken = is_connection_error(exc)
                    if broken:
                        raise unavailable() from exc
                    raise
        finally:
            self.engine.current_transaction.reset(self.context)
            await self._give_back(broken=broken)
        return exception is None


@asynccontextmanager
async def connection_scope() -> AsyncIterator[None]:
    """One pooled connection for everything a request does (PostgreSQL; SQLite keeps its own)."""
    db = engine()
    if not isinstance(db, PooledPostgresEngine) or _lease.get() is not None:
        yield
        return
    lease = _Lease(db)
    token = _lease.set(lease)
    try:
        yield
    finally:
        _lease.reset(token)
        lease.done = True  # a statement still running on it (a task that outlived the request) gives it back
        await lease.close()


class _PingFlight:
    """The ping in flight: its loop, when its own timeout ends it, and the futures of those waiting for it (one
    each: a waiter that gives up cancels its own, never the ping)."""

    __slots__ = ("loop", "ends_by", "waiters", "landed", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop, ends_by: float) -> None:
        self.loop, self.ends_by = loop, ends_by
        self.waiters: list[asyncio.Future[bool]] = []
        self.landed = False
        self.task: asyncio.Task[None] | None = None  # held here: the loop keeps only a weak reference


_flight: _PingFlight | None = None  # one slot, not a per-loop mapping: a weak dictionary's lookup cost a /health


async def ping(timeout: float) -> bool:
    """Does the database answer `SELECT 1` within `timeout` seconds? (On PostgreSQL a connection that did not
    answer is dropped, not waited for.) Health checks that arrive while one is in flight wait for its answer
    (bounded by their own timeout) instead of each asking the database (PostgreSQL: borrowing a connection for a
    round trip of its own)."""
    global _flight
    loop = asyncio.get_running_loop()
    flight = _flight
    if flight is None or flight.loop is not loop or flight.landed:
        flight = _flight = _PingFlight(loop, loop.time() + timeout)
        flight.task = loop.create_task(_fly(flight, timeout))
    waiter: asyncio.Future[bool] = loop.create_future()
    flight.waiters.append(waiter)
    if loop.time() + timeout >= flight.ends_by:  # the flight's own timeout ends it within ours: no timer of our own
        return await waiter
    try:
        async with asyncio.timeout(timeout):
            return await waiter
    except TimeoutError:
        return False


async def _fly(flight: _PingFlight, timeout: float) -> None:
    try:
        answer: bool | Exception = await _ping(timeout)
    except asyncio.CancelledError:  # the loop is closing: so are the waits
        flight.landed = True
        for waiter in flight.waiters:
            waiter.cancel()
        raise
    except Exception as exc:  # an error none of the usual ones: each waiter gets it
        answer = exc
    flight.landed = True
    for waiter in flight.waiters:
        if not waiter.done():
            if isinstance(answer, Exception):
                waiter.set_exception(answer)
            else:
                waiter.set_result(answer)


async def _ping(timeout: float) -> bool:
    db = engine()
    try:
        async with asyncio.timeout(timeout):
            if not isinstance(db, PooledPostgresEngine):
                await raw("SELECT 1 AS ok")
                return True
            connection = await db.acquire()
            try:
                await connection.fetchval("SELECT 1")
            except BaseException:
                connection.terminate()
                raise
            await db.release(connection)
    except (TimeoutError, Busy):
        return False
    except Exception as exc:
        if is_connection_error(exc) or isinstance(exc, OSError):
            return False
        raise
    return True


async def close_connections() -> None:
    """At shutdown: SQLite's connections of this loop, PostgreSQL's pool."""
    db = engine()
    if isinstance(db, PersistentSQLiteEngine):
        db.close_connections()
    elif isinstance(db, PostgresEngine) and db.pool is not None:
        await db.close_connection_pool()


# ---------------------------------------------------------------- transactions

_writing: ContextVar[bool] = ContextVar("lifedesign_writing", default=False)


def in_write_transaction() -> bool:
    """True inside `write_transaction()` (the ledger and the audit log refuse to run anywhere else)."""
    return _writing.get() and engine().current_transaction.get() is not None


@asynccontextmanager
async def write_transaction() -> AsyncIterator[Any]:
    """Every service that writes runs inside this; nested calls join the outer transaction.

    SQLite: writers of this process queue, then `BEGIN IMMEDIATE`. PostgreSQL: a lock wait beyond
    LOCK_TIMEOUT_MS ends the transaction. Either way a lock held too long answers Busy (503 + Retry-After),
    never 500; a database out of reach answers Unavailable (503 too).
    """
    db = engine()
    if db.current_transaction.get() is not None:  # join the outer transaction (a read one stays a read one)
        yield db.current_transaction.get()
        return
    token = _writing.set(True)
    try:
        async with db.transaction(transaction_type=TransactionType.immediate) if isinstance(db, SQLiteEngine) \
                else db.transaction() as tx:
            yield tx
    except Exception as exc:
        if is_lock_error(exc):
            raise Busy(BUSY_MESSAGE) from exc
        if is_connection_error(exc):
            raise unavailable() from exc
        if (refusal := _refused(exc)) is not None:
            raise refusal from exc
        raise
    finally:
        _writing.reset(token)


def transaction_memo(name: str) -> dict[Any, Any] | None:
    """A dict that lives as long as the current transaction (nested ones share the outer one's), None outside any:
    what one part of a transaction wrote, so that a later part need not read it back (the invite state written
    with a confirmation, for the reminder queued after it). A transaction run again is a new one, with new memos."""
    transaction = engine().current_transaction.get()
    if transaction is None:
        return None
    return transaction.__dict__.setdefault("_lifedesign_memos", {}).setdefault(name, {})


@asynccontextmanager
async def read_transaction() -> AsyncIterator[Any]:
    """A consistent snapshot for multi-query reads (exports, summaries)."""
    db = engine()
    if db.current_transaction.get() is not None:
        yield db.current_transaction.get()
        return
    async with db.snapshot() if isinstance(db, PersistentSQLiteEngine) else db.transaction() as tx:
        yield tx


# ---------------------------------------------------------------- rows


def aware(value: datetime | None) -> datetime | None:
    """Timestamps as aware UTC datetimes (a driver may hand back naive ones)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def for_update() -> str:
    """Row-lock suffix: PostgreSQL locks the row; SQLite already holds the write lock (IMMEDIATE).

    NO KEY UPDATE, the lock an UPDATE takes: it serialises writers of the row but, unlike FOR UPDATE, does not
    wait for transactions that merely insert rows referring to it (their foreign-key check holds KEY SHARE) —
    which would deadlock against a waiting-list entry settled at commit (events.places, rule 1)."""
    return "" if is_sqlite() else " FOR NO KEY UPDATE"


async def raw(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Raw SQL with `{}` placeholders (Piccolo's portable style); runs in the current transaction."""
    rows = await engine().run_querystring(QueryString(sql, *args))
    return [dict(row) for row in rows or []]


_KINDS: dict[Any, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}


def decoded(row: dict[str, Any], table: Any) -> dict[str, Any]:
    """A raw row of `table` as Piccolo's `.output(load_json=True)` gives it: JSON parsed, timestamps aware."""
    kinds = _KINDS.get(table)
    if kinds is None:
        def named(*types: str) -> tuple[str, ...]:
            return tuple(c._meta.db_column_name for c in table._meta.columns if type(c).__name__ in types)

        kinds = _KINDS[table] = (named("JSON", "JSONB"), named("Timestamptz"), named("Boolean"))
    for name in kinds[0]:
        if isinstance(row.get(name), str | bytes):
            row[name] = json.loads(row[name])
    for name in kinds[1]:
        if row.get(name) is not None:
            row[name] = aware(row[name])
    for name in kinds[2]:
        if row.get(name) is not None and not isinstance(row[name], bool):
            row[name] = bool(row[name])
    return row
