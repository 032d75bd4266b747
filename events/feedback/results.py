"""Results of a survey (the whole survey, one event, a series) and its answer exports (CSV, XLSX).

The rule, one for every reader (the results page with and without the event filter, the series view,
the printable summary, the JSON API and the exports):

- **Named surveys** (``anonymous`` false): respondents are told that ward staff see their answers with
  their name, so results and exports show every answer and figure, whatever the size of a group (no
  threshold). Every read of a named survey's results and every export is audited in the transaction of
  the read itself (``staff_viewed_feedback``, ``staff_exported_feedback``).
- **Anonymous surveys**: figures follow the threshold and complementary suppression of
  events.feedback_stats (groups are events; ``decide_release`` is decided once per survey, on all its
  answers, whichever scope is read). The export is refused when the survey has fewer than 5 answers or
  the chosen event is withheld; in an export of the whole survey, rows of a withheld event carry no event
  name and a question withheld for the survey is left blank, so an export shows no more than the pages.
  Answers are read in the order of their random key and exports are shuffled: no order matches the time
  of answering. Exports are audited too (they leave the system), views are not (no personal data).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from events import audit, feedback_stats, sheets, timefmt
from events.access import Actor, require_staff
from events.db import write_transaction
from events.errors import Conflict, Invalid
from events.feedback.surveys import get_survey, list_surveys
from events.feedback.tables import FeedbackAnswer, FeedbackRequest
from events.feedback_stats import (
    DEFAULT_MIN_GROUP,
    AnswerRow,
    QuestionSpec,
    Release,
    Suppressed,
    release_for,
    summarise,
)
from events.seminars.tables import Event
from events.svg_charts import bar_chart

POOLED_KEY = "pooled"  # answers of anonymous surveys whose event was too small to keep (stored without it)
POOLED_GROUP = "少人数の回（まとめて集計）"
WITHHELD_EVENT = "（回答の少ない回のため非表示）"
WITHHELD_COLUMN = "（回答が少ないため非表示）"
KIND_LABELS = {"scale": "5段階", "single": "単一選択", "multi": "複数選択", "text": "自由記述"}
EXPORT_FORMATS = {"csv": sheets.CSV_MEDIA_TYPE, "xlsx": sheets.XLSX_MEDIA_TYPE}


def percent(part: int, whole: int) -> str:
    """A share as people read it: whole percent, half rounded up (1 of 8 is 13 %, not Python's banker's 12 %)."""
    if whole <= 0:
        return "0 %"
    return f"{(200 * part + whole) // (2 * whole)} %"


def share(part: int, whole: int) -> str:
    """The count with its share, e.g. "1/8（13 %）" (the count carries no more than the share alone)."""
    return f"{part}/{whole}（{percent(part, whole)}）"


def min_group_of(survey: dict[str, Any]) -> int:
    """The threshold of the survey: none (1) for named surveys, DEFAULT_MIN_GROUP for anonymous ones."""
    return DEFAULT_MIN_GROUP if survey["anonymous"] else 1


def group_key(event_id: int | None) -> str:
    return POOLED_KEY if event_id is None else str(event_id)


def _specs(questions: Sequence[dict[str, Any]]) -> list[QuestionSpec]:
    return [QuestionSpec(id=q["id"], kind=q["kind"], options=tuple(q["options"] or ())) for q in questions]


def _labels(question: dict[str, Any], english: bool) -> list[str]:
    options = list(question["options"] or [])
    options_en = list(question["options_en"] or [])
    if question["kind"] == "scale" and not options:
        return ["1", "2", "3", "4", "5"]
    return options_en if english and len(options_en) == len(options) else options


async def _answers(survey_id: int) -> list[dict[str, Any]]:
    """Every answer of the survey: the release is decided on all of them, whichever scope is read."""
    return await FeedbackAnswer.select(
        FeedbackAnswer.id, FeedbackAnswer.event, FeedbackAnswer.answers, FeedbackAnswer.updated_at,
        FeedbackAnswer.event.title.as_alias("event_title"), FeedbackAnswer.event.starts_at.as_alias("event_starts_at"),
        FeedbackAnswer.person.name.as_alias("person_name"), FeedbackAnswer.person.email.as_alias("person_email"),
    ).where(FeedbackAnswer.survey == survey_id).order_by(FeedbackAnswer.id).output(load_json=True)


async def _requests(survey_id: int, event_id: int | None) -> list[dict[str, Any]]:
    query = FeedbackRequest.select(
        FeedbackRequest.event, FeedbackRequest.answered, FeedbackRequest.sent_at, FeedbackRequest.reminded_at,
        FeedbackRequest.person.name.as_alias("name"), FeedbackRequest.event.title.as_alias("event_title"),
    ).where(FeedbackRequest.survey == survey_id).order_by(FeedbackRequest.person.kana).order_by(FeedbackRequest.id)
    if event_id is not None:
        query = query.where(FeedbackRequest.event == event_id)
    return await query


def _stored_values(answer: dict[str, Any]) -> dict[int, Any]:
    values: dict[int, Any] = {}
    for key, value in (answer["answers"] or {}).items():
        if str(key).isdigit():
            values[int(key)] = tuple(value) if isinstance(value, list) else value
    return values


def _answer_rows(answers: Sequence[dict[str, Any]]) -> list[AnswerRow]:
    return [AnswerRow(respondent_key=a["id"], group=group_key(a["event"]), values=_stored_values(a)) for a in answers]


def _group_labels(survey: dict[str, Any], answers: Sequence[dict[str, Any]]) -> dict[str, str]:
    """What a person reads for a group: the event's date and title (titles repeat within a series)."""
    labels = {POOLED_KEY: POOLED_GROUP if survey["anonymous"] else ""}
    for answer in answers:
        if answer["event"] is not None:
            day = timefmt.short(answer["event_starts_at"], "%Y/%m/%d")
            labels[group_key(answer["event"])] = f"{day} {answer['event_title'] or ''}".strip()
    return labels


