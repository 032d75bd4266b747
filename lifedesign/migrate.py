"""Apply Piccolo migrations of every app, once, even when several processes start together."""

from __future__ import annotations

import contextlib
import io

from piccolo.apps.migrations.commands.forwards import run_forwards

from events.db import prepare_sqlite
from lifedesign.settings import Settings

_MIGRATION_LOCK_KEY = 4_242_001


async def migrate(settings: Settings, *, verbose: bool = False) -> str:
    output = io.StringIO()
    if settings.database_kind == "sqlite":
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        prepare_sqlite(str(settings.sqlite_path))
        with contextlib.redirect_stdout(output) if not verbose else contextlib.nullcontext():
            result = await run_forwards("all")
    else:
        import asyncpg

        # A session-level advisory lock on a connection of its own serialises concurrent start-ups.
        lock_connection = await asyncpg.connect(settings.database_url)
        try:
            await lock_connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
            with contextlib.redirect_stdout(output) if not verbose else contextlib.nullcontext():
                result = await run_forwards("all")
        finally:
            await lock_connection.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_KEY)
            await lock_connection.close()
    if not result.success:
        raise RuntimeError(f"migration failed: {result.message}")
    return output.getvalue()
