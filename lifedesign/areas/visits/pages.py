"""HTML pages of home visits: students ask (for the slots families offered, or any of them), families describe
their household, offer slots and answer once per slot, the guardian of a minor follows the visit on a page of
their own (no account), both sides see a state true to both answers, and the coordinator vets households, runs
the matching, reviews, confirms and — with a reason — calls a visit off.

State never changes on GET; every form carries the CSRF token; a failed form is shown again with the message and
what was typed. Every action someone cannot take back (or that mails other people) goes through one
confirmation step (`rendering.confirm_page`, no JavaScript) saying what happens and who gets mail; where people
are told why, the reason is required.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from events import timefmt
from events.access import is_staff
from events.core.tables import WARD_AREAS
from events.db import utcnow
from events.errors import DomainError, Invalid, NotFound
from events.timefmt import TOKYO
from events.visits import confirmations, guardians, households, proposals, requests, rounds
from events.visits.tables import HOUSEHOLD_TAGS, LANGUAGES
from lifedesign.i18n import gettext_for
from lifedesign.rendering import confirm_page, confirmed, form_data, form_list, page, register_nav
from lifedesign.security import COORDINATOR, actor_of, client_of, requires

STUDENT = requires("student")
FAMILY = requires("host_family")
STUDENT_OR_FAMILY = requires("student", "host_family")

register_nav("/visits", "家庭訪問", ("student",))
register_nav("/visits/my", "訪問予定", ("student", "host_family"))
register_nav("/visits/household", "家庭のプロフィール", ("host_family",))
register_nav("/visits/slots", "訪問の受け入れ枠", ("host_family",))
register_nav("/visits/admin", "家庭訪問の管理", ("coordinator", "admin"))

NOTICES = {
    "saved": "保存しました。",
    "request_saved": "申込を受け付けました。18歳未満の方は、保護者の方に同意のお願いをメールでお送りしました。",
    "withdrawn": "取り下げました。",
    "slot_added": "受け入れ枠を追加しました。",
    "answered": "回答を受け付けました。",
    "accepted": "「参加する」と回答しました。相手の回答がそろうと訪問が確定し、メールでお知らせします。",
    "declined": "辞退を受け付けました。関係する方と区の担当者にお知らせしました。",
    "round_created": "訪問回を作成しました。",
    "ran": "マッチングを実行しました。内容を確認してください。",
    "confirmed": "組み合わせを確定し、学生とご家庭に確認のメールを送りました。",
    "visit_cancelled": "訪問を取りやめ、関係する方に理由をお知らせしました。",
    "rule_saved": "組み合わせの設定を保存しました。もう一度マッチングを実行してください。",
    "vetted": "面談の記録を保存しました。",
}
STATUS_LABELS = {
    "draft": "準備中", "open": "受付中", "closed": "締切", "completed": "終了",
    "offered": "募集中", "withdrawn": "取り下げ", "active": "申込中",
    "proposed": "提案", "confirmed_by_coordinator": "回答待ち", "accepted": "双方が参加と回答", "declined": "辞退",
    "cancelled": "取りやめ", "superseded": "差し替え", "on_hold": "安全のため保留", "revoked": "同意の取り消し",
    "pending": "回答待ち", "given": "同意済み", "refused": "同意なし", "expired": "期限切れ", "not_needed": "不要",
    "none": "未依頼",
}
PROPOSAL_LABELS = {"draft": "確定前（確認してください）", "confirmed": "確定済み", "superseded": "新しい提案に差し替え"}
RESPONSE_LABELS = {"pending": "まだ回答していません", "accepted": "参加する", "declined": "辞退する"}
FAMILY_RESPONSE_LABELS = {"pending": "まだ回答していません", "accepted": "受け入れる", "declined": "辞退する"}
# What a visit's state means, per side (events.visits.states), in plain words.
STATE_LABELS = {
    "student": {
        "answer_needed": "あなたの回答をお待ちしています",
        "waiting_other": "あなたは「参加する」と回答済みです。ご家庭の回答を待っています",
        "waiting_group": "あなたとご家庭が参加と回答済みです。一緒に訪問する学生の確定を待っています",
        "confirmed": "訪問が確定しました",
        "declined_by_you": "あなたが辞退しました",
        "declined_by_other": "ご家庭のご都合により取りやめになりました",
        "cancelled": "取りやめになりました",
        "on_hold": "安全のため保留中です",
    },
    "family": {
        "answer_needed": "ご家庭の回答をお待ちしています",
        "waiting_other": "受け入れると回答済みです。学生の回答を待っています",
        "waiting_group": "双方が参加と回答済みです。一緒に訪問する学生の確定を待っています",
        "confirmed": "訪問が確定しました",
        "declined_by_you": "ご家庭が辞退しました",
        "declined_by_other": "学生が辞退しました",
        "cancelled": "取りやめになりました",
        "on_hold": "安全のため保留中です",
    },
    "guardian": {
        "offered": "組み合わせが決まりました。ご本人と受け入れ家庭の回答を待っています",
        "waiting_group": "ご本人と受け入れ家庭が参加と回答済みです。一緒に訪問する18歳以上の学生の確定を待っています",
        "confirmed": "訪問が確定しました",
        "declined_by_student": "ご本人が辞退しました",
        "declined_by_family": "受け入れ家庭のご都合により取りやめになりました",
        "cancelled": "区の担当者が取りやめました",
        "on_hold": "安全のため保留中です（区の担当者が調整し、改めてご連絡します）",
    },
}
SCHOOL_LEVELS = {"high_school": "高校", "university": "大学"}


def _notice(request: Request, code: str) -> str:
    return gettext_for(request.state.locale)(NOTICES[code]) if code in NOTICES else ""


def _common(request: Request) -> dict[str, Any]:
    locale = request.state.locale
    return {"tags": HOUSEHOLD_TAGS, "districts": WARD_AREAS, "languages": LANGUAGES, "labels": STATUS_LABELS,
            "school_levels": SCHOOL_LEVELS, "state_labels": STATE_LABELS, "response_labels": RESPONSE_LABELS,
            "family_response_labels": FAMILY_RESPONSE_LABELS, "proposal_labels": PROPOSAL_LABELS,
            "span": lambda start, end: timefmt.span(start, end, locale),
            "hours": lambda start, end: timefmt.short(start, "%H:%M") + ("–" if locale == "en" else "〜")
            + timefmt.short(end, "%H:%M"),
            "day": lambda d: "" if d is None else timefmt.day_ja(d) if locale == "ja" else f"{d:%a %d %b %Y}"}


def _tokyo(day: str, clock: str, field: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), tzinfo=TOKYO)
    except ValueError:
        raise Invalid("日付と時刻を正しく入力してください。", code="invalid_datetime", field=field) from None


def _page(request: Request, template: str, *, title: str, **context: Any) -> Response:
    return page(request, template, title=gettext_for(request.state.locale)(title), **context)


def _error(request: Request, exc: DomainError) -> str:
    return gettext_for(request.state.locale)(exc.message)


def _span(request: Request, start: datetime, end: datetime) -> str:
    return timefmt.span(start, end, request.state.locale)


# ============================================================================ students


async def _student_page(request: Request, *, notice: str = "", error: str = "", status: int = 200) -> Response:
    person = request.state.person
    open_rounds = [r for r in await rounds.list_rounds(open_only=True) if rounds.accepting_requests(r)]
    mine = await requests.requests_of_student(person["id"])
    for row in mine:
        row["window_lines"] = requests.describe_windows(requests.windows_of(row), request.state.locale)
    return _page(request, "pages/visits/student.html", status_code=status, title="家庭訪問", rounds=open_rounds,
                 requests=mine, notice=notice, error=error, **_common(request))


@get("/visits", guards=[requires("student", "host_family", "coordinator")], include_in_schema=False)
async def visits_home(request: Request, notice: FromQuery[str] = "") -> Response:
    roles = set(request.state.person["roles"])
    if "student" not in roles:
        return Redirect(path="/visits/admin" if is_staff(roles) else "/visits/slots", status_code=303)
    return await _student_page(request, notice=_notice(request, notice))


def _blank_form() -> dict[str, Any]:
    return {"slots": [], "any_time": False, "windows": [], "districts": [], "wanted": [], "avoided": [], "note": ""}


async def _request_form(request: Request, round_id: int, *, form: dict[str, Any] | None = None, error: str = "",
                        status: int = 200) -> Response:
    round_row = await rounds.get_round(round_id)
    choices = await rounds.slots_to_choose(round_id)
    by_day: dict[date, list[dict[str, Any]]] = {}
    for slot in choices:
        by_day.setdefault(timefmt.tokyo_date(slot["starts_at"]), []).append(slot)
    return _page(request, "pages/visits/request_form.html", status_code=status, title="家庭訪問の申込",
                 round=round_row, form=form or _blank_form(), error=error, accepting=rounds.accepting_requests(round_row),
                 slot_days=[(timefmt.day_ja(d) if request.state.locale == "ja" else f"{d:%a %d %b %Y}", rows)
                            for d, rows in sorted(by_day.items())], **_common(request))


@get("/visits/rounds/{round_id:int}/request", guards=[STUDENT], include_in_schema=False)
async def request_form(request: Request, round_id: FromPath[int]) -> Response:
    """The form, filled in with the student's current request in this round, if any: the windows that are
    exactly an offered slot show as that slot, the rest as free dates."""
    current = next((r for r in await requests.requests_of_student(request.state.person["id"])
                    if r["round"] == round_id and r["status"] == "active"), None)
    form = None
    if current:
        offered = {(s["starts_at"], s["ends_at"]): s["id"] for s in await rounds.slots_to_choose(round_id)}
        chosen, free = [], []
        for start, end in requests.windows_of(current):
            slot_ids = [sid for (s, e), sid in offered.items() if s == start and e == end]
            if slot_ids:
                chosen += slot_ids
                continue
            s, e = start.astimezone(TOKYO), end.astimezone(TOKYO)
            if s.date() == e.date():  # the form has one day per row; a several-day window (API) is not shown
                free.append((s.date().isoformat(), f"{s:%H:%M}", f"{e:%H:%M}"))
        form = {"slots": [str(i) for i in chosen], "any_time": current["any_time"], "windows": free,
                "districts": current["districts"], "wanted": current["wanted_tags"],
                "avoided": current["avoided_tags"], "note": current["note"]}
    return await _request_form(request, round_id, form=form)


@post("/visits/rounds/{round_id:int}/request", guards=[STUDENT], include_in_schema=False)
async def request_submit(request: Request, round_id: FromPath[int]) -> Response:
    form = await form_data(request)
    days, starts, ends = (await form_list(request, "window_date"), await form_list(request, "window_start"),
                          await form_list(request, "window_end"))
    typed = {"slots": await form_list(request, "slot"), "any_time": form.get("any_time") == "1",
             "windows": list(zip(days, starts, ends, strict=False)), "districts": await form_list(request, "district"),
             "wanted": await form_list(request, "wanted"), "avoided": await form_list(request, "avoided"),
             "note": form.get("note", "")}
    try:
        offered = {str(s["id"]): s for s in await rounds.slots_to_choose(round_id)}
        unknown = [s for s in typed["slots"] if s not in offered]
        if unknown:
            raise Invalid("選んだ枠の一部は、もう受け付けていません。もう一度選んでください。", code="slot_not_offered",
                          field="slots")
        windows = [(offered[s]["starts_at"], offered[s]["ends_at"]) for s in typed["slots"]]
        windows += [(_tokyo(d, s, "windows"), _tokyo(d, e, "windows")) for d, s, e in typed["windows"] if d.strip()]
        await requests.submit_request(request.state.person["id"], round_id, requests.RequestInput(
            windows=windows, districts=typed["districts"], wanted_tags=typed["wanted"],
            avoided_tags=typed["avoided"], note=typed["note"], any_time=typed["any_time"]))
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _request_form(request, round_id, form=typed, error=_error(request, exc), status=exc.status)
    return Redirect(path="/visits?notice=request_saved", status_code=303)


@post("/visits/requests/{request_id:int}/withdraw", guards=[STUDENT], include_in_schema=False)
async def request_withdraw(request: Request, request_id: FromPath[int]) -> Response:
    form = await form_data(request)
    actor = actor_of(request)
    found = await requests.get_request(request_id, actor=actor)
    if confirmed(form):
        try:
            await requests.withdraw_request(request.state.person["id"], request_id)
        except DomainError as exc:
            if exc.status == 404:
                raise
            return await _student_page(request, error=_error(request, exc), status=exc.status)
        return Redirect(path="/visits?notice=withdrawn", status_code=303)
    _ = gettext_for(request.state.locale)
    lines = [_("「%(round)s」への申込を取り下げます。組み合わせの対象から外れます。") % {"round": found["round_name"]}]
    if found["consent"] == "pending" and found["is_minor"]:
        lines.append(_("保護者の方への同意のお願い（まだ回答のないもの）は取り消されます。"))
    lines.append(_("申込の受付期間中であれば、もう一度申し込めます。"))
    return confirm_page(request, title=_("家庭訪問の申込を取り下げますか"), action=f"/visits/requests/{request_id}/withdraw",
                        consequences=lines, button=_("申込を取り下げる"), back="/visits", recipients=0)


# ============================================================================ host families


async def _household_page(request: Request, *, notice: str = "", error: str = "", form: dict | None = None,
                          status: int = 200) -> Response:
    person_id = request.state.person["id"]
    household = await households.household_of(person_id)
    return _page(request, "pages/visits/household.html", status_code=status, title="家庭のプロフィール",
                 household=household, form=form or household or {}, address=await households.own_address(person_id),
                 notice=notice, error=error, **_common(request))


@get("/visits/household", guards=[FAMILY], include_in_schema=False)
async def household_form(request: Request, notice: FromQuery[str] = "") -> Response:
    return await _household_page(request, notice=_notice(request, notice))


@post("/visits/household", guards=[FAMILY], include_in_schema=False)
async def household_save(request: Request) -> Response:
    form = await form_data(request)
    typed: dict[str, Any] = {**form, "tags": await form_list(request, "tags"),
                             "languages": await form_list(request, "languages")}
    try:
        ages_text = form.get("children_ages", "").replace("、", ",").replace(" ", ",")
        try:
            ages = [int(a) for a in ages_text.split(",") if a.strip()]
        except ValueError:
            raise Invalid("お子さんの年齢は数字をカンマで区切って入力してください（例：3,6）。",
                          code="invalid_children_ages") from None
        typed["children_ages"] = ages
        await households.save_household(request.state.person["id"], households.HouseholdProfile(
            display_name=form.get("display_name", ""), district=form.get("district", ""), children_ages=ages,
            tags=typed["tags"], pets=form.get("pets", ""), allergy_notes=form.get("allergy_notes", ""),
            languages=typed["languages"] or ["ja"], introduction=form.get("introduction", "")))
    except DomainError as exc:
        typed.setdefault("children_ages", [])
        return await _household_page(request, error=_error(request, exc), form=typed, status=exc.status)
    return Redirect(path="/visits/household?notice=saved", status_code=303)


@post("/visits/household/address", guards=[FAMILY], include_in_schema=False)
async def household_address_save(request: Request) -> Response:
    form = await form_data(request)
    try:
        await households.save_address(request.state.person["id"], households.Address(
            postal_code=form.get("postal_code", ""), address=form.get("address", ""),
            directions=form.get("directions", ""), phone=form.get("phone", "")))
    except DomainError as exc:
        return await _household_page(request, error=_error(request, exc), status=exc.status)
    return Redirect(path="/visits/household?notice=saved", status_code=303)


async def _slots_page(request: Request, *, notice: str = "", error: str = "", status: int = 200) -> Response:
    person_id = request.state.person["id"]
    return _page(request, "pages/visits/slots.html", status_code=status, title="訪問の受け入れ枠",
                 household=await households.household_of(person_id),
                 rounds=await rounds.list_rounds(open_only=True), slots=await rounds.slots_of_person(person_id),
                 notice=notice, error=error, **_common(request))


@get("/visits/slots", guards=[FAMILY], include_in_schema=False)
async def slots(request: Request, notice: FromQuery[str] = "") -> Response:
    return await _slots_page(request, notice=_notice(request, notice))


@post("/visits/slots", guards=[FAMILY], include_in_schema=False)
async def slot_add(request: Request) -> Response:
    form = await form_data(request)
    try:
        round_id = int(form.get("round", "0") or 0)
        capacity = int(form.get("capacity", "2") or 2)
        await rounds.offer_slot(
            request.state.person["id"], round_id, starts_at=_tokyo(form.get("date", ""), form.get("start", ""), "date"),
            ends_at=_tokyo(form.get("date", ""), form.get("end", ""), "date"), capacity=capacity)
    except ValueError:
        return await _slots_page(request, error=gettext_for(request.state.locale)("入力内容が正しくありません。"),
                                 status=422)
    except DomainError as exc:
        return await _slots_page(request, error=_error(request, exc), status=exc.status)
    return Redirect(path="/visits/slots?notice=slot_added", status_code=303)


@post("/visits/slots/{slot_id:int}/withdraw", guards=[FAMILY], include_in_schema=False)
async def slot_withdraw(request: Request, slot_id: FromPath[int]) -> Response:
    form = await form_data(request)
    mine = next((s for s in await rounds.slots_of_person(request.state.person["id"]) if s["id"] == slot_id), None)
    if mine is None:
        raise NotFound("その枠は見つかりません。", code="slot_not_found")
    if confirmed(form):
        try:
            await rounds.withdraw_slot(request.state.person["id"], slot_id)
        except DomainError as exc:
            if exc.status == 404:
                raise
            return await _slots_page(request, error=_error(request, exc), status=exc.status)
        return Redirect(path="/visits/slots?notice=withdrawn", status_code=303)
    _ = gettext_for(request.state.locale)
    when = _span(request, mine["starts_at"], mine["ends_at"])
    return confirm_page(request, title=_("この受け入れ枠を取り下げますか"), action=f"/visits/slots/{slot_id}/withdraw",
                        button=_("枠を取り下げる"), back="/visits/slots", recipients=0,
                        consequences=[_("%(when)s の枠を取り下げます。この枠には学生が割り当てられなくなります。")
                                      % {"when": when},
                                      _("同じ日時で受け入れられる場合は、もう一度枠を追加してください。")])


# ============================================================================ both sides: my visits


async def _with_disclosures(request: Request, visits: list[dict[str, Any]], *, is_student: bool) -> None:
    """The address (student) or the student's contact (family) for a visit both sides confirmed, each view
    audited by the one door (events.visits.households)."""
    actor = actor_of(request)
    for visit in visits:
        if is_student:
            visit["address"] = (await households.read_address(visit["household"], actor=actor)
                                if visit["visit_confirmed"] else None)
        else:
            visit["contact"] = (await households.read_student_contact(visit["student"], actor=actor)
                                if visit["visit_confirmed"] else None)


async def _my_page(request: Request, *, notice: str = "", error: str = "", status: int = 200) -> Response:
    person = request.state.person
    is_student = "student" in person["roles"]
    visits = await (confirmations.matches_of_student if is_student else confirmations.matches_of_family)(person["id"])
    await _with_disclosures(request, visits, is_student=is_student)
    return _page(request, "pages/visits/my.html", status_code=status, title="訪問予定", visits=visits,
                 slot_groups=[] if is_student else confirmations.group_by_slot(visits), is_student=is_student,
                 notice=notice, error=error, **_common(request))


@get("/visits/my", guards=[STUDENT_OR_FAMILY], include_in_schema=False)
async def my_visits(request: Request, notice: FromQuery[str] = "") -> Response:
    return await _my_page(request, notice=_notice(request, notice))


@get("/visits/events/{event_id:int}", guards=[requires("student", "host_family", "coordinator")],
     include_in_schema=False)
async def visit_page(request: Request, event_id: FromPath[int]) -> Response:
    """Where a confirmed visit's calendar entry and mails link: the visit in its own words (no seminar-style
    waiting list or cancel button), with the answers the person may still give."""
    person = request.state.person
    roles = set(person["roles"])
    if "student" in roles or "host_family" in roles:
        side = "student" if "student" in roles else "family"
        found = await confirmations.visit_of_event(event_id, person["id"], side=side)
    else:  # coordinators see the visit on its round's page
        slot = await rounds.slot_of_event(event_id)
        if slot is None:
            raise NotFound("その訪問は見つかりません。", code="visit_not_found")
        return Redirect(path=f"/visits/admin/rounds/{slot['round']}", status_code=303)
    visits = [found["visit"]] if side == "student" else found["slot"]["students"]
    await _with_disclosures(request, visits, is_student=side == "student")
    return _page(request, "pages/visits/visit.html", title="家庭訪問", side=side, is_student=side == "student",
                 visit=found.get("visit"), group=found.get("slot"), **_common(request))


async def _student_match(request: Request, match_id: int) -> dict[str, Any]:
    match = next((m for m in await confirmations.matches_of_student(request.state.person["id"])
                  if m["id"] == match_id), None)
    if match is None:
        raise NotFound("その訪問は見つかりません。", code="match_not_found")
    return match


@post("/visits/matches/{match_id:int}/answer", guards=[STUDENT_OR_FAMILY], include_in_schema=False)
async def match_answer(request: Request, match_id: FromPath[int]) -> Response:
    """A student answers their offered visit; a host family answers for the whole slot (one answer for every
    student offered to it there)."""
    form = await form_data(request)
    if "student" not in request.state.person["roles"]:
        match = await confirmations.match_of(match_id, request.state.person["id"], side="family")
        slot = await confirmations.slot_of_match(match["id"])
        return await _answer_slot(request, slot, form)
    match = await _student_match(request, match_id)
    decision = form.get("decision")
    _ = gettext_for(request.state.locale)
    reason, error = form.get("reason", ""), ""
    if decision not in ("accept", "decline"):
        return await _my_page(request, error=_("「参加する」または「辞退する」を選んでください。"), status=422)
    if confirmed(form):
        try:
            if decision == "decline" and not " ".join(reason.split()):
                raise Invalid("辞退の理由を入力してください。", code="reason_required", field="reason")
            await confirmations.respond(match_id, request.state.person["id"], side="student",
                                        accept=decision == "accept", reason=reason)
            return Redirect(path=f"/visits/my?notice={'accepted' if decision == 'accept' else 'declined'}",
                            status_code=303)
        except DomainError as exc:
            if exc.status == 404:
                raise
            if exc.code != "reason_required":
                return await _my_page(request, error=_error(request, exc), status=exc.status)
            error = _error(request, exc)
    what = {"when": _span(request, match["starts_at"], match["ends_at"]), "district": match["district"]}
    minor = await requests.is_minor_request(match_id)
    back = "/visits/my"
    if decision == "accept":
        lines = [_("%(when)s に、%(district)s のご家庭を訪問します。") % what,
                 _("ご家庭も受け入れを確定すると訪問が確定し、訪問先のご住所がこのページに表示されます（訪問の1週間後まで）。"),
                 _("確定したら、カレンダーの招待つきのメールをお送りします（ご家庭にもお知らせします）。")]
        if minor:
            lines.append(_("保護者の方にも、確定のお知らせをメールでお送りします。"))
        lines.append(_("都合が悪くなった場合は、後からこのページで辞退できます。"))
        return confirm_page(request, title=_("この訪問に参加しますか"), action=f"/visits/matches/{match_id}/answer",
                            consequences=lines, button=_("参加する"), back=back, fields={"decision": "accept"},
                            danger=False, irreversible=False)
    lines = [_("%(when)s の訪問（%(district)s）を辞退します。") % what,
             _("ご家庭と区の担当者にメールでお知らせします。理由は区の担当者にだけ伝わります。")]
    if match["visit_confirmed"]:
        lines.append(_("訪問先のご住所の表示と、カレンダーの予定も取り消されます。"))
    if minor:
        lines.append(_("保護者の方にも、辞退のお知らせをメールでお送りします。"))
    lines.append(_("辞退した後にもう一度参加したい場合は、区の担当者にご相談ください。"))
    return confirm_page(request, title=_("この訪問を辞退しますか"), action=f"/visits/matches/{match_id}/answer",
                        consequences=lines, button=_("辞退する"), back=back, fields={"decision": "decline"},
                        reason_label=_("辞退の理由（区の担当者にお伝えします）"), reason=reason, reason_required=True,
                        error=error, status_code=422 if error else 200)


@post("/visits/slots/{slot_id:int}/answer", guards=[FAMILY], include_in_schema=False)
async def slot_answer(request: Request, slot_id: FromPath[int]) -> Response:
    return await _answer_slot(request, slot_id, await form_data(request))


async def _answer_slot(request: Request, slot_id: int, form: dict[str, str]) -> Response:
    """The host family's one answer for a slot: a confirmation step first (a decline needs a reason)."""
    _ = gettext_for(request.state.locale)
    group = next((g for g in confirmations.group_by_slot(
        await confirmations.matches_of_family(request.state.person["id"])) if g["slot"] == slot_id), None)
    if group is None or not group["live"]:
        raise NotFound("その訪問は見つかりません。", code="match_not_found")
    decision = form.get("decision")
    if decision not in ("accept", "decline"):
        return await _my_page(request, error=_("「受け入れる」または「辞退する」を選んでください。"), status=422)
    reason, error = form.get("reason", ""), ""
    if confirmed(form):
        try:
            if decision == "decline" and not " ".join(reason.split()):
                raise Invalid("辞退の理由を入力してください。", code="reason_required", field="reason")
            await confirmations.respond_slot(slot_id, request.state.person["id"], accept=decision == "accept",
                                             reason=reason)
            return Redirect(path=f"/visits/my?notice={'accepted' if decision == 'accept' else 'declined'}",
                            status_code=303)
        except DomainError as exc:
            if exc.status == 404:
                raise
            if exc.code != "reason_required":
                return await _my_page(request, error=_error(request, exc), status=exc.status)
            error = _error(request, exc)
    names = "、".join(s["student_name"] for s in group["live"])
    what = {"when": _span(request, group["starts_at"], group["ends_at"]), "n": len(group["live"]), "names": names}
    action = f"/visits/slots/{slot_id}/answer"
    if decision == "accept":
        lines = [_("%(when)s に、次の学生 %(n)d名を受け入れます：%(names)s") % what,
                 _("学生も参加と回答すると訪問が確定し、その学生にご住所が表示されます（訪問の1週間後まで）。"),
                 _("訪問が確定したら、この日について1通のメール（カレンダーの招待つき）をお送りします。"),
                 _("確定した学生（18歳未満の方は保護者の方も）にも、確定のお知らせをメールでお送りします。")]
        return confirm_page(request, title=_("この日の受け入れを確定しますか"), action=action, consequences=lines,
                            button=_("受け入れを確定する"), back="/visits/my", fields={"decision": "accept"},
                            danger=False, irreversible=False)
    lines = [_("%(when)s の受け入れを辞退します。学生 %(n)d名（%(names)s）の訪問は取りやめになります。") % what,
             _("学生（18歳未満の方は保護者の方も）と区の担当者にメールでお知らせします。理由は区の担当者にだけ伝わります。")]
    if group["confirmed"]:
        lines.append(_("確定していた訪問のご住所の表示と、カレンダーの予定も取り消されます。"))
    return confirm_page(request, title=_("この日の受け入れを辞退しますか"), action=action, consequences=lines,
                        button=_("受け入れを辞退する"), back="/visits/my", fields={"decision": "decline"},
                        reason_label=_("辞退の理由（区の担当者にお伝えします）"), reason=reason, reason_required=True,
                        error=error, status_code=422 if error else 200)