def _release(survey: dict[str, Any], rows: Sequence[AnswerRow]) -> Release:
    return release_for(_specs(survey["questions"]), rows, min_group=min_group_of(survey))


async def _read_results(survey: dict[str, Any], event_id: int | None, locale: str) -> dict[str, Any]:
    survey_id = survey["id"]
    english = locale == "en"
    requests = await _requests(survey_id, event_id)
    answers = await _answers(survey_id)
    rows = _answer_rows(answers)
    labels = _group_labels(survey, answers)
    release = _release(survey, rows)
    scope = None if event_id is None else group_key(event_id)
    in_scope = sum(1 for row in rows if scope is None or row.group == scope)
    invited = len(requests)
    responded = sum(1 for r in requests if r["answered"])
    by_series = bool(survey["series"]) and event_id is None
    summary = summarise(_specs(survey["questions"]), rows, invited=max(invited, in_scope), group_by=by_series,
                        scope=scope, release=release)
    questions = []
    for question, figures in zip(survey["questions"], summary.questions, strict=True):
        text = question["text_en"] if english and question["text_en"] else question["text"]
        option_labels = _labels(question, english)
        counts = [(option_labels[i] if i < len(option_labels) else label, n)
                  for i, (label, n) in enumerate(figures.counts)]
        chart = ""
        if counts and not figures.suppressed:
            chart = bar_chart(text, counts, chart_id=f"q{question['id']}")
        questions.append({
            "id": question["id"], "kind": question["kind"], "text": text, "required": question["required"],
            "summary": figures, "counts": counts, "chart": chart, "texts": list(figures.texts),
            "shares": [percent(n, figures.respondents) for _, n in counts],
        })
    groups = []
    for key, group in summary.groups.items():
        name = labels.get(key, key)
        if isinstance(group, Suppressed):
            groups.append({"key": key, "name": name, "suppressed": True, "reason": group.reason})
        else:
            means = [(question["text"], q.mean) for question, q in
                     zip(survey["questions"], group.questions, strict=True) if q.kind == "scale"]
            groups.append({"key": key, "name": name, "suppressed": False, "respondents": group.respondents,
                           "means": means, "has_means": any(mean is not None for _, mean in means)})
    event_rows = await FeedbackRequest.select(
        FeedbackRequest.event, FeedbackRequest.event.title.as_alias("title"),
        FeedbackRequest.event.starts_at.as_alias("starts_at"),
    ).where(FeedbackRequest.survey == survey_id)
    events = {r["event"]: r for r in event_rows if r["event"] is not None}
    if survey["event"] is not None and survey["event"] not in events:
        attached = await Event.select(Event.id, Event.title, Event.starts_at).where(Event.id == survey["event"]).first()
        if attached:
            events[attached["id"]] = {"event": attached["id"], "title": attached["title"],
                                      "starts_at": attached["starts_at"]}
    nonrespondents = []
    if not survey["anonymous"]:
        nonrespondents = [{"name": r["name"], "event_title": r["event_title"] or ""}
                          for r in requests if not r["answered"]]
    return {
        "survey": survey, "event_id": event_id, "invited": invited, "responded": responded,
        "rate": (responded / invited) if invited else 0.0, "rate_text": share(responded, invited), "summary": summary, "questions": questions,
        "groups": groups, "by_series": by_series, "nonrespondents": nonrespondents,
        "events": sorted(events.values(), key=lambda e: (e["starts_at"] is None, e["starts_at"], e["event"])),
        "min_group": summary.min_group, "named": not survey["anonymous"],
        "withheld": release.reason(scope) if summary.suppressed else "",
    }


