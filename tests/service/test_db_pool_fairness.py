"""PostgreSQL: a request waiting for a pooled connection is served in arrival order (events.db).

asyncpg's pool queue lets a newcomer take a connection given back before the waiter it woke has run; that
waiter goes to the back again, so under load the first requests of a burst waited a second while later ones
were served in 60 ms. The engine lets one waiter at a time into the pool's queue, the rest in line behind it.
The negative control runs the same load on the bare asyncpg pool and sees requests overtaken. Whether a newcomer
gets in first depends on the order the event loop happens to run ready tasks in (about one run in five of the
bare pool sees none), so the control tries up to TRIALS runs and the fair engine must pass every one of them.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from events.db import PooledPostgresEngine
from tests.conftest import ON_POSTGRES

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="SQLite has no connection pool")

WORKERS, ROUNDS, CONNECTIONS = 24, 8, 2
TRIALS = 10  # a bare pool overtakes in none of 10 runs about once in 10^7


async def _overtaken(acquire, release) -> int:
    """Requests that waited while one that asked later got a connection first, under a steady crowd."""
    arrivals = itertools.count()
    served: list[int] = []

    async def worker() -> None:
        for _ in range(ROUNDS):
            ticket = next(arrivals)
            connection = await acquire()
            served.append(ticket)
            try:
                await connection.fetchval("SELECT 1")
            finally:
                await release(connection)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    assert sorted(served) == list(range(WORKERS * ROUNDS))
    return sum(1 for i, ticket in enumerate(served) if any(later > ticket for later in served[:i]))


async def _engine(settings) -> PooledPostgresEngine:
    engine = PooledPostgresEngine(settings.database_url, connect_timeout=10, statement_timeout=30)
    await engine.start_connection_pool(min_size=CONNECTIONS, max_size=CONNECTIONS)
    return engine


async def test_connections_go_to_waiters_in_arrival_order(settings):
    for _ in range(TRIALS):
        engine = await _engine(settings)
        try:
            assert await _overtaken(engine.acquire, engine.release) == 0
        finally:
            await engine.close_connection_pool()


async def test_negative_control_the_bare_pool_lets_newcomers_overtake(settings):
    seen = []
    while len(seen) < TRIALS and not any(seen):
        engine = await _engine(settings)
        try:
            pool = engine.pool
            seen.append(await _overtaken(pool.acquire, pool.release))
        finally:
            await engine.close_connection_pool()
    assert any(seen), seen
