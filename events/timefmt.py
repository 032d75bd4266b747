"""Times as people read them: the one zone (Asia/Tokyo), weekday names and the few formats we show.

Stored times are UTC (`Timestamptz`); everything a person sees passes through here, so a mail, a page, an
export and a calendar entry never disagree about a date. Pure: no clock, no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")
WEEKDAYS_JA = "月火水木金土日"


def tokyo_date(value: datetime) -> date:
    return value.astimezone(TOKYO).date()


def short(value: datetime | None, fmt: str = "%Y/%m/%d %H:%M") -> str:
    """`2026/12/05 14:00` (or any strftime format), in Tokyo time; "" for None."""
    return "" if value is None else value.astimezone(TOKYO).strftime(fmt)


def compact(value: datetime | None, locale: str = "ja") -> str:
    """For tables: `2026/12/05（土）14:00` / `Sat 2026/12/05 14:00`; "" for None."""
    if value is None:
        return ""
    local = value.astimezone(TOKYO)
    if locale == "en":
        return local.strftime("%a %Y/%m/%d %H:%M")
    return f"{local:%Y/%m/%d}（{WEEKDAYS_JA[local.weekday()]}）{local:%H:%M}"


def day_ja(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日（{WEEKDAYS_JA[day.weekday()]}）"


def long(value: datetime | None, locale: str = "ja") -> str:
    """`2026年12月5日（土）14:00` / `Sat 05 Dec 2026, 14:00`; "" for None."""
    if value is None:
        return ""
    local = value.astimezone(TOKYO)
    if locale == "en":
        return local.strftime("%a %d %b %Y, %H:%M")
    return f"{day_ja(local.date())}{local:%H:%M}"


def span(start: datetime, end: datetime, locale: str = "ja") -> str:
    """A time span as one phrase: `2026年12月5日（土）14:00〜16:00` (the end's date only when it differs)."""
    s, e = start.astimezone(TOKYO), end.astimezone(TOKYO)
    same_day = s.date() == e.date()
    if locale == "en":
        return f"{s:%a %d %b %Y, %H:%M}–" + (f"{e:%H:%M}" if same_day else f"{e:%a %d %b %Y, %H:%M}") + " (Japan time)"
    if same_day:
        return f"{day_ja(s.date())}{s:%H:%M}〜{e:%H:%M}"
    return f"{day_ja(s.date())}{s:%H:%M}〜{day_ja(e.date())}{e:%H:%M}"


def event_when(event: Mapping[str, Any], locale: str = "ja") -> str:
    return span(event["starts_at"], event["ends_at"], locale)