async def survey_results(
    survey_id: int, *, actor: Actor, event_id: int | None = None, locale: str = "ja", view: str = "results"
) -> dict[str, Any]:
    """The figures of one survey (or of one of its events) as a coordinator reads them; a named survey's
    read is audited in its own transaction. ``view`` says where it is read (results, print, api, series)."""
    require_staff(actor)
    survey = await get_survey(survey_id)
    if survey["anonymous"]:
        return await _read_results(survey, event_id, locale)
    return await audit.viewed(
        actor, "staff_viewed_feedback", lambda: _read_results(survey, event_id, locale),
        subject_type="survey", subject_id=survey_id,
        detail=lambda r: {"view": view, "event": event_id, "answers": r["summary"].respondents,
                          "nonrespondents": len(r["nonrespondents"])},
    )


async def series_results(*, actor: Actor, series: str, audience: str = "", locale: str = "ja") -> list[dict[str, Any]]:
    """Every survey of one series (optionally one audience), each read as `survey_results` reads it."""
    require_staff(actor)
    if not series:
        return []
    chosen = await list_surveys(series=series, audience=audience)
    return [await survey_results(s["id"], actor=actor, locale=locale, view="series") for s in chosen]


@dataclass(frozen=True)
class SurveyExport:
    header: list[str]
    rows: list[list[Any]]
    content: bytes
    filename: str
    media_type: str


async def export_answers(survey_id: int, *, actor: Actor, event_id: int | None = None, fmt: str = "csv") -> SurveyExport:
    """The answers as a spreadsheet (CSV or XLSX), by the rule of the module doc; audited with the read."""
    require_staff(actor)
    if fmt not in EXPORT_FORMATS:
        raise Invalid("出力形式は CSV か Excel を選んでください。", code="invalid_export_format")
    async with write_transaction():
        survey = await get_survey(survey_id)
        header, rows = await _export_table(survey, event_id)
        await audit.record(actor, "staff_exported_feedback", subject_type="survey", subject_id=survey_id,
                           detail={"format": fmt, "event": event_id, "rows": len(rows), "named": not survey["anonymous"]})
    content = sheets.to_csv(header, rows) if fmt == "csv" else sheets.to_xlsx(header, rows, title="回答")
    suffix = f"-event-{event_id}" if event_id is not None else ""
    return SurveyExport(header=header, rows=rows, content=content, filename=f"survey-{survey_id}{suffix}-answers.{fmt}",
                        media_type=EXPORT_FORMATS[fmt])


async def _export_table(survey: dict[str, Any], event_id: int | None) -> tuple[list[str], list[list[Any]]]:
    answers = await _answers(survey["id"])
    rows = _answer_rows(answers)
    release = _release(survey, rows)
    scope = None if event_id is None else group_key(event_id)
    anonymous = survey["anonymous"]
    if anonymous and not release.shows(None):
        raise Conflict(
            f"匿名アンケートの回答が{DEFAULT_MIN_GROUP}件未満のため、個々の回答は出力できません（集計のみご覧いただけます）。",
            code="too_few_answers_to_export")
    if anonymous and not release.shows(scope):
        raise Conflict("この回の結果は、回答者が特定されないよう表示していないため、回答も出力できません。"
                       "全体の出力をご利用ください。", code="feedback_event_withheld")
    questions = survey["questions"]
    exported = feedback_stats.export_answers(_specs(questions), rows, release, scope=scope)
    labels = _group_labels(survey, answers)
    by_key = {a["id"]: a for a in answers}
    filled = set(exported.filled)
    texts = [q["text"] if q["id"] in filled else q["text"] + WITHHELD_COLUMN for q in questions]
    export_rows = list(exported.rows)
    if anonymous:
        random.SystemRandom().shuffle(export_rows)  # no order that could be matched to the time of answering
        header = ["回答番号", "イベント", *texts]
    else:
        export_rows.sort(key=lambda r: (by_key[r.respondent_key]["person_name"] or "", r.respondent_key))
        header = ["回答番号", "イベント", "氏名", "メールアドレス", "最終更新日時", *texts]
    table = []
    for number, row in enumerate(export_rows, start=1):
        event = WITHHELD_EVENT if row.group is None else labels.get(row.group, "")
        identity: list[Any] = []
        if not anonymous:
            answer = by_key[row.respondent_key]
            identity = [answer["person_name"], answer["person_email"], timefmt.short(answer["updated_at"])]
        table.append([number, event, *identity, *(row.values.get(q["id"]) for q in questions)])
    return header, table