# ============================================================================ guardians (no account)


@get("/visits/consent/{token:str}", include_in_schema=False)
async def consent_page(token: FromPath[str]) -> Response:
    # Mails sent before the one consent page existed link here; the page is /consent/<token> for every subject.
    return Redirect(path=f"/consent/{token}", status_code=301)


@get("/visits/guardian/{token:str}", include_in_schema=False)
async def guardian_page(request: Request, token: FromPath[str]) -> Response:
    """The guardian's page of a minor's home visit: the link in each mail (or the consent link) is the key."""
    request.state.personal = True
    _ = gettext_for(request.state.locale)
    try:
        view = await guardians.status_view(token, client=client_of(request))
    except DomainError as exc:
        if exc.status >= 500:
            raise
        gone = exc.status == 410
        return page(request, "pages/message.html", status_code=410 if gone else 404,
                    title=_("このリンクは使えません") if gone else _("このリンクは無効です"),
                    heading=_("このリンクは使えません") if gone else _("このリンクは無効です"),
                    lines=[_("このリンクの有効期限が切れました。最新のメールのリンクからご覧ください。") if gone
                           else _("メールに記載されたリンクをもう一度ご確認ください。"),
                           _("ご不明な点は、金沢区こども家庭支援課までお問い合わせください。")], link=None)
    view["window_lines"] = requests.describe_windows(view["windows"], request.state.locale)
    return _page(request, "pages/visits/guardian.html", title="お子さまの家庭訪問", view=view, token=token,
                 **_common(request))


