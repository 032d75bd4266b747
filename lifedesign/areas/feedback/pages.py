"""Feedback pages: the personal answering page (no login) and the coordinators' survey, results and export pages."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from events import timefmt
from events.config import config
from events.db import utcnow
from events.errors import DomainError, Forbidden, Invalid, NotFound
from events.feedback import answering, onsite, results, sending, surveys
from events.feedback.defaults import AUDIENCE_LABELS, TEMPLATES
from events.feedback.tables import AUDIENCES
from events.seminars.tables import Event
from events.timefmt import TOKYO
from lifedesign.areas.feedback.api import export_response
from lifedesign.i18n import gettext_for
from lifedesign.rendering import (
    HOME_SECTIONS,
    confirm_page,
    confirmed,
    form_data,
    page,
    register_nav,
    render_fragment,
)
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


def _message(request: Request, heading: str, *lines: str, status_code: int = 200) -> Response:
    """A short page of Japanese texts, translated here."""
    _ = gettext_for(request.state.locale)
    return page(request, "pages/message.html", status_code=status_code, title=_(heading), heading=_(heading),
                lines=[_(line) for line in lines], link=None)


def _closed(request: Request) -> Response:
    return _message(request, "アンケートの受付は終了しました",
                    "このアンケートの回答期間は終了しました。ご協力ありがとうございました。",
                    "ご不明な点は、金沢区こども家庭支援課までお問い合わせください。", status_code=410)


def _thanks(request: Request, *, anonymous: bool, first: bool) -> Response:
    _ = gettext_for(request.state.locale)
    lines = [_("ご回答ありがとうございました。いただいたご意見は今後の事業に活かしてまいります。")]
    link = None
    if anonymous:
        lines.append(_("このアンケートは無記名です。回答内容とお名前が結びつけられることはありません。"))
    else:
        lines.append(_("締切までは、同じリンクから回答を修正できます。") if first else _("回答を更新しました。"))
        link = {"href": "/feedback", "label": _("回答内容を確認・修正する")}
    return page(request, "pages/message.html", title=_("ご回答ありがとうございました"),
                heading=_("ご回答ありがとうございました"), lines=lines, link=link)


def _form_values_of(fields: dict[str, list[str]]) -> dict[str, Any]:
    """What was sent, back into the form after an error (nothing typed is lost)."""
    values: dict[str, Any] = {}
    for key, given in fields.items():
        values[key] = [int(v) for v in given if v.isdigit()] if len(given) > 1 else (
            int(given[0]) if given and given[0].isdigit() else (given[0] if given else ""))
    return values


async def _form_page(request: Request, token: str, *, values: dict[str, Any] | None = None,
                     errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    request.state.personal = True
    form = await answering.open_form(token)
    request.state.locale = _answer_locale(request, form.locale)
    if request.state.locale != form.locale:
        form = await answering.open_form(token, locale=request.state.locale)
    _ = gettext_for(request.state.locale)
    if not form.open:
        return _closed(request)
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
        _ = gettext_for(_answer_locale(request, "ja"))
        errors = {key: _(message) for key, message in exc.extra.get("errors", {}).items()}
        return await _form_page(request, token, values=_form_values_of(fields), errors=errors, status_code=422)
    except DomainError as exc:
        if exc.code in ("survey_closed", "feedback_already_answered"):
            return await _form_page(request, token, status_code=exc.status)
        raise
    view = await answering.open_form(token)
    request.state.locale = _answer_locale(request, view.locale)
    response = _thanks(request, anonymous=view.anonymous, first=first)
    if view.anonymous:  # nothing more to do with the link in this browser
        response.delete_cookie(SURVEY_COOKIE, path="/feedback")
    return response


# ---------------------------------------------------------------- on site (one link per survey, events.feedback.onsite)
#
# /feedback/open/<id>/<token> is printed and shown as a QR code. Anonymous surveys: it gives the browser a one-time
# answer slot (a signed cookie for /feedback/open/<id>, where the form lives) unless this browser answered already;
# named surveys: it leads a logged-in participant to their own personal form.

ONSITE_SLOT_COOKIE = "ld_slot"
ONSITE_DONE_COOKIE = "ld_onsite_done"  # this browser answered this survey on site
ONSITE_DONE_SECONDS = 180 * 24 * 3600


def _slot_expired(request: Request) -> Response:
    return _message(request, "アンケートが見つかりません",
                           "このページの有効時間が過ぎました。QRコードまたはリンクからもう一度開いてください。",
                           status_code=404)


def _answered_here(request: Request, status_code: int = 200) -> Response:
    return _message(request, "回答済みです", "この端末からは、このアンケートに回答済みです。ご協力ありがとうございました。",
                           status_code=status_code)


@get("/feedback/open/{survey_id:int}/{token:str}", include_in_schema=False)
async def onsite_link(request: Request, survey_id: FromPath[int], token: FromPath[str]) -> Response:
    request.state.personal = True
    try:
        survey = await onsite.survey_of_link(survey_id, token)
    except NotFound:
        return _not_found(request)
    if not surveys.is_open(survey):
        return _closed(request)
    if not survey["anonymous"]:
        if request.state.person is None:
            return Redirect(path=f"/login?next={onsite.onsite_path(survey_id)}", status_code=303)
        try:
            personal = await onsite.participant_link(survey_id, request.state.person["id"])
        except Forbidden as exc:
            return _message(request, "このアンケートには回答できません", exc.message, status_code=403)
        response = Redirect(path="/feedback", status_code=303)
        response.set_cookie(SURVEY_COOKIE, personal, max_age=SURVEY_COOKIE_SECONDS,
                            **{**cookie_options(), "path": "/feedback"})
        return response
    if request.cookies.get(ONSITE_DONE_COOKIE) == "1":
        return _answered_here(request)
    response = Redirect(path=f"/feedback/open/{survey_id}", status_code=303)
    response.set_cookie(ONSITE_SLOT_COOKIE, onsite.new_slot(survey_id), max_age=SURVEY_COOKIE_SECONDS,
                        **{**cookie_options(), "path": f"/feedback/open/{survey_id}"})
    return response


def _onsite_slot(request: Request, survey_id: int) -> str | None:
    slot = request.cookies.get(ONSITE_SLOT_COOKIE, "")
    nonce = onsite.slot_nonce(survey_id, slot)
    return None if nonce is None else slot


async def _onsite_form(request: Request, survey_id: int, *, values: dict[str, Any] | None = None,
                       errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    request.state.locale = _answer_locale(request, request.state.locale)
    form = await onsite.open_form(survey_id, locale=request.state.locale)
    if not form.open:
        return _closed(request)
    return page(request, "pages/feedback/answer.html", status_code=status_code, title=form.title, form=form,
                values=values or {}, errors=errors or {}, form_action=f"/feedback/open/{survey_id}")


@get("/feedback/open/{survey_id:int}", include_in_schema=False)
async def onsite_page(request: Request, survey_id: FromPath[int]) -> Response:
    request.state.personal = True
    if request.cookies.get(ONSITE_DONE_COOKIE) == "1":
        return _answered_here(request)
    slot = _onsite_slot(request, survey_id)
    if slot is None:
        return _slot_expired(request)
    if await onsite.slot_used(survey_id, onsite.slot_nonce(survey_id, slot) or ""):
        return _answered_here(request)
    try:
        return await _onsite_form(request, survey_id)
    except NotFound:
        return _not_found(request)


@post("/feedback/open/{survey_id:int}", include_in_schema=False)
async def onsite_submit(request: Request, survey_id: FromPath[int]) -> Response:
    request.state.personal = True
    form = await request.form()
    slot = _onsite_slot(request, survey_id)
    if slot is None:
        return _slot_expired(request)
    fields = {key: [str(v) for v in form.getall(key)] for key in form if key.startswith("q")}
    try:
        await onsite.submit_anonymous(survey_id, slot, fields)
    except NotFound:
        return _slot_expired(request)
    except Invalid as exc:
        if exc.code != "feedback_incomplete":
            raise
        _ = gettext_for(_answer_locale(request, request.state.locale))
        errors = {key: _(message) for key, message in exc.extra.get("errors", {}).items()}
        return await _onsite_form(request, survey_id, values=_form_values_of(fields), errors=errors, status_code=422)
    except DomainError as exc:
        if exc.code == "survey_closed":
            return _closed(request)
        if exc.code == "feedback_already_answered":
            return _answered_here(request, exc.status)
        raise
    request.state.locale = _answer_locale(request, request.state.locale)
    response = _thanks(request, anonymous=True, first=True)
    response.delete_cookie(ONSITE_SLOT_COOKIE, path=f"/feedback/open/{survey_id}")
    response.set_cookie(ONSITE_DONE_COOKIE, "1", max_age=ONSITE_DONE_SECONDS,
                        **{**cookie_options(), "path": f"/feedback/open/{survey_id}"})
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
    sent = request.query_params.get("sent", "")
    return page(request, "pages/feedback/detail.html", status_code=status_code, title=survey["title"], survey=survey,
                counts=listed[0] if listed else {"invited": 0, "responded": 0}, kinds=KIND_LABELS,
                audiences=AUDIENCE_LABELS, error=error, form=form or {}, is_open=surveys.is_open(survey),
                sent=int(sent) if sent.isdigit() and len(sent) < 7 else None, onsite_url=_onsite_url(survey_id),
                onsite_qr=qr_svg(_onsite_url(survey_id), scale=4,
                                 label=gettext_for(request.state.locale)("回答用リンクのQRコード")),
                onsite_answers=await onsite.onsite_answers(survey_id) if survey["anonymous"] else 0)


def _onsite_url(survey_id: int) -> str:
    return config().base_url + onsite.onsite_path(survey_id)


def qr_svg(url: str, *, scale: int, label: str) -> str:
    """An inline SVG QR code of `url` (segno; error correction M survives a smudged printout)."""
    import segno
    from markupsafe import escape

    svg = segno.make_qr(url, error="m").svg_inline(scale=scale, title=url, dark="#000", light="#fff")
    return svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)


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


@post("/coordinator/feedback/{survey_id:int}/send-now", guards=[COORDINATOR], include_in_schema=False)
async def survey_send_now(request: Request, survey_id: FromPath[int]) -> Response:
    """「今すぐ送る」: the participants of the survey's begun events get their links now (after a confirmation)."""
    form = await form_data(request)
    _ = gettext_for(request.state.locale)
    try:
        if not confirmed(form):
            preview = await sending.send_now_preview(survey_id, actor=actor_of(request))
            if not preview["recipients"]:
                return await _detail_page(request, survey_id, status_code=409, error=_(
                    "今すぐ送れる方はいません（開始したイベントの参加者には、すでに依頼が届いています）。"))
            events = "、".join(f"{timefmt.short(e['starts_at'], '%m/%d')} {e['title']}（{e['new']}{_('人')}）"
                              for e in preview["events"] if e["new"])
            return confirm_page(
                request, title=_("「%(t)s」を今すぐ送りますか") % {"t": preview["survey"]["title"]},
                action=f"/coordinator/feedback/{survey_id}/send-now", button=_("今すぐ送る"),
                back=f"/coordinator/feedback/{survey_id}", recipients=preview["recipients"], danger=False,
                consequences=[_("開始したイベントの参加者に、回答用のリンクをメールで送ります（終了後の自動送信を待ちません）。"),
                              _("対象: %(e)s") % {"e": events},
                              _("すでに依頼を受けた方には送りません。自動送信とリマインダーはこれまでどおりです。")])
        created = await sending.send_now(survey_id, actor=actor_of(request))
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _detail_page(request, survey_id, error=_(exc.message), status_code=exc.status)
    return Redirect(path=f"/coordinator/feedback/{survey_id}?sent={created}", status_code=303)


@get("/coordinator/feedback/{survey_id:int}/onsite", guards=[COORDINATOR], include_in_schema=False)
async def survey_onsite_print(request: Request, survey_id: FromPath[int]) -> Response:
    """A printable A4 sheet for the room: the survey's on-site QR code and link."""
    survey = await surveys.get_survey(survey_id)
    return page(request, "pages/feedback/onsite_print.html", title=survey["title"], survey=survey,
                onsite_url=_onsite_url(survey_id), onsite_qr=qr_svg(_onsite_url(survey_id), scale=10,
                                 label=gettext_for(request.state.locale)("回答用リンクのQRコード")),
                is_open=surveys.is_open(survey))


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


PAGE_ROUTES = [answer_link, answer_page, answer_submit, onsite_link, onsite_page, onsite_submit, survey_send_now,
               survey_onsite_print, survey_list, survey_create, series_overview, survey_detail, question_add,
               question_remove, survey_close, survey_results, survey_print, export_csv, export_xlsx]
