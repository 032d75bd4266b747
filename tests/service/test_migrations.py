"""Migrations apply forwards on the test database (SQLite or PostgreSQL) and are idempotent."""

from piccolo.conf.apps import Finder

from events.db import raw
from lifedesign.migrate import migrate


async def test_every_table_exists_and_migrating_again_is_a_no_op(db, settings):
    await migrate(settings)  # second run: nothing to do, no error
    for table in Finder().get_table_classes():
        rows = await raw(f"SELECT COUNT(*) AS n FROM {table._meta.tablename}")
        assert rows[0]["n"] == 0


async def test_capacity_check_is_enforced_by_the_database(db):
    import pytest

    from events.db import utcnow
    from events.seminars.tables import Event

    now = utcnow()
    await Event.insert(Event(title="t", starts_at=now, ends_at=now, capacity=1, taken=1, created_at=now,
                             updated_at=now))
    with pytest.raises(Exception) as caught:
        await Event.update({Event.taken: 2}).where(Event.id > 0)
    assert "event_seats_within_capacity" in str(caught.value) or "check" in str(caught.value).lower()
