"""Answering a survey by its personal link: no login, one answer per link.

Named surveys: the answer is the person's, editable until the survey closes.
Anonymous surveys, unlinkable by construction: the answer gets a random key (nothing derived from the link,
the request or the person), no time, and the request only learns that it was answered. So an anonymous
answer cannot be found again from its link — it is final once sent (the page says so before sending).
On PostgreSQL, where every row carries the id of the transaction that wrote it (xmin) and new rows are laid
down in arrival order, the submitting transaction also rewrites all of the survey's anonymous answers (new
random keys, random order) and all its answered requests: afterwards they share one xmin and no order.
SQLite keeps no such trail: an anonymous answer gets a random rowid and the request is updated in place.
"""

from __future__ import annotations

import json
import random
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
_RESHUFFLE_BATCH = 1000  # rows per INSERT when an anonymous survey's answers are laid down anew (PostgreSQL)


def new_answer_key() -> str:
    """An answer's key: random, so it joins nothing."""
    return secrets.token_hex(16)


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
    stored = None
    if not survey["anonymous"]:  # an anonymous answer cannot be found from its link: that is the point
        stored = await FeedbackAnswer.select(FeedbackAnswer.answers).where(
            (FeedbackAnswer.survey == survey["id"]) & (FeedbackAnswer.person == request["person"])
        ).output(load_json=True).first()
    return SurveyForm(
        survey_id=survey["id"],
        title=survey["title_en"] if english and survey["title_en"] else survey["title"],
        intro=survey["intro_en"] if english and survey["intro_en"] else survey["intro"],
        anonymous=survey["anonymous"], open=is_open(survey), closes_at=survey["closes_at"],
        event_title=(request["event_title_en"] if english and request["event_title_en"] else request["event_title"]) or "",
        locale=locale, questions=_localized_questions(survey["questions"], english),
        answers=_form_values(survey["questions"], stored["answers"]) if stored else {},
        answered=bool(request["answered"]),
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
    """Store this link's answers; True when it was the first submission. A named answer may be replaced until
    the survey closes; an anonymous one is final (Conflict `feedback_already_answered`)."""
    async with write_transaction():
        request = await _request_by_token(token)
        survey = await get_survey(request["survey"])
        if survey["anonymous"] and not is_sqlite():  # one reshuffle at a time per survey (module doc)
            await raw(f"SELECT id FROM survey WHERE id = {{}}{for_update()}", survey["id"])
        locked = await raw(f"SELECT id, answered FROM feedback_request WHERE id = {{}}{for_update()}", request["id"])
        if not is_open(survey):
            raise Conflict("このアンケートの回答受付は終了しました。", code="survey_closed", status=410)
        first = not locked[0]["answered"]
        if survey["anonymous"] and not first:
            raise Conflict("このアンケートには回答済みです。無記名のため、送信した回答は変更できません。",
                           code="feedback_already_answered")
        answers = parse_answers(survey["questions"], form)
        if survey["anonymous"]:
            await _store_anonymous(survey["id"], request["event"], answers)
        else:
            await _store_named(survey["id"], request["event"], request["person"], answers)
        if first:
            await FeedbackRequest.update({FeedbackRequest.answered: True}).where(FeedbackRequest.id == request["id"])
        if survey["anonymous"] and not is_sqlite():
            await _reshuffle(survey["id"])
    return first


async def _store_named(survey_id: int, event_id: int | None, person_id: int, answers: dict[str, Any]) -> None:
    now = utcnow()
    updated = await FeedbackAnswer.update({FeedbackAnswer.answers: answers, FeedbackAnswer.updated_at: now}).where(
        (FeedbackAnswer.survey == survey_id) & (FeedbackAnswer.person == person_id)).returning(FeedbackAnswer.id)
    if not updated:
        await FeedbackAnswer.insert(FeedbackAnswer(
            id=new_answer_key(), survey=survey_id, event=event_id, person=person_id, answers=answers, updated_at=now))


async def _store_anonymous(survey_id: int, event_id: int | None, answers: dict[str, Any]) -> None:
    if event_id is not None:
        asked = await FeedbackRequest.count().where(
            (FeedbackRequest.survey == survey_id) & (FeedbackRequest.event == event_id))
        if asked < DEFAULT_MIN_GROUP:
            event_id = None  # too few people asked after this event: the event alone would single them out
    if is_sqlite():
        # SQLite would number rows in arrival order; a random rowid leaves no order to match against.
        await raw(
            "INSERT INTO feedback_answer (rowid, id, survey, event, person, answers, updated_at) "
            "VALUES ({}, {}, {}, {}, NULL, {}, NULL)",
            secrets.randbelow(2**62) + 1, new_answer_key(), survey_id, event_id, json.dumps(answers, ensure_ascii=False),
        )
    else:
        await FeedbackAnswer.insert(FeedbackAnswer(id=new_answer_key(), survey=survey_id, event=event_id,
                                                   answers=answers))


async def _reshuffle(survey_id: int) -> None:
    """PostgreSQL: lay the survey's anonymous answers down anew (new keys, random order) and rewrite its answered
    requests, all in this transaction — one xmin for all of them, and no arrival order on disk."""
    rows = await raw("DELETE FROM feedback_answer WHERE survey = {} AND person IS NULL RETURNING event, answers::text "
                     "AS answers", survey_id)
    random.SystemRandom().shuffle(rows)
    for start in range(0, len(rows), _RESHUFFLE_BATCH):
        batch = rows[start:start + _RESHUFFLE_BATCH]
        values = ", ".join("({}, {}, {}, NULL, CAST({} AS json), NULL)" for _ in batch)
        args = [arg for row in batch for arg in (new_answer_key(), survey_id, row["event"], row["answers"])]
        await raw(f"INSERT INTO feedback_answer (id, survey, event, person, answers, updated_at) VALUES {values}",
                  *args)
    await raw("UPDATE feedback_request SET answered = answered WHERE survey = {} AND answered", survey_id)


async def pending_for(person_id: int, *, locale: str = "ja") -> list[dict[str, Any]]:
    """Open surveys this person has been asked and not yet answered, with their personal link path."""
    rows = await FeedbackRequest.select(
        FeedbackRequest.nonce, FeedbackRequest.survey.title.as_alias("title"),
        FeedbackRequest.survey.title_en.as_alias("title_en"), FeedbackRequest.survey.status.as_alias("status"),
        FeedbackRequest.survey.closes_at.as_alias("closes_at"), FeedbackRequest.event.title.as_alias("event_title"),
        FeedbackRequest.event.title_en.as_alias("event_title_en"),
    ).where((FeedbackRequest.person == person_id) & FeedbackRequest.answered.eq(False)).order_by(
        FeedbackRequest.id, ascending=False).limit(20)
    english = locale == "en"
    now = utcnow()
    return [{
        "title": row["title_en"] if english and row["title_en"] else row["title"],
        "event_title": (row["event_title_en"] if english and row["event_title_en"] else row["event_title"]) or "",
        "closes_at": row["closes_at"],
        "path": f"/feedback/{links.link_token(row['nonce'])}",
    } for row in rows if row["status"] == "open" and (row["closes_at"] is None or row["closes_at"] > now)]
