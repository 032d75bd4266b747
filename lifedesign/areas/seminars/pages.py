"""Seminar pages for everyone: the event list and page, registering, cancelling, one's own registrations,
and the guardian's consent page (no account; the token in the link is the key).

Thin: parse the form, call one events.seminars service, render. Coordinator pages: pages_coordinator.py.
"""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from events import audit, timefmt
from events.db import utcnow
from events.errors import DomainError, NotFound
from events.seminars import consent, registration, schedule
from events.seminars.pages_support import eligibility
from lifedesign.areas.seminars.pages_common import (
    AUDIENCE_LABELS,
    LABELS,
    REFUSALS,
    is_staff,
    localized,
    safe_next,
)
from lifedesign.areas.seminars.pages_coordinator import COORDINATOR_ROUTES
from lifedesign.i18n import gettext_for
from lifedesign.rendering import HOME_SECTIONS, form_data, form_list, page, register_nav, render_fragment
from lifedesign.security import LOGGED_IN, client_of

register_nav("/coordinator/events", "イベント管理", ("coordinator",))
register_nav("/my/registrations", "申し込み状況", ("student", "facility_staff", "host_family"))

LIVE = ("confirmed", "waitlisted", "pending_consent", "applied", "attended", "no_show")

NOTICES = {
    "confirmed": "お申し込みが完了し、参加が確定しました。確認のメールをお送りしました。",
    "waitlisted": "定員に達しているため、キャンセル待ちとして受け付けました。席が空きしだい、メールでお知らせします。",
    "pending_consent": "お申し込みを受け付けました。18歳未満の方の参加には保護者の方の同意が必要なため、保護者の方にメールをお送りしました。同意をいただいた時点で参加が確定します。",
    "applied": "抽選のお申し込みを受け付けました。申込締切の後に抽選を行い、結果をメールでお知らせします。",
    "cancelled": "お申し込みを取り消しました。",
    "left": "キャンセル待ち（抽選のお申し込み）を取り下げました。",
}


def refusal_message(exc: DomainError, event: dict[str, Any] | None, _: Any) -> str:
    if exc.code == "audience_mismatch" and event:
        return _("このイベントは%(audience)sの方が対象です。対象の方のみお申し込みいただけます。") % {
            "audience": _(AUDIENCE_LABELS.get(event["audience"], event["audience"]))}
    if exc.code in ("answer_required", "invalid_answer") and event:
        question_id = str(exc.extra.get("field", "")).removeprefix("answers.")
        label = next((q["label"] for q in event["questions"] if str(q["id"]) == question_id), "")
        if label:
            template = "「%(label)s」にご回答ください。" if exc.code == "answer_required" else "「%(label)s」の回答をご確認ください。"
            return _(template) % {"label": label}
    return _(REFUSALS.get(exc.code, exc.message))


async def _visible_event(request: Request, event_id: int) -> dict[str, Any]:
    """Drafts and private events are shown only to staff and to people registered for them."""
    event = await schedule.get_event(event_id)
    if event["status"] != "draft" and event["visibility"] == "public" or is_staff(request):
        return event
    person = request.state.person
    if person and event["status"] != "draft" and await registration.my_registration(event_id, person["id"]):
        return event
    raise NotFound("そのイベントは見つかりません。", code="event_not_found")


# ---------------------------------------------------------------- public list and event page


@get("/events", include_in_schema=False)
async def event_list(request: Request) -> Response:
    locale = request.state.locale
    events = [localized(e, locale) for e in await schedule.list_public_events()]
    return page(request, "pages/seminars/list.html", title=gettext_for(locale)("イベント一覧"), events=events, **LABELS)


@get("/seminars/{event_id:int}", include_in_schema=False)
async def seminar_redirect(event_id: FromPath[int]) -> Response:
    # Mails link to /seminars/<id>; the page lives at /events/<id>.
    return Redirect(path=f"/events/{event_id}", status_code=301)


