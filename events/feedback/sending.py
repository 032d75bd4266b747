"""Sending survey links after events (or at once: 「今すぐ送る」), one reminder to those who have not answered,
closing surveys.

`run_feedback_jobs` is the worker job: idempotent (one request per person and survey, enforced by a
UNIQUE index and the outbox idempotency keys) and cheap when nothing is due.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from events import audit, signals
from events.access import Actor, require_staff
from events.config import config
from events.core.tables import OutboxMessage, Person
from events.db import raw, utcnow, write_transaction
from events.errors import Conflict, NotFound
from events.feedback import links
from events.feedback.defaults import AUDIENCE_EVENT_KIND
from events.feedback.tables import FeedbackRequest, Survey
from events.mail import queue_mail
from events.seminars.tables import Event, Registration

MAIL_KINDS = ("feedback_request", "feedback_reminder")
# An event that ended this long before the survey was created is not surveyed retroactively.
RETROACTIVE_LIMIT = timedelta(days=30)


REGISTRATION_AUDIENCES = ("seminar_student", "home_visit_student", "exchange_staff")


async def recipients_of(event: dict[str, Any], audience: str) -> list[int]:
    """Attended if attendance was taken, else everyone confirmed (or attended); plus those another area names
    for the audience (signals.SURVEY_RECIPIENTS: the visits area names the host family of a visit)."""
    people: list[int] = []
    if audience in REGISTRATION_AUDIENCES:
        states = ["attended"] if event["attendance_taken"] else ["confirmed", "attended"]
        rows = await Registration.select(Registration.person).where(
            (Registration.event == event["id"]) & Registration.status.is_in(states)).order_by(Registration.id)
        people += [r["person"] for r in rows]
    source = signals.SURVEY_RECIPIENTS.get(audience)
    if source is not None:
        people += list(await source(event["id"]))
    return list(dict.fromkeys(people))


def _due_events_query(survey: dict[str, Any], now: datetime, *, started: bool = False):
    """The survey's events whose people are due a link: ended `survey_delay_hours` ago, or (`started`, for
    「今すぐ送る」) begun already — a coordinator may ask before people leave the room."""
    delay = timedelta(hours=config().survey_delay_hours)
    query = Event.select(Event.id, Event.title, Event.title_en, Event.starts_at, Event.ends_at,
                         Event.attendance_taken).where(
        Event.status.is_in(["published", "completed"])
        & ((Event.starts_at <= now) if started else (Event.ends_at <= now - delay))
        & (Event.ends_at >= survey["created_at"] - RETROACTIVE_LIMIT)
        & (Event.kind == AUDIENCE_EVENT_KIND[survey["audience"]])
    )
    if survey["event"] is not None:
        return query.where(Event.id == survey["event"])
    return query.where(Event.series == survey["series"])


def _mail_context(survey: dict[str, Any], event: dict[str, Any], person: dict[str, Any], token: str) -> dict:
    english = person["locale"] == "en"
    return {
        "survey_title": (survey["title_en"] if english and survey["title_en"] else survey["title"]),
        "event_title": (event["title_en"] if english and event.get("title_en") else event["title"]),
        "link": f"{config().base_url}/feedback/{token}",
        "anonymous": survey["anonymous"],
        "closes_at": survey["closes_at"],
    }


async def _not_yet_asked(survey: dict[str, Any], event: dict[str, Any]) -> list[dict[str, Any]]:
    people = await recipients_of(event, survey["audience"])
    if not people:
        return []
    asked = {r["person"] for r in await FeedbackRequest.select(FeedbackRequest.person).where(
        (FeedbackRequest.survey == survey["id"]) & FeedbackRequest.person.is_in(people))}
    return await Person.select(Person.id, Person.email, Person.name, Person.locale).where(
        Person.id.is_in([p for p in people if p not in asked] or [-1]) & Person.active.eq(True))


async def ask(survey: dict[str, Any], event: dict[str, Any], person: dict[str, Any], now: datetime, *,
              mail: bool = True) -> str | None:
    """One person's request (and, with `mail`, its mail) in the caller's transaction; their link token, or None
    when they were asked already (by another worker too)."""
    nonce = secrets.token_urlsafe(24)
    token = links.link_token(nonce)
    inserted = await FeedbackRequest.insert(FeedbackRequest(
        survey=survey["id"], event=event["id"], person=person["id"], token_hash=links.token_hash(token),
        nonce=nonce, locale=person["locale"], sent_at=now,
    )).on_conflict(action="DO NOTHING").returning(FeedbackRequest.id)
    if not inserted:
        return None
    if mail:
        await queue_mail(
            "feedback_request", to_email=person["email"], to_name=person["name"], locale=person["locale"],
            context=_mail_context(survey, event, person, token),
            key=f"feedback:{survey['id']}:{person['id']}", group_key=f"feedback:{survey['id']}",
        )
    return token


async def _ask_event(survey: dict[str, Any], event: dict[str, Any], now: datetime) -> int:
    created = 0
    async with write_transaction():
        for person in await _not_yet_asked(survey, event):
            created += await ask(survey, event, person, now) is not None
    return created


async def send_feedback_requests(now: datetime | None = None) -> int:
    """Ask everyone due, for every open survey; returns the number of requests created."""
    now = now or utcnow()
    created = 0
    surveys = await Survey.select().where(
        (Survey.status == "open") & (Survey.closes_at.is_null() | (Survey.closes_at > now)))
    for survey in surveys:
        for event in await _due_events_query(survey, now):
            created += await _ask_event(survey, event, now)
    return created


async def open_survey(survey_id: int, now: datetime) -> dict[str, Any]:
    survey = await Survey.select().where(Survey.id == survey_id).first()
    if survey is None:
        raise NotFound("そのアンケートは見つかりません。", code="survey_not_found")
    if survey["status"] != "open" or (survey["closes_at"] is not None and survey["closes_at"] <= now):
        raise Conflict("このアンケートの回答受付は終了しています。", code="survey_closed")
    return survey


async def started_events(survey: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The survey's events that have begun (「今すぐ送る」 and on-site answering reach their people)."""
    return await _due_events_query(survey, now, started=True).order_by(Event.starts_at)


