"""Building surveys: from a default template or from scratch, attached to an event or a series."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from events import audit
from events.access import Actor, require_staff
from events.db import utcnow, write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.feedback.defaults import AUDIENCE_EVENT_KIND, TEMPLATES
from events.feedback.tables import (
    AUDIENCES,
    QUESTION_KINDS,
    FeedbackAnswer,
    FeedbackRequest,
    Survey,
    SurveyQuestion,
)
from events.feedback_stats import QuestionSpec
from events.seminars.tables import Event

MAX_TEXT = 500


def _clean(value: object, limit: int = MAX_TEXT) -> str:
    return " ".join(str(value or "").split())[:limit]


def _labels(values: object, field: str) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        raise Invalid("選択肢の形式が正しくありません。", code="invalid_options", field=field)
    return [_clean(v, 200) for v in values if _clean(v, 200)]


def validate_question(question: dict[str, Any]) -> dict[str, Any]:
    """A question as stored, or Invalid with a message a coordinator can act on."""
    kind = str(question.get("kind", ""))
    if kind not in QUESTION_KINDS:
        raise Invalid("質問の種類を選んでください（5段階・単一選択・複数選択・自由記述）。", code="invalid_kind", field="kind")
    text = _clean(question.get("text"))
    if not text:
        raise Invalid("質問文（日本語）を入力してください。", code="question_text_required", field="text")
    options = _labels(question.get("options"), "options") if kind != "text" else []
    options_en = _labels(question.get("options_en"), "options_en") if kind != "text" else []
    if kind == "scale" and len(options) not in (0, 5):
        raise Invalid("5段階の質問には、1〜5のラベルを5つ入力してください（または空欄）。", code="scale_needs_five_labels",
                      field="options")
    if kind in ("single", "multi") and len(options) < 2:
        raise Invalid("選択式の質問には選択肢を2つ以上入力してください。", code="choice_needs_options", field="options")
    if len(set(options)) != len(options):
        raise Invalid("選択肢が重複しています。", code="duplicate_options", field="options")
    if options_en and len(options_en) != len(options):
        raise Invalid("英語の選択肢は日本語と同じ数にしてください（または空欄）。", code="options_en_mismatch",
                      field="options_en")
    QuestionSpec(id=0, kind=kind, options=tuple(options))  # the aggregation core accepts it
    return {"kind": kind, "text": text, "text_en": _clean(question.get("text_en")), "options": options,
            "options_en": options_en, "required": bool(question.get("required", False))}


async def create_survey(
    *,
    audience: str,
    title: str = "",
    title_en: str = "",
    intro: str | None = None,
    intro_en: str | None = None,
    event_id: int | None = None,
    series: str = "",
    anonymous: bool = True,
    closes_at: datetime | None = None,
    reminder_days: int = 3,
    template: str = "",
    questions: Sequence[dict[str, Any]] | None = None,
    actor: Actor | None = None,
) -> int:
    """A new open survey; `template` copies a default template's wording and questions. `actor`: who
    creates it (None for the demo data)."""
    if audience not in AUDIENCES:
        raise Invalid("対象者の種類を選んでください。", code="invalid_audience", field="audience")
    base: dict[str, Any] = {}
    if template:
        if template not in TEMPLATES:
            raise Invalid("そのテンプレートはありません。", code="unknown_template", field="template")
        base = TEMPLATES[template]
        if base["audience"] != audience:
            raise Invalid("テンプレートと対象者が一致しません。", code="template_audience_mismatch", field="template")
    series = _clean(series, 200)
    if (event_id is None) == (not series):
        raise Invalid("イベントかシリーズのどちらか一方を選んでください。", code="attach_one", field="event")
    if closes_at is not None and closes_at.tzinfo is None:
        raise Invalid("締切日時にはタイムゾーンが必要です。", code="invalid_closes_at", field="closes_at")
    if closes_at is not None and closes_at <= utcnow():
        raise Invalid("締切日時は未来の日時にしてください。", code="closes_in_past", field="closes_at")
    if not 1 <= reminder_days <= 30:
        raise Invalid("リマインドまでの日数は1〜30日です。", code="invalid_reminder_days", field="reminder_days")
    title = _clean(title, 300) or base.get("title", "")
    if not title:
        raise Invalid("アンケートの題名を入力してください。", code="title_required", field="title")
    wanted = [validate_question(q) for q in (questions if questions is not None else base.get("questions", []))]
    async with write_transaction():
        if event_id is not None:
            event = await Event.select(Event.kind).where(Event.id == event_id).first()
            if event is None:
                raise NotFound("そのイベントは見つかりません。", code="event_not_found")
            if event["kind"] != AUDIENCE_EVENT_KIND[audience]:
                raise Invalid("このイベントの種類には、この対象者のアンケートを付けられません。",
                              code="audience_event_mismatch", field="audience")
        row = await Survey.insert(Survey(
            title=title, title_en=_clean(title_en, 300) or base.get("title_en", ""),
            intro=(intro if intro is not None else base.get("intro", "")).strip()[:2000],
            intro_en=(intro_en if intro_en is not None else base.get("intro_en", "")).strip()[:2000],
            audience=audience, anonymous=anonymous, event=event_id, series=series, status="open",
            closes_at=closes_at, reminder_days=reminder_days, template=template,
            created_by=actor.person_id if actor else None,
            created_at=utcnow(),
        )).returning(Survey.id)
        survey_id = row[0]["id"]
        for position, question in enumerate(wanted):
            await SurveyQuestion.insert(SurveyQuestion(survey=survey_id, position=position, **question))
    return survey_id


async def _editable(survey_id: int) -> dict[str, Any]:
    survey = await Survey.select().where(Survey.id == survey_id).first()
    if survey is None:
        raise NotFound("そのアンケートは見つかりません。", code="survey_not_found")
    if await FeedbackAnswer.exists().where(FeedbackAnswer.survey == survey_id):
        raise Conflict("回答が届いているため、質問は変更できません。", code="survey_has_answers")
    return survey


async def add_question(survey_id: int, question: dict[str, Any]) -> int:
    stored = validate_question(question)
    async with write_transaction():
        await _editable(survey_id)
        last = await SurveyQuestion.select(SurveyQuestion.position).where(
            SurveyQuestion.survey == survey_id).order_by(SurveyQuestion.position, ascending=False).first()
        row = await SurveyQuestion.insert(SurveyQuestion(
            survey=survey_id, position=(last["position"] + 1) if last else 0, **stored,
        )).returning(SurveyQuestion.id)
    return row[0]["id"]


async def remove_question(survey_id: int, question_id: int) -> None:
    async with write_transaction():
        await _editable(survey_id)
        rows = await SurveyQuestion.delete().where(
            (SurveyQuestion.id == question_id) & (SurveyQuestion.survey == survey_id)).returning(SurveyQuestion.id)
        if not rows:
            raise NotFound("その質問は見つかりません。", code="question_not_found")


async def close_survey(survey_id: int, *, actor: Actor) -> None:
    """A coordinator ends the survey before its deadline (audited)."""
    require_staff(actor)
    async with write_transaction():
        rows = await Survey.update({Survey.status: "closed"}).where(Survey.id == survey_id).returning(Survey.id)
        if not rows:
            raise NotFound("そのアンケートは見つかりません。", code="survey_not_found")
        await audit.record(actor, "feedback_survey_closed", subject_type="survey", subject_id=survey_id)


async def get_survey(survey_id: int) -> dict[str, Any]:
    survey = await Survey.select(
        Survey.all_columns(), Survey.event.title.as_alias("event_title"),
    ).where(Survey.id == survey_id).first()
    if survey is None:
        raise NotFound("そのアンケートは見つかりません。", code="survey_not_found")
    survey["questions"] = await SurveyQuestion.select().where(SurveyQuestion.survey == survey_id).order_by(
        SurveyQuestion.position).order_by(SurveyQuestion.id).output(load_json=True)
    return survey


async def list_surveys(*, series: str = "", audience: str = "") -> list[dict[str, Any]]:
    query = Survey.select(Survey.all_columns(), Survey.event.title.as_alias("event_title")).order_by(
        Survey.id, ascending=False)
    if series:
        query = query.where(Survey.series == series)
    if audience:
        query = query.where(Survey.audience == audience)
    surveys = await query
    ids = [s["id"] for s in surveys] or [-1]
    requests = await FeedbackRequest.select(FeedbackRequest.survey, FeedbackRequest.answered).where(
        FeedbackRequest.survey.is_in(ids))
    for survey in surveys:
        mine = [r for r in requests if r["survey"] == survey["id"]]
        survey["invited"] = len(mine)
        survey["responded"] = sum(1 for r in mine if r["answered"])
    return surveys


def is_open(survey: dict[str, Any], now: datetime | None = None) -> bool:
    now = now or utcnow()
    return survey["status"] == "open" and (survey["closes_at"] is None or survey["closes_at"] > now)