async def _event_page(request: Request, event_id: int, *, error: str = "", field_errors: dict[str, str] | None = None,
                      answers: dict[str, Any] | None = None, status_code: int = 200, notice: str = "") -> Response:
    locale = request.state.locale
    _ = gettext_for(locale)
    event = localized(await _visible_event(request, event_id), locale)
    person = request.state.person
    mine = await registration.my_registration(event_id, person["id"]) if person else None
    live = mine if mine and mine["status"] in LIVE else None
    refusal = await eligibility(event, person["id"]) if person and not live else None
    if refusal:
        refusal = {**refusal, "message": refusal_message(DomainError(refusal["message"], code=refusal["code"]), event, _)}
    return page(
        request, "pages/seminars/event.html", status_code=status_code, title=event["display_title"], event=event,
        mine=mine, live=live, refusal=refusal, error=error, field_errors=field_errors or {}, answers=answers or {},
        notice=_(NOTICES[notice]) if notice in NOTICES else "", idem=secrets.token_urlsafe(16),
        cutoff_passed=bool(event["starts_at"] and (event["starts_at"] - utcnow()).total_seconds()
                           < event["cancel_cutoff_hours"] * 3600),
        **LABELS,
    )


@get("/events/{event_id:int}", include_in_schema=False)
async def event_page(request: Request, event_id: FromPath[int], notice: FromQuery[str] = "") -> Response:
    return await _event_page(request, event_id, notice=notice)


async def _answers_from_form(request: Request, questions: list[dict[str, Any]]) -> dict[str, Any]:
    form = await form_data(request)
    answers: dict[str, Any] = {}
    for question in questions:
        key = f"q{question['id']}"
        if question["kind"] == "multi":
            chosen = [v for v in await form_list(request, key) if v]
            if chosen:
                answers[str(question["id"])] = chosen
        elif question["kind"] == "checkbox":
            if form.get(key):
                answers[str(question["id"])] = True
        elif form.get(key, ""):
            answers[str(question["id"])] = form[key]
    return answers


@post("/events/{event_id:int}/register", guards=[LOGGED_IN], include_in_schema=False)
async def register(request: Request, event_id: FromPath[int]) -> Response:
    _ = gettext_for(request.state.locale)
    event = await _visible_event(request, event_id)
    form = await form_data(request)
    answers = await _answers_from_form(request, event["questions"])
    try:
        # the key comes from the page: a double click or a resent form returns the first result
        result = await registration.register(event_id, request.state.person["id"], answers=answers,
                                             idempotency_key=form.get("idem") or None)
    except DomainError as exc:
        field = str(exc.extra.get("field", ""))
        field_errors = {field.removeprefix("answers."): refusal_message(exc, event, _)} if field.startswith("answers.") else {}
        response = await _event_page(request, event_id, error=refusal_message(exc, event, _), field_errors=field_errors,
                                     answers=answers, status_code=exc.status)
        if exc.status == 503:
            response.headers["Retry-After"] = "2"
        return response
    return Redirect(path=f"/events/{event_id}?notice={result['status']}", status_code=303)


async def _own_or_staff(request: Request, registration_id: int) -> tuple[dict[str, Any], bool]:
    found = await registration.get_registration(registration_id)
    own = found["person_id"] == request.state.person["id"]
    if not own and not is_staff(request):
        raise NotFound("その申込は見つかりません。", code="registration_not_found")
    return found, own


@post("/registrations/{registration_id:int}/cancel", guards=[LOGGED_IN], include_in_schema=False)
async def cancel(request: Request, registration_id: FromPath[int]) -> Response:
    found, own = await _own_or_staff(request, registration_id)
    form = await form_data(request)
    me = request.state.person["id"]
    await registration.cancel_registration(registration_id, by=me, as_coordinator=not own, reason=form.get("reason", ""))
    if not own:
        await audit.record("staff_cancelled_registration", actor_id=me, subject_type="registration",
                           subject_id=registration_id, client=client_of(request))
    target = safe_next(form.get("next", ""), f"/events/{found['event_id']}?notice=cancelled")
    return Redirect(path=target, status_code=303)


@post("/registrations/{registration_id:int}/leave-waitlist", guards=[LOGGED_IN], include_in_schema=False)
async def leave_waitlist(request: Request, registration_id: FromPath[int]) -> Response:
    found, own = await _own_or_staff(request, registration_id)
    form = await form_data(request)
    await registration.leave_waitlist(registration_id, by=request.state.person["id"], as_coordinator=not own)
    target = safe_next(form.get("next", ""), f"/events/{found['event_id']}?notice=left")
    return Redirect(path=target, status_code=303)


