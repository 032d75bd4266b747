"""What the seminar pages need beyond the services: a month or week grid of events.

- `calendar_grid(view, day, events) -> dict`        weeks (month) or days (week) of Asia/Tokyo dates, each with
      the events that touch that date; plus the previous / next anchor dates. Pure: no database, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from events.timefmt import TOKYO


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def calendar_range(view: str, day: date) -> tuple[date, date]:
    """First and last-plus-one Tokyo dates the grid shows (whole weeks, Monday first)."""
    if view == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    first = _month_start(day)
    start = first - timedelta(days=first.weekday())
    last = _add_months(first, 1)
    end = last + timedelta(days=(7 - last.weekday()) % 7)
    return start, end


def tokyo_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return datetime.combine(start, time(), TOKYO), datetime.combine(end, time(), TOKYO)


def calendar_grid(view: str, day: date, events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    start, end = calendar_range(view, day)
    by_date: dict[date, list[Mapping[str, Any]]] = {}
    for event in events:
        first = event["starts_at"].astimezone(TOKYO).date()
        # an event ending at midnight does not touch the next day
        last = (event["ends_at"].astimezone(TOKYO) - timedelta(microseconds=1)).date()
        current = max(first, start)
        while current <= min(last, end - timedelta(days=1)):
            by_date.setdefault(current, []).append(event)
            current += timedelta(days=1)
    days = []
    current = start
    while current < end:
        days.append({"date": current, "in_month": view == "week" or current.month == day.month,
                     "events": by_date.get(current, [])})
        current += timedelta(days=1)
    if view == "week":
        previous, following = day - timedelta(days=7), day + timedelta(days=7)
    else:
        previous, following = _add_months(_month_start(day), -1), _add_months(_month_start(day), 1)
    return {"view": view, "day": day, "start": start, "end": end, "days": days,
            "weeks": [days[i:i + 7] for i in range(0, len(days), 7)], "previous": previous, "next": following}