# ============================================================================ coordinators


async def _admin_page(request: Request, *, notice: str = "", error: str = "", status: int = 200) -> Response:
    found = await households.list_households(actor=actor_of(request))
    today = timefmt.tokyo_date(utcnow())
    return _page(request, "pages/visits/admin.html", status_code=status, title="家庭訪問の管理",
                 rounds=await rounds.list_rounds(), households=found, today=today,
                 vetted=lambda h: households.vetting_valid(h, today), notice=notice, error=error, **_common(request))


@get("/visits/admin", guards=[COORDINATOR], include_in_schema=False)
async def admin_home(request: Request, notice: FromQuery[str] = "") -> Response:
    return await _admin_page(request, notice=_notice(request, notice))


@post("/visits/admin/rounds", guards=[COORDINATOR], include_in_schema=False)
async def admin_round_create(request: Request) -> Response:
    form = await form_data(request)
    try:
        round_id = await rounds.create_round(
            actor_of(request), name=form.get("name", ""), description=form.get("description", ""),
            requests_open_at=_tokyo(form.get("open_date", ""), "00:00", "open_date"),
            requests_close_at=_tokyo(form.get("close_date", ""), "23:59", "close_date"),
        )
    except DomainError as exc:
        return await _admin_page(request, error=_error(request, exc), status=exc.status)
    return Redirect(path=f"/visits/admin/rounds/{round_id}?notice=round_created", status_code=303)


