"""Feedback pages: the personal answering page (no login) and the coordinators' survey, results and export pages."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from events import timefmt
from events.db import utcnow
from events.errors import DomainError, Invalid, NotFound
from events.feedback import answering, results, surveys
from events.feedback.defaults import AUDIENCE_LABELS, TEMPLATES
from events.feedback.tables import AUDIENCES
from events.seminars.tables import Event
from events.timefmt import TOKYO
from lifedesign.areas.feedback.api import export_response
from lifedesign.i18n import gettext_for
from lifedesign.rendering import HOME_SECTIONS, form_data, page, register_nav, render_fragment
from lifedesign.security import COORDINATOR, LANG_COOKIE, actor_of, cookie_options

KIND_LABELS = {"scale": "5段階", "single": "単一選択", "multi": "複数選択", "text": "自由記述"}

register_nav("/coordinator/feedback", "アンケート", ("coordinator", "admin"))


async def pending_surveys_section(request: Request) -> str:
    """On the home page: the surveys this person has not answered yet, each with its personal link."""
    person = request.state.person
    items = await answering.pending_for(person["id"], locale=request.state.locale) if person else []
    return render_fragment(request, "pages/feedback/_home.html", items=items) if items else ""


if pending_surveys_section not in HOME_SECTIONS:
    HOME_SECTIONS.append(pending_surveys_section)


# ---------------------------------------------------------------- answering (personal link, no login)
#
# The link in the mail (/feedback/<token>) is opened once: its token moves into a short-lived cookie and the
# browser is sent on to /feedback, so the token appears in no later URL, form, log line or history entry.

SURVEY_COOKIE = "ld_survey"
SURVEY_COOKIE_SECONDS = 2 * 3600  # long enough to answer at leisure, short enough not to linger


def _answer_locale(request: Request, fallback: str) -> str:
    chosen = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    return chosen if chosen in ("ja", "en") else fallback


def _survey_token(request: Request, form: Any = None) -> str:
    token = request.cookies.get(SURVEY_COOKIE, "")
    if not token and form is not None:  # a page rendered before the cookie existed posts the token itself
        token = str(form.get("token", ""))
    return token


def _not_found(request: Request, *, expired: bool = False) -> Response:
    _ = gettext_for(request.state.locale)
    first = (_("このページの有効時間が過ぎました。メールのリンクからもう一度開いてください。") if expired
             else _("このアンケートのリンクは見つかりません。メールのリンクをもう一度ご確認ください。"))
    return page(request, "pages/message.html", status_code=404, title=_("アンケートが見つかりません"),
                heading=_("アンケートが見つかりません"),
                lines=[first, _("ご不明な点は、金沢区こども家庭支援課までお問い合わせください。")], link=None)


async def _form_page(request: Request, token: str, *, values: dict[str, Any] | None = None,
                     errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    request.state.personal = True
    form = await answering.open_form(token)
    request.state.locale = _answer_locale(request, form.locale)
    if request.state.locale != form.locale:
        form = await answering.open_form(token, locale=request.state.locale)
    _ = gettext_for(request.state.locale)
    if not form.open:
        return page(request, "pages/message.html", status_code=410, title=_("アンケートの受付は終了しました"),
                    heading=_("アンケートの受付は終了しました"),
                    lines=[_("このアンケートの回答期間は終了しました。ご協力ありがとうございました。"),
                           _("ご不明な点は、金沢区こども家庭支援課までお問い合わせください。")], link=None)
    return page(request, "pages/feedback/answer.html", status_code=status_code, title=form.title, form=form,
                values=values if values is not None else form.answers, errors=errors or {})


@get("/feedback/{token:str}", include_in_schema=False)
async def answer_link(request: Request, token: FromPath[str]) -> Response:
    """The mail's link: the token goes into a cookie, the browser on to the token-free /feedback."""
    request.state.personal = True
    try:
        await answering.open_form(token)
    except NotFound:
        return _not_found(request)
    lang = request.query_params.get("lang")
    response = Redirect(path="/feedback" + (f"?lang={lang}" if lang in ("ja", "en") else ""), status_code=303)
    response.set_cookie(SURVEY_COOKIE, token, max_age=SURVEY_COOKIE_SECONDS,
                        **{**cookie_options(), "path": "/feedback"})
    return response


@get("/feedback", include_in_schema=False)
async def answer_page(request: Request) -> Response:
    request.state.personal = True
    token = _survey_token(request)
    if not token:
        return _not_found(request, expired=True)
    try:
        return await _form_page(request, token)
    except NotFound:
        return _not_found(request)


