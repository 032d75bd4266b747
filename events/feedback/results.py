"""Results of a survey (per event or the whole series) and answer exports (CSV, XLSX).

Figures come from the pure core events.feedback_stats (groups under 5 answers are not shown) and
charts from events.svg_charts. Anonymous surveys never show or export who answered what: answers are
read in the order of their random key, exports are shuffled, and fewer than 5 answers are not exported.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from typing import Any

from events import timefmt
from events.errors import Conflict
from events.feedback.surveys import get_survey
from events.feedback.tables import FeedbackAnswer, FeedbackRequest
from events.feedback_stats import DEFAULT_MIN_GROUP, AnswerRow, QuestionSpec, Suppressed, summarise
from events.seminars.tables import Event
from events.svg_charts import bar_chart

POOLED_GROUP = "少人数の回（まとめて集計）"
KIND_LABELS = {"scale": "5段階", "single": "単一選択", "multi": "複数選択", "text": "自由記述"}


def _specs(questions: Sequence[dict[str, Any]]) -> list[QuestionSpec]:
    return [QuestionSpec(id=q["id"], kind=q["kind"], options=tuple(q["options"] or ())) for q in questions]


def _labels(question: dict[str, Any], english: bool) -> list[str]:
    options = list(question["options"] or [])
    options_en = list(question["options_en"] or [])
    if question["kind"] == "scale" and not options:
        return ["1", "2", "3", "4", "5"]
    return options_en if english and len(options_en) == len(options) else options


async def _answers(survey_id: int, event_id: int | None) -> list[dict[str, Any]]:
    query = FeedbackAnswer.select(
        FeedbackAnswer.id, FeedbackAnswer.event, FeedbackAnswer.answers, FeedbackAnswer.updated_at,
        FeedbackAnswer.event.title.as_alias("event_title"), FeedbackAnswer.person.name.as_alias("person_name"),
        FeedbackAnswer.person.email.as_alias("person_email"),
    ).where(FeedbackAnswer.survey == survey_id).order_by(FeedbackAnswer.id).output(load_json=True)
    if event_id is not None:
        query = query.where(FeedbackAnswer.event == event_id)
    return await query


async def _requests(survey_id: int, event_id: int | None) -> list[dict[str, Any]]:
    query = FeedbackRequest.select(
        FeedbackRequest.event, FeedbackRequest.responded_at, FeedbackRequest.sent_at, FeedbackRequest.reminded_at,
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


async def survey_results(survey_id: int, *, event_id: int | None = None, locale: str = "ja") -> dict[str, Any]:
    survey = await get_survey(survey_id)
    english = locale == "en"
    requests = await _requests(survey_id, event_id)
    answers = await _answers(survey_id, event_id)
    invited = len(requests)
    responded = sum(1 for r in requests if r["responded_at"] is not None)
    by_series = bool(survey["series"]) and event_id is None
    rows = [
        AnswerRow(respondent_key=a["id"], group=(a["event_title"] or POOLED_GROUP), values=_stored_values(a))
        for a in answers
    ]
    summary = summarise(_specs(survey["questions"]), rows, invited=max(invited, len(rows)), group_by=by_series)
    questions = []
    for question, figures in zip(survey["questions"], summary.questions, strict=True):
        text = question["text_en"] if english and question["text_en"] else question["text"]
        labels = _labels(question, english)
        counts = [(labels[i] if i < len(labels) else label, n) for i, (label, n) in enumerate(figures.counts)]
        chart = ""
        if counts and not figures.suppressed:
            chart = bar_chart(text, counts, chart_id=f"q{question['id']}")
        questions.append({
            "id": question["id"], "kind": question["kind"], "text": text, "required": question["required"],
            "summary": figures, "counts": counts, "chart": chart,
            "texts": list(figures.texts),
        })
    groups = []
    for name, group in summary.groups.items():
        if isinstance(group, Suppressed):
            groups.append({"name": name, "suppressed": True, "reason": group.reason})
        else:
            means = [q.mean for q in group.questions if q.kind == "scale"]
            groups.append({"name": name, "suppressed": False, "respondents": group.respondents,
                           "means": [(question["text"], q.mean) for question, q in
                                     zip(survey["questions"], group.questions, strict=True) if q.kind == "scale"],
                           "has_means": any(m is not None for m in means)})
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
                          for r in requests if r["responded_at"] is None]
    return {
        "survey": survey, "event_id": event_id, "invited": invited, "responded": responded,
        "rate": (responded / invited) if invited else 0.0, "summary": summary, "questions": questions,
        "groups": groups, "by_series": by_series, "nonrespondents": nonrespondents,
        "events": sorted(events.values(), key=lambda e: (e["starts_at"] is None, e["starts_at"], e["event"])),
        "min_group": summary.min_group,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = "、".join(str(v) for v in value)
    text = str(value)
    # A cell that starts like a formula would run in a spreadsheet (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def export_table(survey_id: int, *, event_id: int | None = None) -> tuple[list[str], list[list[str]]]:
    survey = await get_survey(survey_id)
    answers = await _answers(survey_id, event_id)
    questions = survey["questions"]
    if survey["anonymous"]:
        if len(answers) < DEFAULT_MIN_GROUP:
            raise Conflict(
                f"匿名アンケートの回答が{DEFAULT_MIN_GROUP}件未満のため、個々の回答は出力できません（集計のみご覧いただけます）。",
                code="too_few_answers_to_export")
        random.SystemRandom().shuffle(answers)  # no order that could be matched to the time of answering
        header = ["回答番号", "イベント"] + [q["text"] for q in questions]
    else:
        answers.sort(key=lambda a: (a["person_name"] or "", a["id"]))
        header = ["回答番号", "イベント", "氏名", "メールアドレス", "最終更新日時"] + [q["text"] for q in questions]
    rows = []
    for number, answer in enumerate(answers, start=1):
        values = _stored_values(answer)
        event = answer["event_title"] or ("（少人数の回）" if survey["anonymous"] else "")
        identity: list[Any] = []
        if not survey["anonymous"]:
            updated = answer["updated_at"]
            identity = [answer["person_name"], answer["person_email"],
                        timefmt.short(updated)]
        rows.append([_cell(v) for v in [number, event, *identity, *(values.get(q["id"]) for q in questions)]])
    return header, rows


def to_csv(header: list[str], rows: list[list[str]]) -> bytes:
    """UTF-8 with BOM and CRLF, as Excel on a ward PC expects."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(header: list[str], rows: list[list[str]], *, title: str = "回答") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = (title or "回答")[:31].translate({ord(c): "_" for c in "[]:*?/\\"})
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for row in rows:
        sheet.append(row)
    sheet.freeze_panes = "A2"
    for index, _ in enumerate(header, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = 12 if index <= 2 else 28
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()