async def _household_admin_page(request: Request, household_id: int, *, notice: str = "", error: str = "",
                                status: int = 200) -> Response:
    actor = actor_of(request)
    household = await households.view_household(household_id, actor=actor)
    address = await households.read_address(household_id, actor=actor)
    return _page(request, "pages/visits/admin_household.html", status_code=status, title=household["display_name"],
                 household=household, address=address, notice=notice, error=error,
                 today=timefmt.tokyo_date(utcnow()), **_common(request))


@get("/visits/admin/households/{household_id:int}", guards=[COORDINATOR], include_in_schema=False)
async def admin_household(request: Request, household_id: FromPath[int], notice: FromQuery[str] = "") -> Response:
    return await _household_admin_page(request, household_id, notice=_notice(request, notice))


@post("/visits/admin/households/{household_id:int}/vetting", guards=[COORDINATOR], include_in_schema=False)
async def admin_vetting(request: Request, household_id: FromPath[int]) -> Response:
    form = await form_data(request)
    try:
        try:
            interviewed = date.fromisoformat(form.get("interviewed_on", ""))
            valid_until = date.fromisoformat(form.get("valid_until", ""))
        except ValueError:
            raise Invalid("面談日と有効期限を入力してください。", code="invalid_vetting_dates") from None
        await households.record_vetting(actor_of(request), household_id, interviewed_on=interviewed,
                                        valid_until=valid_until)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _household_admin_page(request, household_id, error=_error(request, exc), status=exc.status)
    return Redirect(path=f"/visits/admin/households/{household_id}?notice=vetted", status_code=303)


