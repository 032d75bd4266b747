"""The month / week grid behind /coordinator/calendar (pure: no database, no clock)."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from events.seminars.pages_support import calendar_grid, calendar_range

TOKYO = ZoneInfo("Asia/Tokyo")


def event(event_id: int, start: str, end: str) -> dict:
    return {"id": event_id, "starts_at": datetime.fromisoformat(start).replace(tzinfo=TOKYO),
            "ends_at": datetime.fromisoformat(end).replace(tzinfo=TOKYO)}


def test_month_is_whole_weeks_monday_first():
    start, end = calendar_range("month", date(2026, 12, 15))
    assert (start, end) == (date(2026, 11, 30), date(2027, 1, 4))
    grid = calendar_grid("month", date(2026, 12, 1), [])
    assert len(grid["weeks"]) == 5 and all(len(w) == 7 for w in grid["weeks"])
    assert [d["in_month"] for d in grid["weeks"][0]][:2] == [False, True]
    assert (grid["previous"], grid["next"]) == (date(2026, 11, 1), date(2027, 1, 1))
    assert calendar_range("month", date(2027, 2, 10)) == (date(2027, 2, 1), date(2027, 3, 1))  # Feb 2027 fits 4 weeks


def test_events_land_on_every_tokyo_day_they_touch():
    overnight = event(1, "2026-12-05T22:00", "2026-12-06T02:00")
    to_midnight = event(2, "2026-12-07T20:00", "2026-12-08T00:00")
    utc_evening = {"id": 3, "starts_at": datetime.fromisoformat("2026-12-09T16:00+00:00"),
                   "ends_at": datetime.fromisoformat("2026-12-09T17:00+00:00")}  # 01:00 on the 10th in Tokyo
    grid = calendar_grid("month", date(2026, 12, 1), [overnight, to_midnight, utc_evening])
    days = {d["date"]: [e["id"] for e in d["events"]] for d in grid["days"]}
    assert days[date(2026, 12, 5)] == [1] and days[date(2026, 12, 6)] == [1]
    assert days[date(2026, 12, 7)] == [2] and days[date(2026, 12, 8)] == []
    assert days[date(2026, 12, 9)] == [] and days[date(2026, 12, 10)] == [3]


def test_week_view():
    grid = calendar_grid("week", date(2026, 12, 3), [event(1, "2026-12-06T10:00", "2026-12-06T12:00")])
    assert [d["date"].day for d in grid["days"]] == [30, 1, 2, 3, 4, 5, 6]
    assert grid["days"][-1]["events"][0]["id"] == 1
    assert (grid["previous"], grid["next"]) == (date(2026, 11, 26), date(2026, 12, 10))