@post("/feedback", include_in_schema=False)
async def answer_submit(request: Request) -> Response:
    # The token travels in the cookie (or the form body), never in the path: no log line of the POST carries it.
    request.state.personal = True
    form = await request.form()
    token = _survey_token(request, form)
    if not token:
        return _not_found(request, expired=True)
    fields = {key: [str(v) for v in form.getall(key)] for key in form if key.startswith("q")}
    try:
        first = await answering.submit_answers(token, fields)
    except NotFound:
        return _not_found(request)
    except Invalid as exc:
        if exc.code != "feedback_incomplete":
            raise
        values: dict[str, Any] = {}
        for key, given in fields.items():
            values[key] = [int(v) for v in given if v.isdigit()] if len(given) > 1 else (
                int(given[0]) if given and given[0].isdigit() else (given[0] if given else ""))
        locale = _answer_locale(request, "ja")
        _ = gettext_for(locale)
        errors = {key: _(message) for key, message in exc.extra.get("errors", {}).items()}
        return await _form_page(request, token, values=values, errors=errors, status_code=422)
    except DomainError as exc:
        if exc.code in ("survey_closed", "feedback_already_answered"):
            return await _form_page(request, token, status_code=exc.status)
        raise
    view = await answering.open_form(token)
    request.state.locale = _answer_locale(request, view.locale)
    _ = gettext_for(request.state.locale)
    lines = [_("ご回答ありがとうございました。いただいたご意見は今後の事業に活かしてまいります。")]
    link = None
    if view.anonymous:
        lines.append(_("このアンケートは無記名です。回答内容とお名前が結びつけられることはありません。"))
    else:
        lines.append(_("締切までは、同じリンクから回答を修正できます。") if first else _("回答を更新しました。"))
        link = {"href": "/feedback", "label": _("回答内容を確認・修正する")}
    response = page(request, "pages/message.html", title=_("ご回答ありがとうございました"),
                    heading=_("ご回答ありがとうございました"), lines=lines, link=link)
    if view.anonymous:  # nothing more to do with the link in this browser
        response.delete_cookie(SURVEY_COOKIE, path="/feedback")
    return response


# ---------------------------------------------------------------- coordinators


def _parse_closes(value: str) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid("締切日の形式が正しくありません。", code="invalid_closes_at", field="closes_at") from None
    if day.tzinfo is None:
        day = datetime.combine(day.date(), time(23, 59), tzinfo=TOKYO) if len(value) <= 10 else day.replace(tzinfo=TOKYO)
    return day


async def _event_choices() -> list[dict[str, Any]]:
    return await Event.select(Event.id, Event.title, Event.kind, Event.starts_at, Event.series).where(
        Event.status != "cancelled").order_by(Event.starts_at, ascending=False).limit(300)


async def _series_choices() -> list[str]:
    rows = await Event.select(Event.series).where(Event.series != "").distinct()
    return sorted({r["series"] for r in rows})


async def _list_page(request: Request, *, error: str = "", form: dict[str, str] | None = None,
                     status_code: int = 200) -> Response:
    series = request.query_params.get("series", "")
    audience = request.query_params.get("audience", "")
    return page(request, "pages/feedback/list.html", status_code=status_code, title="アンケート",
                surveys=await surveys.list_surveys(series=series, audience=audience if audience in AUDIENCES else ""),
                templates=TEMPLATES, audiences=AUDIENCE_LABELS, events=await _event_choices(),
                series_choices=await _series_choices(), series=series, audience=audience, error=error,
                form=form or {})


@get("/coordinator/feedback", guards=[COORDINATOR], include_in_schema=False)
async def survey_list(request: Request) -> Response:
    return await _list_page(request)


@post("/coordinator/feedback", guards=[COORDINATOR], include_in_schema=False)
async def survey_create(request: Request) -> Response:
    form = await form_data(request)
    template = form.get("template", "")
    try:
        audience = TEMPLATES[template]["audience"] if template in TEMPLATES else form.get("audience", "")
        event = form.get("event", "")
        survey_id = await surveys.create_survey(
            audience=audience, template=template if template in TEMPLATES else "", title=form.get("title", ""),
            title_en=form.get("title_en", ""), event_id=int(event) if event.isdigit() else None,
            series=form.get("series", "") if not event else "", anonymous=form.get("anonymous", "1") == "1",
            closes_at=_parse_closes(form.get("closes_at", "")),
            reminder_days=int(form["reminder_days"]) if form.get("reminder_days", "").isdigit() else 3,
            actor=actor_of(request),
        )
    except DomainError as exc:
        return await _list_page(request, error=gettext_for(request.state.locale)(exc.message), form=form,
                                status_code=exc.status)
    return Redirect(path=f"/coordinator/feedback/{survey_id}", status_code=303)


async def _detail_page(request: Request, survey_id: int, *, error: str = "", status_code: int = 200,
                       form: dict[str, str] | None = None) -> Response:
    survey = await surveys.get_survey(survey_id)
    listed = [s for s in await surveys.list_surveys() if s["id"] == survey_id]
    return page(request, "pages/feedback/detail.html", status_code=status_code, title=survey["title"], survey=survey,
                counts=listed[0] if listed else {"invited": 0, "responded": 0}, kinds=KIND_LABELS,
                audiences=AUDIENCE_LABELS, error=error, form=form or {}, is_open=surveys.is_open(survey))