async def _round_admin_page(request: Request, round_id: int, *, notice: str = "", error: str = "",
                            status: int = 200) -> Response:
    view = await proposals.round_review(round_id, actor=actor_of(request))
    for row in view["requests"]:
        row["window_lines"] = requests.describe_windows(requests.windows_of(row), request.state.locale)
    return _page(request, "pages/visits/admin_round.html", status_code=status, title=view["round"]["name"],
                 **view, notice=notice, error=error, **_common(request))


@get("/visits/admin/rounds/{round_id:int}", guards=[COORDINATOR], include_in_schema=False)
async def admin_round(request: Request, round_id: FromPath[int], notice: FromQuery[str] = "") -> Response:
    return await _round_admin_page(request, round_id, notice=_notice(request, notice))


@post("/visits/admin/rounds/{round_id:int}/run", guards=[COORDINATOR], include_in_schema=False)
async def admin_run(request: Request, round_id: FromPath[int]) -> Response:
    form = await form_data(request)
    try:
        seed_text = form.get("seed", "")
        if seed_text and not seed_text.isdigit():
            raise Invalid("乱数の種は数字で入力してください。", code="invalid_seed")
        await proposals.run_matching(round_id, actor_of(request), seed=int(seed_text) if seed_text else None)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _round_admin_page(request, round_id, error=_error(request, exc), status=exc.status)
    return Redirect(path=f"/visits/admin/rounds/{round_id}?notice=ran#proposal", status_code=303)


