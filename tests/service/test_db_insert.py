"""events.db.insert_query writes the same row as Piccolo's `Table.insert(Table(**values))`: every column, its
defaults, JSON and timestamps — on the engine under test. The control: a value left out changes the row, and
a misspelt column is refused instead of silently dropped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.core.tables import OutboxMessage
from events.db import decoded, engine, insert_query, write_transaction
from events.seminars.tables import Registration
from tests.conftest import make_person
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
