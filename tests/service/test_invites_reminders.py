"""Reminders: queued with the confirmation for the day before at 9:00 Tokyo, withdrawn and re-queued, opt-out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.config import config, configure
from events.core.tables import OutboxMessage, Person
from events.ical import TOKYO
from events.invites import reminders
from events.invites.reminders import reminder_due
from tests.conftest import make_person, parse_mail
from tests.service.test_invites_flow import (  # noqa: F401 - invites_installed is an autouse fixture
    cancel_event,
    cancel_place,
    change_event,
    confirm,
    future_day,
    invites_installed,
    make_event,
)


async def reminder_rows(person_id: int | None = None) -> list[dict]:
    query = OutboxMessage.select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.due_at, OutboxMessage.group_key,
                                 OutboxMessage.message).where(OutboxMessage.kind == "reminder").order_by(OutboxMessage.id)
    rows = await query
    return [r for r in rows if person_id is None or r["group_key"].startswith(f"reminder:p{person_id}:")]


def at_utc(value) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value.astimezone(UTC)


@pytest.mark.parametrize(
    ("starts", "days_before", "hour", "expected"),
    [
        (datetime(2026, 7, 10, 10, 0, tzinfo=TOKYO), 1, 9, datetime(2026, 7, 9, 9, 0, tzinfo=TOKYO)),
        # 08:30 JST on the 1st is still the 31st in UTC: the day is Tokyo's, not UTC's.
        (datetime(2026, 7, 31, 23, 30, tzinfo=UTC), 1, 9, datetime(2026, 7, 31, 9, 0, tzinfo=TOKYO)),
        (datetime(2026, 1, 1, 0, 0, tzinfo=TOKYO), 1, 9, datetime(2025, 12, 31, 9, 0, tzinfo=TOKYO)),
        (datetime(2026, 7, 10, 18, 0, tzinfo=TOKYO), 0, 12, datetime(2026, 7, 10, 12, 0, tzinfo=TOKYO)),
        (datetime(2026, 7, 10, 18, 0, tzinfo=TOKYO), 3, 18, datetime(2026, 7, 7, 18, 0, tzinfo=TOKYO)),
    ],
)
def test_reminder_due_is_a_tokyo_wall_clock_time(starts, days_before, hour, expected):
    assert reminder_due(starts, days_before=days_before, hour=hour) == expected


async def test_confirmed_place_queues_a_reminder_with_unsubscribe_headers(db):
    person = await make_person("student")
    starts = future_day(10, 14)
    event_id = await make_event(starts_at=starts)
    await confirm(event_id, person)
    (row,) = await reminder_rows(person)
    assert row["status"] == "queued"
    assert at_utc(row["due_at"]) == (starts - timedelta(days=1)).replace(hour=9).astimezone(UTC)
    message = parse_mail(bytes(row["message"]))
    unsubscribe, mailto = (part.strip() for part in message["List-Unsubscribe"].split(","))
    assert unsubscribe.startswith(f"<{config().base_url}/reminders/unsubscribe/") and unsubscribe.endswith(">")
    assert mailto == f"<mailto:{config().mail_from}?subject=unsubscribe>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "明日のイベントのご案内" in message["Subject"]
    assert unsubscribe[1:-1] in message.get_body(preferencelist=("plain",)).get_content()


async def test_no_reminder_when_it_would_be_late_or_unwanted(db):
    # Two hours ahead: the day before at 9:00 Tokyo is always past (also when the start is after midnight).
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
    person = await make_person("student")
    await confirm(await make_event(starts_at=soon), person)
    quiet = await make_person("student")
    await Person.update({Person.reminders: False}).where(Person.id == quiet)
    await confirm(await make_event(), quiet)
    assert await reminder_rows() == []
    # Negative control: the same person with reminders on, an event far enough ahead, gets one.
    await confirm(await make_event(), person)
    assert len(await reminder_rows(person)) == 1


async def test_reminder_withdrawn_on_cancel_and_requeued_on_move(db):
    person = await make_person("student")
    event_id = await make_event(starts_at=future_day(10, 10))
    registration_id = await confirm(event_id, person)
    moved = future_day(20, 15)
    await change_event(event_id, starts_at=moved, ends_at=moved + timedelta(hours=1))
    first, second = await reminder_rows(person)
    assert first["status"] == "withdrawn"
    assert second["status"] == "queued"
    assert at_utc(second["due_at"]) == (moved - timedelta(days=1)).replace(hour=9).astimezone(UTC)
    # Moving back to the first time queues a new row again (the key carries the invite SEQUENCE).
    back = future_day(10, 10)
    await change_event(event_id, starts_at=back, ends_at=back + timedelta(hours=2))
    assert [r["status"] for r in await reminder_rows(person)] == ["withdrawn", "withdrawn", "queued"]
    await cancel_place(registration_id)
    assert [r["status"] for r in await reminder_rows(person)] == ["withdrawn", "withdrawn", "withdrawn"]


async def test_event_cancel_withdraws_reminders_of_everyone(db):
    people = [await make_person("student") for _ in range(2)]
    event_id = await make_event()
    for person in people:
        await confirm(event_id, person)
    await cancel_event(event_id, places_first=False)
    assert {r["status"] for r in await reminder_rows()} == {"withdrawn"}


async def test_configured_days_and_hour(db):
    before = config()
    configure(reminder_days_before=2, reminder_hour=18)
    try:
        person = await make_person("student")
        starts = future_day(10, 10)
        await confirm(await make_event(starts_at=starts), person)
        (row,) = await reminder_rows(person)
        assert at_utc(row["due_at"]) == (starts - timedelta(days=2)).replace(hour=18).astimezone(UTC)
        assert "2日後" in parse_mail(bytes(row["message"]))["Subject"]
    finally:
        configure(reminder_days_before=before.reminder_days_before, reminder_hour=before.reminder_hour)


async def test_unsubscribe_stops_reminders_and_withdraws_queued_ones(db):
    person = await make_person("student")
    other = await make_person("student")
    await confirm(await make_event(), person)
    await confirm(await make_event(starts_at=future_day(15)), person)
    await confirm(await make_event(), other)
    message = parse_mail(bytes((await reminder_rows(person))[0]["message"]))
    token = message["List-Unsubscribe"].split(">")[0].rsplit("/", 1)[1]
    assert await reminders.opt_out_token_valid(token)
    assert await reminders.unsubscribe("not-a-token") is None
    result = await reminders.unsubscribe(token)
    assert result == {"person_id": person, "withdrawn": 2}
    assert await reminders.unsubscribe(token) == {"person_id": person, "withdrawn": 0}  # idempotent
    assert (await Person.select(Person.reminders).where(Person.id == person).first())["reminders"] is False
    assert [r["status"] for r in await reminder_rows(other)] == ["queued"]
    await confirm(await make_event(starts_at=future_day(30)), person)  # later places: no reminder
    assert len(await reminder_rows(person)) == 2