@post("/visits/admin/rounds/{round_id:int}/rules", guards=[COORDINATOR], include_in_schema=False)
async def admin_rule(request: Request, round_id: FromPath[int]) -> Response:
    form = await form_data(request)
    try:
        if not (form.get("student", "").isdigit() and form.get("household", "").isdigit()):
            raise Invalid("学生と家庭を選んでください。", code="invalid_rule")
        await proposals.set_rule(actor_of(request), round_id, student_id=int(form["student"]),
                                 household_id=int(form["household"]), kind=form.get("kind", ""))
    except DomainError as exc:
        if exc.status == 404 and exc.code == "round_not_found":
            raise
        return await _round_admin_page(request, round_id, error=_error(request, exc), status=exc.status)
    return Redirect(path=f"/visits/admin/rounds/{round_id}?notice=rule_saved", status_code=303)


@post("/visits/admin/rounds/{round_id:int}/status", guards=[COORDINATOR], include_in_schema=False)
async def admin_round_status(request: Request, round_id: FromPath[int]) -> Response:
    form = await form_data(request)
    try:
        await rounds.set_round_status(actor_of(request), round_id, form.get("status", ""))
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _round_admin_page(request, round_id, error=_error(request, exc), status=exc.status)
    return Redirect(path=f"/visits/admin/rounds/{round_id}?notice=saved", status_code=303)