async def send_now_preview(survey_id: int, *, actor: Actor) -> dict[str, Any]:
    """What 「今すぐ送る」 would do: the events already begun and how many of their people get a link now."""
    require_staff(actor)
    now = utcnow()
    survey = await open_survey(survey_id, now)
    events = []
    for event in await started_events(survey, now):
        events.append({**event, "new": len(await _not_yet_asked(survey, event))})
    return {"survey": survey, "events": events, "recipients": sum(e["new"] for e in events)}


async def send_now(survey_id: int, *, actor: Actor) -> int:
    """「今すぐ送る」: everyone of the survey's events that have begun gets their link now, without waiting for
    the delay after the end; those asked already are not asked again (audited, one transaction)."""
    require_staff(actor)
    now = utcnow()
    created = 0
    async with write_transaction():
        survey = await open_survey(survey_id, now)
        events = await started_events(survey, now)
        for event in events:
            for person in await _not_yet_asked(survey, event):
                created += await ask(survey, event, person, now) is not None
        await audit.record(actor, "feedback_survey_sent_now", subject_type="survey", subject_id=survey_id,
                           detail={"requests": created, "events": [e["id"] for e in events]})
    return created


async def send_reminders(now: datetime | None = None) -> int:
    """One reminder, `reminder_days` after the first mail, only to those who have not answered."""
    now = now or utcnow()
    sent = 0
    surveys = await Survey.select().where(
        (Survey.status == "open") & (Survey.closes_at.is_null() | (Survey.closes_at > now)))
    for survey in surveys:
        cutoff = now - timedelta(days=survey["reminder_days"])
        async with write_transaction():
            due = await FeedbackRequest.select(
                FeedbackRequest.id, FeedbackRequest.nonce, FeedbackRequest.event.title.as_alias("title"),
                FeedbackRequest.event.title_en.as_alias("title_en"), FeedbackRequest.person.id.as_alias("person_id"),
                FeedbackRequest.person.email.as_alias("email"), FeedbackRequest.person.name.as_alias("name"),
                FeedbackRequest.person.locale.as_alias("locale"),
            ).where(
                (FeedbackRequest.survey == survey["id"]) & FeedbackRequest.answered.eq(False)
                & FeedbackRequest.reminded_at.is_null() & (FeedbackRequest.sent_at <= cutoff)
            )
            for request in due:
                # Conditional: a concurrent answer or another worker's reminder wins.
                claimed = await FeedbackRequest.update({FeedbackRequest.reminded_at: now}).where(
                    (FeedbackRequest.id == request["id"]) & FeedbackRequest.answered.eq(False)
                    & FeedbackRequest.reminded_at.is_null()).returning(FeedbackRequest.id)
                if not claimed:
                    continue
                person = {"locale": request["locale"]}
                event = {"title": request["title"] or "", "title_en": request["title_en"] or ""}
                await queue_mail(
                    "feedback_reminder", to_email=request["email"], to_name=request["name"], locale=request["locale"],
                    context=_mail_context(survey, event, person, links.link_token(request["nonce"])),
                    key=f"feedback-reminder:{survey['id']}:{request['person_id']}", group_key=f"feedback:{survey['id']}",
                )
                sent += 1
    return sent


async def close_overdue(now: datetime | None = None) -> int:
    now = now or utcnow()
    async with write_transaction():
        rows = await Survey.update({Survey.status: "closed"}).where(
            (Survey.status == "open") & Survey.closes_at.is_not_null() & (Survey.closes_at <= now)
        ).returning(Survey.id)
        for row in rows:  # nothing more to remind anyone of
            await _withdraw_unsent(row["id"])
    return len(rows)


async def _withdraw_unsent(survey_id: int) -> None:
    await OutboxMessage.update({OutboxMessage.status: "withdrawn"}).where(
        (OutboxMessage.group_key == f"feedback:{survey_id}")
        & OutboxMessage.status.is_in(["queued", "awaiting_retry"]))


async def scrub_sent_links() -> int:
    """Once a survey mail has left (or will never leave), its bytes — which carry the personal link —
    are erased from the outbox, so a copy of the database holds no working link."""
    async with write_transaction():
        rows = await raw(
            "UPDATE outbox_message SET message = {} WHERE kind IN ('feedback_request', 'feedback_reminder') "
            "AND status IN ('sent', 'failed', 'withdrawn') AND length(message) > 0 RETURNING id",
            b"",
        )
    return len(rows)


async def run_feedback_jobs() -> dict[str, int]:
    now = utcnow()
    tally = {
        "closed": await close_overdue(now),
        "requested": await send_feedback_requests(now),
        "reminded": await send_reminders(now),
        "scrubbed": await scrub_sent_links(),
    }
    return tally