@get("/coordinator/feedback/{survey_id:int}", guards=[COORDINATOR], include_in_schema=False)
async def survey_detail(request: Request, survey_id: FromPath[int]) -> Response:
    return await _detail_page(request, survey_id)


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace("\r", "").split("\n") if line.strip()]


@post("/coordinator/feedback/{survey_id:int}/questions", guards=[COORDINATOR], include_in_schema=False)
async def question_add(request: Request, survey_id: FromPath[int]) -> Response:
    form = await form_data(request)
    try:
        await surveys.add_question(survey_id, {
            "kind": form.get("kind", ""), "text": form.get("text", ""), "text_en": form.get("text_en", ""),
            "options": _lines(form.get("options", "")), "options_en": _lines(form.get("options_en", "")),
            "required": form.get("required") == "1",
        })
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _detail_page(request, survey_id, error=gettext_for(request.state.locale)(exc.message),
                                  status_code=exc.status, form=form)
    return Redirect(path=f"/coordinator/feedback/{survey_id}", status_code=303)


@post("/coordinator/feedback/{survey_id:int}/questions/{question_id:int}/delete", guards=[COORDINATOR],
      include_in_schema=False)
async def question_remove(request: Request, survey_id: FromPath[int], question_id: FromPath[int]) -> Response:
    try:
        await surveys.remove_question(survey_id, question_id)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _detail_page(request, survey_id, error=gettext_for(request.state.locale)(exc.message),
                                  status_code=exc.status)
    return Redirect(path=f"/coordinator/feedback/{survey_id}", status_code=303)


@post("/coordinator/feedback/{survey_id:int}/close", guards=[COORDINATOR], include_in_schema=False)
async def survey_close(request: Request, survey_id: FromPath[int]) -> Response:
    await surveys.close_survey(survey_id, actor=actor_of(request))
    return Redirect(path=f"/coordinator/feedback/{survey_id}", status_code=303)


def _event_filter(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


async def _results(request: Request, survey_id: int, event: str | None, view: str) -> dict[str, Any]:
    return await results.survey_results(survey_id, actor=actor_of(request), event_id=_event_filter(event),
                                        locale=request.state.locale, view=view)


@get("/coordinator/feedback/{survey_id:int}/results", guards=[COORDINATOR], include_in_schema=False)
async def survey_results(request: Request, survey_id: FromPath[int], event: FromQuery[str | None] = None) -> Response:
    outcome = await _results(request, survey_id, event, "results")
    return page(request, "pages/feedback/results.html", title=outcome["survey"]["title"], r=outcome,
                audiences=AUDIENCE_LABELS, kinds=KIND_LABELS)


@get("/coordinator/feedback/{survey_id:int}/print", guards=[COORDINATOR], include_in_schema=False)
async def survey_print(request: Request, survey_id: FromPath[int], event: FromQuery[str | None] = None) -> Response:
    outcome = await _results(request, survey_id, event, "print")
    event_title = next((e["title"] for e in outcome["events"] if e["event"] == outcome["event_id"]), "")
    return page(request, "pages/feedback/print.html", title=outcome["survey"]["title"], r=outcome,
                audiences=AUDIENCE_LABELS, event_title=event_title,
                printed_at=timefmt.short(utcnow(), "%Y年%m月%d日"))


async def _export(request: Request, survey_id: int, event: str | None, fmt: str) -> Response:
    return await export_response(request, survey_id, _event_filter(event), fmt)


@get("/coordinator/feedback/{survey_id:int}/answers.csv", guards=[COORDINATOR], include_in_schema=False)
async def export_csv(request: Request, survey_id: FromPath[int], event: FromQuery[str | None] = None) -> Response:
    return await _export(request, survey_id, event, "csv")


@get("/coordinator/feedback/{survey_id:int}/answers.xlsx", guards=[COORDINATOR], include_in_schema=False)
async def export_xlsx(request: Request, survey_id: FromPath[int], event: FromQuery[str | None] = None) -> Response:
    return await _export(request, survey_id, event, "xlsx")


@get("/coordinator/feedback/series", guards=[COORDINATOR], include_in_schema=False)
async def series_overview(request: Request, series: FromQuery[str] = "", audience: FromQuery[str] = "") -> Response:
    """Every survey of one series (optionally one audience), with its headline figures."""
    outcomes = await results.series_results(actor=actor_of(request), series=series,
                                            audience=audience if audience in AUDIENCES else "",
                                            locale=request.state.locale)
    return page(request, "pages/feedback/series.html", title="シリーズ別の集計", series=series, audience=audience,
                outcomes=outcomes, audiences=AUDIENCE_LABELS, series_choices=await _series_choices())


PAGE_ROUTES = [answer_link, answer_page, answer_submit, survey_list, survey_create, series_overview, survey_detail, question_add,
               question_remove, survey_close, survey_results, survey_print, export_csv, export_xlsx]