@post("/visits/admin/proposals/{proposal_id:int}/confirm", guards=[COORDINATOR], include_in_schema=False)
async def admin_confirm(request: Request, proposal_id: FromPath[int]) -> Response:
    """Confirming a proposal mails every student and family it offers a visit to (and calls off the visits it
    drops): a confirmation step first, with the numbers."""
    form = await form_data(request)
    actor = actor_of(request)
    preview = await proposals.confirmation_preview(proposal_id, actor=actor)
    round_id = preview["round"]
    if confirmed(form):
        try:
            await proposals.confirm_proposal(proposal_id, actor)
        except DomainError as exc:
            if exc.status == 404:
                raise
            return await _round_admin_page(request, round_id, error=_error(request, exc), status=exc.status)
        return Redirect(path=f"/visits/admin/rounds/{round_id}?notice=confirmed", status_code=303)
    _ = gettext_for(request.state.locale)
    lines = [_("%(n)d名の学生に組み合わせを知らせ、参加するかどうかの回答をお願いします。") % {"n": preview["offers"]},
             _("受け入れ家庭 %(n)d軒に、受け入れの確認をお願いします（1軒に1通）。") % {"n": preview["families"]}]
    if preview["minors"]:
        lines.append(_("このうち18歳未満の学生 %(n)d名の保護者の方にも、組み合わせをお知らせします。")
                     % {"n": preview["minors"]})
    if preview["kept"]:
        lines.append(_("回答待ち・確定済みの %(n)d件は、そのまま続きます（メールは送りません）。") % {"n": preview["kept"]})
    if preview["cancelled"]:
        lines.append(_("この提案に含まれない %(n)d件の訪問は取りやめになり、学生とご家庭（18歳未満の方は保護者の方も）に"
                       "お知らせします。") % {"n": preview["cancelled"]})
    if preview["unmatched"]:
        lines.append(_("割り当てられなかった学生 %(n)d名には、メールは送りません。") % {"n": preview["unmatched"]})
    recipients = (preview["offers"] + preview["families"] + preview["minors"] + preview["cancelled"]
                  + preview["cancelled_families"] + preview["cancelled_minors"])
    return confirm_page(request, title=_("この提案で確定し、学生とご家庭に確認を依頼しますか"),
                        action=f"/visits/admin/proposals/{proposal_id}/confirm", consequences=lines,
                        button=_("確定して確認を依頼する"), back=f"/visits/admin/rounds/{round_id}#proposal",
                        recipients=recipients, danger=False)


