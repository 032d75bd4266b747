"""Demo data: a survey (from the seminar-student template) on each series of the demo seminars."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from events.db import utcnow
from events.feedback import surveys
from events.feedback.defaults import TEMPLATES
from events.feedback.tables import Survey
from events.seminars.tables import Event


async def load(progress: Callable[[str], None]) -> dict[str, int]:
    """Idempotent: a series that already has a survey gets no second one."""
    rows = await Event.select(Event.series, Event.ends_at).where((Event.kind == "seminar") & (Event.series != ""))
    series_names = sorted({r["series"] for r in rows})
    created = 0
    for series in series_names:
        if await Survey.exists().where((Survey.series == series) & (Survey.audience == "seminar_student")):
            continue
        last_end = max(r["ends_at"] for r in rows if r["series"] == series)
        await surveys.create_survey(
            audience="seminar_student", template="seminar_student", series=series, anonymous=True,
            closes_at=max(last_end, utcnow()) + timedelta(days=21), reminder_days=3,
        )
        created += 1
    progress(f"feedback: {len(TEMPLATES)} default templates, {created} series survey(s) created "
             f"({len(series_names)} seminar series)")
    return {"feedback_surveys_created": created}
