"""Constraints that Piccolo's auto-migrations cannot add portably, as raw migration steps.

SQLite has no ALTER TABLE ... ADD CONSTRAINT, so a CHECK there is a pair of BEFORE INSERT /
BEFORE UPDATE triggers that abort the statement: the same guarantee, enforced by the database.
Conditions name the row's columns as `{row}column` so one text serves both engines.
"""

from __future__ import annotations

from collections.abc import Sequence

from events.db import engine, is_sqlite


async def add_unique(table: str, name: str, columns: list[str], where: str = "") -> None:
    partial = f" WHERE {where}" if where else ""
    await engine().run_ddl(f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)}){partial}")


async def add_check(table: str, name: str, condition: str, *, columns: Sequence[str] = ()) -> None:
    """`columns`: the columns the condition reads; on SQLite its UPDATE trigger then runs only for an UPDATE that
    sets one of them (an UPDATE of another column cannot break the condition, and is spared the trigger)."""
    if is_sqlite():
        row_condition = condition.format(row="NEW.")
        for op in ("INSERT", "UPDATE"):
            of = f" OF {', '.join(columns)}" if columns and op == "UPDATE" else ""
            await engine().run_ddl(
                f"CREATE TRIGGER IF NOT EXISTS {name}_{op.lower()} BEFORE {op}{of} ON {table} FOR EACH ROW "
                f"WHEN NOT ({row_condition}) BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: {name}'); END"
            )
    else:
        await engine().run_ddl(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition.format(row='')})")


async def add_index(table: str, name: str, columns: list[str]) -> None:
    await engine().run_ddl(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)})")


async def drop_check(table: str, name: str) -> None:
    """Undo add_check (to widen a condition: drop, then add the new one)."""
    if is_sqlite():
        for op in ("insert", "update"):
            await engine().run_ddl(f"DROP TRIGGER IF EXISTS {name}_{op}")
    else:
        await engine().run_ddl(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
