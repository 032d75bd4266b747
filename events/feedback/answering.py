"""Answering a survey by its personal link: no login, one answer per link, editable until it closes."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from events.db import for_update, is_sqlite, raw, utcnow, write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.feedback import links
from events.feedback.surveys import get_survey, is_open
from events.feedback.tables import FeedbackAnswer, FeedbackRequest
from events.feedback_stats import DEFAULT_MIN_GROUP

MAX_TEXT_ANSWER = 2000


@dataclass
class SurveyForm:
    """What the answering page shows, in the person's language."""

    survey_id: int
    title: str
    intro: str
    anonymous: bool
    open: bool
    closes_at: Any
    event_title: str
    locale: str
    questions: list[dict[str, Any]]
    answers: dict[str, Any] = field(default_factory=dict)  # "q<id>" -> index | [indices] | text
    answered: bool = False


async def _request_by_token(token: str) -> dict[str, Any]:
    if not token or len(token) > 100:
        raise NotFound("このアンケートのリンクは見つかりません。", code="feedback_link_unknown")
    request = await FeedbackRequest.select(
        FeedbackRequest.all_columns(), FeedbackRequest.event.title.as_alias("event_title"),
        FeedbackRequest.event.title_en.as_alias("event_title_en"),
    ).where(FeedbackRequest.token_hash == links.token_hash(token)).first()
    if request is None:
        raise NotFound("このアンケートのリンクは見つかりません。メールのリンクをもう一度ご確認ください。",
                       code="feedback_link_unknown")
    return request


def _localized_questions(questions: Sequence[dict[str, Any]], english: bool) -> list[dict[str, Any]]:
    shown = []
    for q in questions:
        options = q["options"] or []
        options_en = q["options_en"] or []
        labels = options_en if english and len(options_en) == len(options) else options
        if q["kind"] == "scale" and not labels:
            labels = ["1", "2", "3", "4", "5"]
        shown.append({"id": q["id"], "kind": q["kind"], "required": q["required"],
                      "text": (q["text_en"] if english and q["text_en"] else q["text"]),
                      "options": list(enumerate(labels))})
    return shown


def _form_values(questions: Sequence[dict[str, Any]], stored: Mapping[str, Any]) -> dict[str, Any]:
    """Stored answers (Japanese labels) back into form values (option indices)."""
    values: dict[str, Any] = {}
    for q in questions:
        value = stored.get(str(q["id"]))
        if value is None:
            continue
        options = list(q["options"] or [])
        if q["kind"] == "scale":
            values[f"q{q['id']}"] = value - 1 if isinstance(value, int) else None
        elif q["kind"] == "single":
            values[f"q{q['id']}"] = options.index(value) if value in options else None
        elif q["kind"] == "multi":
            values[f"q{q['id']}"] = [options.index(v) for v in value if v in options]
        else:
            values[f"q{q['id']}"] = value
    return values


async def open_form(token: str, *, locale: str | None = None) -> SurveyForm:
    request = await _request_by_token(token)
    survey = await get_survey(request["survey"])
    locale = locale or request["locale"]
    english = locale == "en"
    stored = await FeedbackAnswer.select(FeedbackAnswer.answers).where(
        (FeedbackAnswer.id == links.answer_id(token, survey["id"])) & (FeedbackAnswer.survey == survey["id"])).output(load_json=True).first()
    return SurveyForm(
        survey_id=survey["id"],
        title=survey["title_en"] if english and survey["title_en"] else survey["title"],
        intro=survey["intro_en"] if english and survey["intro_en"] else survey["intro"],
        anonymous=survey["anonymous"], open=is_open(survey), closes_at=survey["closes_at"],
        event_title=(request["event_title_en"] if english and request["event_title_en"] else request["event_title"]) or "",
        locale=locale, questions=_localized_questions(survey["questions"], english),
        answers=_form_values(survey["questions"], stored["answers"]) if stored else {},
        answered=request["responded_at"] is not None,
    )


