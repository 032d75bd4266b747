"""JSON API of the feedback area: templates, surveys, questions, results (coordinators only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from events import sheets
from events.feedback import results, surveys
from events.feedback.defaults import TEMPLATES
from lifedesign.security import COORDINATOR, actor_of


class QuestionIn(msgspec.Struct):
    kind: str
    text: str
    text_en: str = ""
    options: list[str] = []
    options_en: list[str] = []
    required: bool = False


class SurveyIn(msgspec.Struct):
    audience: str
    template: str = ""
    title: str = ""
    title_en: str = ""
    event_id: int | None = None
    series: str = ""
    anonymous: bool = True
    closes_at: datetime | None = None
    reminder_days: int = 3
    questions: list[QuestionIn] | None = None


class SurveyOut(msgspec.Struct):
    id: int
    title: str
    title_en: str
    audience: str
    anonymous: bool
    event_id: int | None
    series: str
    status: str
    closes_at: datetime | None
    invited: int
    responded: int


class QuestionFigures(msgspec.Struct):
    id: int
    kind: str
    text: str
    suppressed: bool
    respondents: int
    counts: list[tuple[str, int]]
    mean: float | None
    median: float | None
    texts: list[str]


class ResultsOut(msgspec.Struct):
    survey_id: int
    event_id: int | None
    anonymous: bool
    invited: int
    responded: int
    response_rate: float
    suppressed: bool
    withheld: str  # why the scope's figures are withheld: "" (shown), "small_group" or "complementary"
    min_group: int | None  # anonymous surveys: the fewest people a shown figure covers; named: None
    questions: list[QuestionFigures]
    not_answered: list[str] | None  # named surveys only; anonymous surveys never list people


def _out(survey: dict[str, Any]) -> SurveyOut:
    return SurveyOut(id=survey["id"], title=survey["title"], title_en=survey["title_en"], audience=survey["audience"],
                     anonymous=survey["anonymous"], event_id=survey["event"], series=survey["series"],
                     status=survey["status"], closes_at=survey["closes_at"], invited=survey.get("invited", 0),
                     responded=survey.get("responded", 0))


@get("/api/v1/feedback/templates", guards=[COORDINATOR], tags=["feedback"])
async def api_templates() -> dict[str, Any]:
    """The default survey templates, one per audience."""
    return TEMPLATES


@get("/api/v1/feedback/surveys", guards=[COORDINATOR], tags=["feedback"])
async def api_surveys(series: FromQuery[str] = "", audience: FromQuery[str] = "") -> list[SurveyOut]:
    return [_out(s) for s in await surveys.list_surveys(series=series, audience=audience)]


@post("/api/v1/feedback/surveys", guards=[COORDINATOR], tags=["feedback"])
async def api_survey_create(request: Request, data: JSONBody[SurveyIn]) -> SurveyOut:
    survey_id = await surveys.create_survey(
        audience=data.audience, template=data.template, title=data.title, title_en=data.title_en,
        event_id=data.event_id, series=data.series, anonymous=data.anonymous, closes_at=data.closes_at,
        reminder_days=data.reminder_days, actor=actor_of(request),
        questions=[msgspec.structs.asdict(q) for q in data.questions] if data.questions is not None else None,
    )
    return _out([s for s in await surveys.list_surveys() if s["id"] == survey_id][0])


@post("/api/v1/feedback/surveys/{survey_id:int}/questions", guards=[COORDINATOR], tags=["feedback"])
async def api_question_add(survey_id: FromPath[int], data: JSONBody[QuestionIn]) -> dict[str, int]:
    return {"id": await surveys.add_question(survey_id, msgspec.structs.asdict(data))}


@post("/api/v1/feedback/surveys/{survey_id:int}/close", guards=[COORDINATOR], tags=["feedback"])
async def api_survey_close(request: Request, survey_id: FromPath[int]) -> dict[str, str]:
    await surveys.close_survey(survey_id, actor=actor_of(request))
    return {"status": "closed"}


def _results_out(outcome: dict[str, Any], event: int | None) -> ResultsOut:
    survey = outcome["survey"]
    survey_id = survey["id"]
    summary = outcome["summary"]
    return ResultsOut(
        survey_id=survey_id, event_id=event, anonymous=survey["anonymous"], invited=outcome["invited"],
        responded=outcome["responded"], response_rate=outcome["rate"], suppressed=summary.suppressed,
        withheld=outcome["withheld"], min_group=outcome["min_group"] if survey["anonymous"] else None,
        questions=[QuestionFigures(
            id=q["id"], kind=q["kind"], text=q["text"], suppressed=q["summary"].suppressed,
            respondents=q["summary"].respondents, counts=list(q["counts"]), mean=q["summary"].mean,
            median=q["summary"].median, texts=q["texts"]) for q in outcome["questions"]],
        not_answered=None if survey["anonymous"] else [p["name"] for p in outcome["nonrespondents"]],
    )


@get("/api/v1/feedback/surveys/{survey_id:int}/results", guards=[COORDINATOR], tags=["feedback"])
async def api_results(request: Request, survey_id: FromPath[int], event: FromQuery[int | None] = None) -> ResultsOut:
    """Figures per question, of the whole survey or of one event. Anonymous surveys: figures that could
    single out fewer than 5 people are withheld (as on the results page); named surveys show everything."""
    outcome = await results.survey_results(survey_id, actor=actor_of(request), event_id=event, view="api")
    return _results_out(outcome, event)


@get("/api/v1/feedback/series", guards=[COORDINATOR], tags=["feedback"])
async def api_series(request: Request, series: FromQuery[str], audience: FromQuery[str] = "") -> list[ResultsOut]:
    """Every survey of one series (optionally one audience), each with the figures of its results; read by the
    same rule (and audited for named surveys) as the series page."""
    outcomes = await results.series_results(actor=actor_of(request), series=series, audience=audience,
                                            locale=request.state.locale)
    return [_results_out(outcome, None) for outcome in outcomes]


async def export_response(request: Request, survey_id: int, event: int | None, fmt: str) -> Response:
    """The export as a download (the pages' export links answer the same)."""
    export = await results.export_answers(survey_id, actor=actor_of(request), event_id=event, fmt=fmt)
    return Response(content=export.content, media_type=export.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{export.filename}"',
                             "Cache-Control": "no-store"})


@get("/api/v1/feedback/surveys/{survey_id:int}/answers.csv", guards=[COORDINATOR], tags=["feedback"],
     media_type=sheets.CSV_MEDIA_TYPE)
async def api_export_csv(request: Request, survey_id: FromPath[int], event: FromQuery[int | None] = None) -> Response:
    """The answers as CSV (UTF-8 with BOM), by the rule of the results: anonymous surveys need 5 answers and name
    nobody; named surveys list everyone. Audited."""
    return await export_response(request, survey_id, event, "csv")


@get("/api/v1/feedback/surveys/{survey_id:int}/answers.xlsx", guards=[COORDINATOR], tags=["feedback"],
     media_type=sheets.XLSX_MEDIA_TYPE)
async def api_export_xlsx(request: Request, survey_id: FromPath[int], event: FromQuery[int | None] = None) -> Response:
    """The answers as an Excel workbook, by the same rule as the CSV. Audited."""
    return await export_response(request, survey_id, event, "xlsx")


API_ROUTES = [api_templates, api_surveys, api_survey_create, api_question_add, api_survey_close, api_results,
              api_series, api_export_csv, api_export_xlsx]