@get("/my/registrations", guards=[LOGGED_IN], include_in_schema=False)
async def my_registrations(request: Request, notice: FromQuery[str] = "") -> Response:
    locale = request.state.locale
    _ = gettext_for(locale)
    now = utcnow()
    rows = await registration.registrations_of_person(request.state.person["id"])
    for row in rows:
        row["when"] = timefmt.event_when(row, locale)
        row["upcoming"] = row["ends_at"] > now
    upcoming = [r for r in rows if r["upcoming"]]
    past = [r for r in rows if not r["upcoming"]][::-1]
    return page(request, "pages/seminars/my.html", title=_("申し込み状況"), upcoming=upcoming, past=past,
                notice=_(NOTICES[notice]) if notice in NOTICES else "", **LABELS)


async def home_section(request: Request) -> str:
    """The student's home page: upcoming registrations."""
    person = request.state.person
    if not person or "student" not in person["roles"]:
        return ""
    now = utcnow()
    rows = [r for r in await registration.registrations_of_person(person["id"])
            if r["status"] in LIVE and r["ends_at"] > now]
    for row in rows:
        row["when"] = timefmt.event_when(row, request.state.locale)
    return render_fragment(request, "pages/seminars/_home.html", rows=rows, **LABELS)


HOME_SECTIONS.append(home_section)


# ---------------------------------------------------------------- guardian consent


def _consent_message(request: Request, heading: str, lines: list[str], status_code: int) -> Response:
    _ = gettext_for(request.state.locale)
    return page(request, "pages/message.html", status_code=status_code, title=_(heading), heading=_(heading),
                lines=[_(line) for line in lines], link=None)


CONSENT_STATES = {
    "given": ("ご回答ありがとうございます", ["この参加については、既に同意をいただいています。"]),
    "refused": ("ご回答ありがとうございます", ["この参加については、既に「同意しない」とご回答いただいています。"]),
    "expired": ("回答の期限が過ぎました", ["回答の期限を過ぎたため、お申込みは取り消されました。",
                                   "ご不明な点は、金沢区こども家庭支援課までお問い合わせください。"]),
    "withdrawn": ("お申込みは取り消されています", ["生徒さんのお申込みが取り消されたため、ご回答の必要はありません。"]),
}


@get("/consent/{token:str}", include_in_schema=False)
async def consent_page(request: Request, token: FromPath[str]) -> Response:
    request.state.personal = True
    try:
        found = await consent.consent_request_by_token(token)
    except NotFound:
        return _consent_message(request, "このリンクは無効です", [
            "メールに記載されたリンクをもう一度ご確認ください。",
            "ご不明な点は、金沢区こども家庭支援課までお問い合わせください。"], 404)
    if found["state"] != "pending":
        heading, lines = CONSENT_STATES.get(found["state"], CONSENT_STATES["withdrawn"])
        return _consent_message(request, heading, lines, 410 if found["state"] == "expired" else 200)
    return page(request, "pages/seminars/consent.html", title=gettext_for(request.state.locale)("参加への同意のお願い"),
                consent=found, token=token)


@post("/consent/{token:str}", include_in_schema=False)
async def consent_decide(request: Request, token: FromPath[str]) -> Response:
    request.state.personal = True
    form = await form_data(request)
    decision = form.get("decision", "")
    if decision not in ("give", "refuse"):
        return await consent_page(request, token)
    try:
        await consent.decide_consent(token, decision == "give", client_of(request))
    except NotFound:
        return await consent_page(request, token)
    except DomainError as exc:
        if exc.code == "consent_expired":
            return _consent_message(request, *CONSENT_STATES["expired"], 410)
        if exc.code == "consent_already_decided":
            state = exc.extra.get("decision", "given")
            heading, lines = CONSENT_STATES.get(state, CONSENT_STATES["given"])
            return _consent_message(request, heading, lines, 409)
        raise
    if decision == "give":
        return _consent_message(request, "同意いただき、ありがとうございました", [
            "生徒さんの参加が確定しました。生徒さんと保護者の方に、確認のメールをお送りしました。",
            "当日お会いできることを楽しみにしております。"], 200)
    return _consent_message(request, "ご回答ありがとうございました", [
        "「同意しない」とのご回答を承りました。生徒さんのお申込みは取り消されました。",
        "ご不明な点は、金沢区こども家庭支援課までお問い合わせください。"], 200)


PUBLIC_ROUTES = [event_list, seminar_redirect, event_page, register, cancel, leave_waitlist, my_registrations,
                 consent_page, consent_decide]
PAGE_ROUTES = [*PUBLIC_ROUTES, *COORDINATOR_ROUTES]