def parse_answers(questions: Sequence[dict[str, Any]], form: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Form fields q<id> (option indices, or text) → stored answers keyed by question id; Invalid lists
    every problem at once (extra["errors"] maps field → message) so nothing typed is lost."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for q in questions:
        name = f"q{q['id']}"
        raw_values = [v.strip() for v in form.get(name, []) if v.strip()]
        options = list(q["options"] or [])
        value: Any = None
        try:
            if q["kind"] == "text":
                text = "\n".join(v for v in form.get(name, []) if v.strip()).strip()
                if len(text) > MAX_TEXT_ANSWER:
                    errors[name] = "2000文字以内でお書きください。"
                    continue
                value = text or None
            elif q["kind"] == "scale":
                if raw_values:
                    number = int(raw_values[0])
                    if not 0 <= number <= 4:
                        raise ValueError
                    value = number + 1
            elif q["kind"] == "single":
                if raw_values:
                    value = options[int(raw_values[0])]
            else:
                chosen = sorted({int(v) for v in raw_values})
                value = [options[i] for i in chosen] or None
        except (ValueError, IndexError):
            errors[name] = "選択肢から選んでください。"
            continue
        if value is None:
            if q["required"]:
                errors[name] = "この質問は必須です。"
            continue
        answers[str(q["id"])] = value
    if errors:
        raise Invalid("未回答または正しくない項目があります。", code="feedback_incomplete", errors=errors)
    return answers


async def submit_answers(token: str, form: Mapping[str, Sequence[str]]) -> bool:
    """Store (or replace) this link's answers; True when it was the first submission."""
    async with write_transaction():
        request = await _request_by_token(token)
        locked = await raw(f"SELECT id, responded_at FROM feedback_request WHERE id = {{}}{for_update()}", request["id"])
        survey = await get_survey(request["survey"])
        if not is_open(survey):
            raise Conflict("このアンケートの回答受付は終了しました。", code="survey_closed", status=410)
        answers = parse_answers(survey["questions"], form)
        now = utcnow()
        key = links.answer_id(token, survey["id"])
        existing = await FeedbackAnswer.exists().where(FeedbackAnswer.id == key)
        if existing:
            values: dict[Any, Any] = {FeedbackAnswer.answers: answers}
            if not survey["anonymous"]:
                values[FeedbackAnswer.updated_at] = now
            await FeedbackAnswer.update(values).where(FeedbackAnswer.id == key)
        elif survey["anonymous"]:
            event = request["event"]
            if event is not None:
                asked = await FeedbackRequest.count().where(
                    (FeedbackRequest.survey == survey["id"]) & (FeedbackRequest.event == event))
                if asked < DEFAULT_MIN_GROUP:
                    event = None  # too few people asked after this event: the event alone would single them out
            await _insert_anonymous(key, survey["id"], event, answers)
        else:
            await FeedbackAnswer.insert(FeedbackAnswer(
                id=key, survey=survey["id"], event=request["event"], person=request["person"], answers=answers,
                updated_at=now,
            ))
        first = locked[0]["responded_at"] is None
        if first:
            await FeedbackRequest.update({FeedbackRequest.responded_at: now}).where(FeedbackRequest.id == request["id"])
    return first


async def _insert_anonymous(key: str, survey_id: int, event_id: int | None, answers: dict[str, Any]) -> None:
    if is_sqlite():
        # SQLite would number rows in arrival order; a random rowid leaves no order to match against.
        import json

        await raw(
            "INSERT INTO feedback_answer (rowid, id, survey, event, person, answers, updated_at) "
            "VALUES ({}, {}, {}, {}, NULL, {}, NULL)",
            secrets.randbelow(2**62) + 1, key, survey_id, event_id, json.dumps(answers, ensure_ascii=False),
        )
    else:
        await FeedbackAnswer.insert(FeedbackAnswer(id=key, survey=survey_id, event=event_id, answers=answers))


async def pending_for(person_id: int, *, locale: str = "ja") -> list[dict[str, Any]]:
    """Open surveys this person has been asked and not yet answered, with their personal link path."""
    rows = await FeedbackRequest.select(
        FeedbackRequest.nonce, FeedbackRequest.survey.title.as_alias("title"),
        FeedbackRequest.survey.title_en.as_alias("title_en"), FeedbackRequest.survey.status.as_alias("status"),
        FeedbackRequest.survey.closes_at.as_alias("closes_at"), FeedbackRequest.event.title.as_alias("event_title"),
        FeedbackRequest.event.title_en.as_alias("event_title_en"),
    ).where((FeedbackRequest.person == person_id) & FeedbackRequest.responded_at.is_null()).order_by(
        FeedbackRequest.id, ascending=False).limit(20)
    english = locale == "en"
    now = utcnow()
    return [{
        "title": row["title_en"] if english and row["title_en"] else row["title"],
        "event_title": (row["event_title_en"] if english and row["event_title_en"] else row["event_title"]) or "",
        "closes_at": row["closes_at"],
        "path": f"/feedback/{links.link_token(row['nonce'])}",
    } for row in rows if row["status"] == "open" and (row["closes_at"] is None or row["closes_at"] > now)]
