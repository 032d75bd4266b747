"""Seminar pages for everyone: the event list and page, registering, cancelling, one's own registrations.

Thin: parse the form, call one events.seminars service, render. Coordinator pages: pages_coordinator.py.
"""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from events import access, signals, timefmt
from events.config import config
from events.db import utcnow
from events.errors import DomainError
from events.seminars import allocation, draws, registration, schedule
from events.seminars.tables import LIVE_STATES
from events.timefmt import TOKYO
from lifedesign.areas.seminars.pages_common import (
    AUDIENCE_LABELS,
    KIND_LABELS,
    LABELS,
    REFUSALS,
    localized,
    safe_next,
)
from lifedesign.areas.seminars.pages_coordinator import COORDINATOR_ROUTES
from lifedesign.i18n import gettext_for
from lifedesign.rendering import (
    HOME_SECTIONS,
    confirm_page,
    confirmed,
    form_data,
    form_list,
    page,
    register_nav,
    render_fragment,
)
from lifedesign.security import LOGGED_IN, actor_of

register_nav("/coordinator/events", "イベント管理", ("coordinator",))
register_nav("/my/registrations", "申し込み状況", ("student", "facility_staff", "host_family"))


NOTICES = {
    "confirmed": "お申し込みが完了し、参加が確定しました。確認のメールをお送りしました。",
    "waitlisted": "定員に達しているため、キャンセル待ちとして受け付けました。席が空きしだい、メールでお知らせします。",
    "pending_consent": "お申し込みを受け付けました。18歳未満の方の参加には保護者の方の同意が必要なため、保護者の方にメールをお送りしました。同意をいただいた時点で参加が確定します。",
    "applied": "抽選のお申し込みを受け付けました。申込締切の後に抽選を行い、結果をメールでお知らせします。",
    "cancelled": "お申し込みを取り消しました。",
    "left": "キャンセル待ち（抽選のお申し込み）を取り下げました。",
    "offer_accepted": "お返事ありがとうございます。確認のメールをお送りしました。",
    "offer_declined": "辞退を承りました。お席は次の方にお譲りします。",
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
    """The same visibility rule as the API (events.access): drafts and private events for staff and members."""
    event = await schedule.get_event(event_id)
    await access.require_event_visible(event, actor_of(request))
    return event


# ---------------------------------------------------------------- public list and event page


@get("/events", include_in_schema=False)
async def event_list(request: Request, audience: FromQuery[str] = "", kind: FromQuery[str] = "",
                     month: FromQuery[str] = "", open_only: FromQuery[str] = "") -> Response:
    """The public list with filters (who it is for, kind, month, taking applications now); unknown values
    are ignored, never an error."""
    locale = request.state.locale
    audiences = LIST_AUDIENCES.get(audience)
    picked_month = None
    if len(month) == 7 and month[4] == "-" and month[:4].isdigit() and month[5:].isdigit() and 1 <= int(month[5:]) <= 12:
        picked_month = date(int(month[:4]), int(month[5:]), 1)
    kinds = kind if kind in KIND_LABELS else None
    events = [localized(e, locale) for e in await schedule.list_public_events(
        kind=kinds, audiences=audiences, month=picked_month, open_only=open_only == "1")]
    today = utcnow().astimezone(TOKYO).date()
    months = [(today.year + (today.month - 1 + i) // 12, (today.month - 1 + i) % 12 + 1) for i in range(6)]
    filters = {"audience": audience if audiences else "", "kind": kinds or "",
               "month": picked_month.strftime("%Y-%m") if picked_month else "", "open_only": open_only == "1"}
    return page(request, "pages/seminars/list.html", title=gettext_for(locale)("イベント一覧"), events=events,
                filters=filters, months=[f"{y}-{m:02d}" for y, m in months], list_audiences=LIST_AUDIENCE_LABELS,
                **LABELS)


@get("/seminars/{event_id:int}", include_in_schema=False)
async def seminar_redirect(event_id: FromPath[int]) -> Response:
    # Mails link to /seminars/<id>; the page lives at /events/<id>.
    return Redirect(path=f"/events/{event_id}", status_code=301)


async def _event_page(request: Request, event_id: int, *, error: str = "", field_errors: dict[str, str] | None = None,
                      answers: dict[str, Any] | None = None, status_code: int = 200, notice: str = "",
                      form_values: dict[str, str] | None = None) -> Response:
    locale = request.state.locale
    _ = gettext_for(locale)
    event = localized(await _visible_event(request, event_id), locale)
    own_page = signals.EVENT_PAGE.get(event["kind"])
    if own_page:  # an event kind with a page of its own (a home visit: visit wording, its own answers)
        return Redirect(path=own_page(event_id), status_code=303)
    person = request.state.person
    mine = await registration.my_registration(event_id, person["id"]) if person else None
    live = mine if mine and mine["status"] in LIVE_STATES else None
    refusal = await registration.eligibility(event, person["id"]) if person and not live else None
    if refusal:
        refusal = {**refusal, "message": refusal_message(DomainError(refusal["message"], code=refusal["code"]), event, _)}
    return page(
        request, "pages/seminars/event.html", status_code=status_code, title=event["display_title"], event=event,
        mine=mine, live=live, refusal=refusal, error=error, field_errors=field_errors or {}, answers=answers or {},
        form_values=form_values or {},
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
        result = await registration.register(
            event_id, request.state.person["id"], actor=actor_of(request), answers=answers,
            idempotency_key=form.get("idem") or None, ward_tie=form.get("ward_tie", ""),
            accommodation=form.get("accommodation", ""),
            companions=[line.strip() for line in form.get("companions", "").splitlines() if line.strip()])
    except DomainError as exc:
        field = str(exc.extra.get("field", ""))
        field_errors = {field.removeprefix("answers."): refusal_message(exc, event, _)} if field.startswith("answers.") else {}
        response = await _event_page(request, event_id, error=refusal_message(exc, event, _), field_errors=field_errors,
                                     answers=answers, status_code=exc.status, form_values=form)
        if exc.status == 503:
            response.headers["Retry-After"] = "2"
        return response
    return Redirect(path=f"/events/{event_id}?notice={result['status']}", status_code=303)


@post("/registrations/{registration_id:int}/cancel", guards=[LOGGED_IN], include_in_schema=False)
async def cancel(request: Request, registration_id: FromPath[int]) -> Response:
    """Cancelling a place gives the seat away: a confirmation step first (the same form, confirmed=1)."""
    actor = actor_of(request)
    found = await registration.get_registration(registration_id, actor=actor)
    form = await form_data(request)
    if confirmed(form):
        await registration.cancel_registration(registration_id, actor=actor, reason=form.get("reason", ""))
        target = safe_next(form.get("next", ""), f"/events/{found['event_id']}?notice=cancelled")
        return Redirect(path=target, status_code=303)
    return await _confirm_leaving(request, found, form, action="cancel")


@post("/registrations/{registration_id:int}/leave-waitlist", guards=[LOGGED_IN], include_in_schema=False)
async def leave_waitlist(request: Request, registration_id: FromPath[int]) -> Response:
    actor = actor_of(request)
    found = await registration.get_registration(registration_id, actor=actor)
    form = await form_data(request)
    if confirmed(form):
        await registration.leave_waitlist(registration_id, actor=actor)
        target = safe_next(form.get("next", ""), f"/events/{found['event_id']}?notice=left")
        return Redirect(path=target, status_code=303)
    return await _confirm_leaving(request, found, form, action="leave-waitlist")


async def _confirm_leaving(request: Request, found: dict[str, Any], form: dict[str, str], *, action: str) -> Response:
    locale = request.state.locale
    _ = gettext_for(locale)
    event = localized(await schedule.get_event(found["event_id"]), locale)
    own_page = signals.EVENT_PAGE.get(event["kind"])
    if own_page:  # a home visit is declined on its own page, with its own confirmation step
        return Redirect(path=own_page(found["event_id"]), status_code=303)
    what = {"t": event["display_title"], "when": timefmt.event_when(event, locale)}
    own = found["person_id"] == request.state.person["id"]
    if action == "cancel":
        title = _("「%(t)s」のお申し込みを取り消しますか") % what
        lines = [_("%(when)s の「%(t)s」のお申し込みを取り消します。") % what,
                 _("お席はキャンセル待ちの方にお譲りします。もう一度申し込むと、空きがない場合はキャンセル待ちになります。")]
        button = _("申し込みを取り消す")
    else:
        title = _("「%(t)s」のキャンセル待ちをやめますか") % what if found["status"] == "waitlisted" else \
            _("「%(t)s」の抽選の申し込みを取り下げますか") % what
        lines = [_("今の順番は失われます。もう一度申し込むと、最後尾からになります。") if found["status"] == "waitlisted"
                 else _("抽選の対象から外れます。締切までなら、もう一度申し込めます。")]
        button = _("キャンセル待ちをやめる") if found["status"] == "waitlisted" else _("抽選の申し込みを取り下げる")
    lines.append(_("確認のメールをお送りします。") if own else _("ご本人に確認のメールをお送りします。"))
    back = safe_next(form.get("next", "").split("?")[0], f"/events/{found['event_id']}")
    return confirm_page(request, title=title, action=f"/registrations/{found['id']}/{action}", button=button,
                        back=back, consequences=lines, fields={"next": form.get("next", "")})


@post("/registrations/{registration_id:int}/offer", guards=[LOGGED_IN], include_in_schema=False)
async def answer_offer(request: Request, registration_id: FromPath[int]) -> Response:
    """The answer to a seat offered from the waiting list (declining needs the confirmation box ticked)."""
    actor = actor_of(request)
    found = await registration.get_registration(registration_id, actor=actor)
    form = await form_data(request)
    decision = form.get("decision", "")
    if decision not in ("accept", "decline") or (decision == "decline" and form.get("confirm") != "1"):
        _ = gettext_for(request.state.locale)
        return await _event_page(request, found["event_id"], status_code=422,
                                 error=_("「辞退すると、お席は次の方に移ります」の確認にチェックを入れてください。")
                                 if decision == "decline" else _("「参加する」または「辞退する」を選んでください。"))
    try:
        await allocation.answer_offer(registration_id, actor=actor, accept=decision == "accept")
    except DomainError as exc:
        return await _event_page(request, found["event_id"], status_code=exc.status,
                                 error=gettext_for(request.state.locale)(exc.message))
    notice = "offer_accepted" if decision == "accept" else "offer_declined"
    return Redirect(path=f"/events/{found['event_id']}?notice={notice}", status_code=303)


@get("/events/{event_id:int}/lottery", include_in_schema=False)
async def lottery_page(request: Request, event_id: FromPath[int], ticket: FromQuery[str] = "") -> Response:
    """The public record of a draw: anyone can see the commitment, the seed, every ticket and the order."""
    locale = request.state.locale
    event = localized(await _visible_event(request, event_id), locale)
    record = await draws.public_record(event_id)
    verified = (await draws.verify_draw(event_id))["ok"] if record["seed"] else None
    mine = ""
    person = request.state.person
    if person:
        own = await registration.my_registration(event_id, person["id"])
        mine = own["lottery_ticket"] if own else ""
    ticket = ticket.strip().upper()[:16]
    place = {t: ("won", i + 1) for i, t in enumerate(record["winners"])}
    place |= {t: ("waiting", i + 1) for i, t in enumerate(record["waitlist"])}
    rules = allocation.clean_rules(event.get("priority_rules"))
    groups = {int(e["priority"]): allocation.priority_label(allocation.reason_of_priority(rules, e["priority"]), locale)
              for e in record["entries"]}
    return page(request, "pages/seminars/lottery.html", title=gettext_for(locale)("抽選の公開記録"), event=event,
                record=record, verified=verified, mine=mine, ticket=ticket, place=place, groups=groups,
                base_url=config().base_url)


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
            if r["status"] in LIVE_STATES and r["ends_at"] > now]
    for row in rows:
        row["when"] = timefmt.event_when(row, request.state.locale)
    return render_fragment(request, "pages/seminars/_home.html", rows=rows, **LABELS)


HOME_SECTIONS.append(home_section)


# The public list's "who is it for" filter: an audience choice includes the events open to it.
LIST_AUDIENCES = {
    "high_school": ("high_school", "students", "anyone"),
    "university": ("university", "students", "anyone"),
    "facility_staff": ("facility_staff", "anyone"),
}
LIST_AUDIENCE_LABELS = {"high_school": "高校生", "university": "大学生", "facility_staff": "保育・教育施設の職員"}


PUBLIC_ROUTES = [event_list, seminar_redirect, event_page, register, cancel, leave_waitlist, answer_offer, lottery_page,
                 my_registrations]
PAGE_ROUTES = [*PUBLIC_ROUTES, *COORDINATOR_ROUTES]