@post("/visits/admin/matches/{match_id:int}/cancel", guards=[COORDINATOR], include_in_schema=False)
async def admin_cancel_visit(request: Request, match_id: FromPath[int]) -> Response:
    """Calling a visit off tells the student, the family and a minor's guardian why: the reason is required."""
    form = await form_data(request)
    actor = actor_of(request)
    _ = gettext_for(request.state.locale)
    reason, error = form.get("reason", ""), ""
    visit = await proposals.view_match(match_id, actor=actor)
    if confirmed(form):
        try:
            await confirmations.cancel_visit(match_id, actor, reason=reason)
            return Redirect(path=f"/visits/admin/rounds/{visit['round']}?notice=visit_cancelled", status_code=303)
        except DomainError as exc:
            if exc.status == 404:
                raise
            error = _error(request, exc)
    what = {"student": visit["student_name"], "when": _span(request, visit["starts_at"], visit["ends_at"]),
            "household": visit["household_name"], "district": visit["district"]}
    lines = [_("%(student)sさんの %(when)s の訪問（%(household)s・%(district)s）を取りやめます。") % what,
             _("学生とご家庭に、取りやめの理由を書いたメールをお送りします。")]
    if visit["is_minor"]:
        lines.append(_("18歳未満の学生なので、保護者の方にも理由をお知らせします。"))
    lines.append(_("同じ枠で18歳未満の学生が一人になる場合は、安全のためその訪問も保留になり、再マッチングが必要になります。"))
    return confirm_page(request, title=_("この訪問を取りやめますか"), action=f"/visits/admin/matches/{match_id}/cancel",
                        consequences=lines, button=_("訪問を取りやめる"),
                        back=f"/visits/admin/rounds/{visit['round']}#proposal", recipients=2 + int(visit["is_minor"]),
                        reason_label=_("取りやめの理由（メールに記載されます）"), reason=reason, reason_required=True,
                        error=error, status_code=422 if error else 200)


ROUTES = [visits_home, request_form, request_submit, request_withdraw, household_form, household_save,
          household_address_save, slots, slot_add, slot_withdraw, my_visits, visit_page, match_answer, slot_answer,
          consent_page, guardian_page, admin_home, admin_round_create, admin_household, admin_vetting, admin_round,
          admin_run, admin_rule, admin_round_status, admin_confirm, admin_cancel_visit]
