"""What the database-backed Hypothesis state machines share.

Hypothesis drives synchronous rules, so a machine runs in a worker thread with an event loop of its own (the
database engines open their connections per transaction, so they work from any loop); on PostgreSQL each
example gets a small pool on that loop, so there is no new connection per query.
"""

from __future__ import annotations

from hypothesis.stateful import RuleBasedStateMachine

from events.db import engine, is_sqlite


class DatabaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        import asyncio

        super().__init__()
        self.loop = asyncio.new_event_loop()
        if not is_sqlite():
            self.run(engine().start_connection_pool(min_size=1, max_size=2))
        self.run(self._reset())

    async def _reset(self) -> None:  # pragma: no cover - each machine says how it starts clean
        raise NotImplementedError

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        if not is_sqlite():
            self.run(engine().close_connection_pool())
        self.loop.close()
