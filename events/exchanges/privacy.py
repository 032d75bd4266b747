"""The exchanges area's share of personal-data rights (events.privacy).

Disclosure: the person's seats (session, round, table) and presence. Erasure: seats in rounds not yet held
of sessions still to come are removed (the coordinator's re-plan fills the table); seats of held rounds and
presence stay as rows of an anonymised person, so who-met-whom counts and attendance figures survive.
"""

from __future__ import annotations

from typing import Any

from events import privacy
from events.db import raw
from events.exchanges.tables import ExchangePresence, TableSeat

TABLES = {"table_seat": "交流会の席", "exchange_presence": "交流会の出欠"}


async def export(person_id: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "table_seat": await TableSeat.select(
            TableSeat.id, TableSeat.session, TableSeat.session.event.title.as_alias("event_title"), TableSeat.round,
            TableSeat.table_no,
        ).where(TableSeat.person == person_id).order_by(TableSeat.id),
        "exchange_presence": await ExchangePresence.select(
            ExchangePresence.id, ExchangePresence.session, ExchangePresence.status, ExchangePresence.updated_at,
        ).where(ExchangePresence.person == person_id).order_by(ExchangePresence.id),
    }


async def erase(erasure: privacy.Erasure) -> None:
    await raw(
        "DELETE FROM table_seat WHERE person = {} AND id IN (SELECT ts.id FROM table_seat ts JOIN exchange_session s "
        "ON s.id = ts.session JOIN event e ON e.id = s.event WHERE ts.round > s.current_round AND e.ends_at > {})",
        erasure.person_id, erasure.now)


def register() -> None:
    privacy.register_part(privacy.Part("exchanges", TABLES, export, erase))
