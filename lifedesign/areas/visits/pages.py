"""HTML pages of home visits: students ask, families describe their household and offer slots, the guardian
consents, both sides answer, and the coordinator vets households, runs the matching, reviews and confirms.

State never changes on GET; every form carries the CSRF token; a failed form is shown again with the
message and what was typed.
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
from events.errors import DomainError, Invalid
from events.timefmt import TOKYO
from events.visits import confirmations, households, proposals, requests, rounds
from events.visits.tables import HOUSEHOLD_TAGS, LANGUAGES
from lifedesign.i18n import gettext_for
from lifedesign.rendering import form_data, form_list, page, register_nav
from lifedesign.security import COORDINATOR, actor_of, requires

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
    "round_created": "訪問回を作成しました。",
    "ran": "マッチングを実行しました。内容を確認してください。",
    "confirmed": "組み合わせを確定し、学生とご家庭に確認のメールを送りました。",
    "rule_saved": "組み合わせの設定を保存しました。もう一度マッチングを実行してください。",
    "vetted": "面談の記録を保存しました。",
}
STATUS_LABELS = {
    "draft": "準備中", "open": "受付中", "closed": "締切", "completed": "終了",
    "offered": "募集中", "withdrawn": "取り下げ", "active": "申込中",
    "proposed": "提案", "confirmed_by_coordinator": "回答待ち", "accepted": "双方が参加を確定", "declined": "辞退",
    "cancelled": "取りやめ", "superseded": "差し替え", "on_hold": "安全のため保留", "revoked": "同意の取り消し",
    "pending": "回答待ち", "given": "同意済み", "refused": "同意なし", "expired": "期限切れ", "not_needed": "不要",
}
SCHOOL_LEVELS = {"high_school": "高校", "university": "大学"}


def _notice(request: Request, code: str) -> str:
    return gettext_for(request.state.locale)(NOTICES[code]) if code in NOTICES else ""


def _common() -> dict[str, Any]:
    return {"tags": HOUSEHOLD_TAGS, "districts": WARD_AREAS, "languages": LANGUAGES, "labels": STATUS_LABELS,
            "school_levels": SCHOOL_LEVELS}


def _tokyo(day: str, clock: str, field: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), tzinfo=TOKYO)
    except ValueError:
        raise Invalid("日付と時刻を正しく入力してください。", code="invalid_datetime", field=field) from None


def _page(request: Request, template: str, *, title: str, **context: Any) -> Response:
    return page(request, template, title=gettext_for(request.state.locale)(title), **context)


def _error(request: Request, exc: DomainError) -> str:
    return gettext_for(request.state.locale)(exc.message)


# ============================================================================ students


async def _student_page(request: Request, *, notice: str = "", error: str = "", status: int = 200) -> Response:
    person = request.state.person
    open_rounds = [r for r in await rounds.list_rounds(open_only=True) if rounds.accepting_requests(r)]
    mine = await requests.requests_of_student(person["id"])
    for row in mine:
        row["window_lines"] = requests.describe_windows(requests.windows_of(row), request.state.locale)
    return _page(request, "pages/visits/student.html", status_code=status, title="家庭訪問", rounds=open_rounds,
                requests=mine, notice=notice, error=error, **_common())


@get("/visits", guards=[requires("student", "host_family", "coordinator")], include_in_schema=False)
async def visits_home(request: Request, notice: FromQuery[str] = "") -> Response:
    roles = set(request.state.person["roles"])
    if "student" not in roles:
        return Redirect(path="/visits/admin" if is_staff(roles) else "/visits/slots", status_code=303)
    return await _student_page(request, notice=_notice(request, notice))


async def _request_form(request: Request, round_id: int, *, form: dict[str, Any] | None = None, error: str = "",
                        status: int = 200) -> Response:
    round_row = await rounds.get_round(round_id)
    return _page(request, "pages/visits/request_form.html", status_code=status, title="家庭訪問の申込",
                round=round_row, form=form or {"windows": [], "districts": [], "wanted": [], "avoided": [],
                                                "note": ""},
                error=error, accepting=rounds.accepting_requests(round_row), **_common())


@get("/visits/rounds/{round_id:int}/request", guards=[STUDENT], include_in_schema=False)
async def request_form(request: Request, round_id: FromPath[int]) -> Response:
    """The form, filled in with the student's current request in this round, if any."""
    current = next((r for r in await requests.requests_of_student(request.state.person["id"])
                    if r["round"] == round_id and r["status"] == "active"), None)
    form = None
    if current:
        windows = [(s.astimezone(TOKYO), e.astimezone(TOKYO)) for s, e in requests.windows_of(current)]
        # the form has one day per row; a several-day window (possible through the API) is not shown
        form = {"windows": [(s.date().isoformat(), f"{s:%H:%M}", f"{e:%H:%M}") for s, e in windows
                            if s.date() == e.date()],
                "districts": current["districts"], "wanted": current["wanted_tags"],
                "avoided": current["avoided_tags"], "note": current["note"]}
    return await _request_form(request, round_id, form=form)


@post("/visits/rounds/{round_id:int}/request", guards=[STUDENT], include_in_schema=False)
async def request_submit(request: Request, round_id: FromPath[int]) -> Response:
    form = await form_data(request)
    days, starts, ends = (await form_list(request, "window_date"), await form_list(request, "window_start"),
                          await form_list(request, "window_end"))
    typed = {"windows": list(zip(days, starts, ends, strict=False)), "districts": await form_list(request, "district"),
             "wanted": await form_list(request, "wanted"), "avoided": await form_list(request, "avoided"),
             "note": form.get("note", "")}
    try:
        windows = [(_tokyo(d, s, "windows"), _tokyo(d, e, "windows")) for d, s, e in typed["windows"] if d.strip()]
        await requests.submit_request(request.state.person["id"], round_id, requests.RequestInput(
            windows=windows, districts=typed["districts"], wanted_tags=typed["wanted"],
            avoided_tags=typed["avoided"], note=typed["note"]))
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _request_form(request, round_id, form=typed, error=_error(request, exc), status=exc.status)
    return Redirect(path="/visits?notice=request_saved", status_code=303)


@post("/visits/requests/{request_id:int}/withdraw", guards=[STUDENT], include_in_schema=False)
async def request_withdraw(request: Request, request_id: FromPath[int]) -> Response:
    try:
        await requests.withdraw_request(request.state.person["id"], request_id)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _student_page(request, error=_error(request, exc), status=exc.status)
    return Redirect(path="/visits?notice=withdrawn", status_code=303)


# ============================================================================ host families


async def _household_page(request: Request, *, notice: str = "", error: str = "", form: dict | None = None,
                          status: int = 200) -> Response:
    person_id = request.state.person["id"]
    household = await households.household_of(person_id)
    return _page(request, "pages/visits/household.html", status_code=status, title="家庭のプロフィール",
                household=household, form=form or household or {}, address=await households.own_address(person_id),
                notice=notice, error=error, **_common())


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
                notice=notice, error=error, **_common())


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
    try:
        await rounds.withdraw_slot(request.state.person["id"], slot_id)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _slots_page(request, error=_error(request, exc), status=exc.status)
    return Redirect(path="/visits/slots?notice=withdrawn", status_code=303)


# ============================================================================ both sides: my visits


async def _my_page(request: Request, *, notice: str = "", error: str = "", status: int = 200) -> Response:
    person = request.state.person
    is_student = "student" in person["roles"]
    actor = actor_of(request)
    if is_student:
        visits = await confirmations.matches_of_student(person["id"])
        for visit in visits:  # the address only for a visit both sides confirmed, each view audited
            visit["address"] = (await households.read_address(visit["household"], actor=actor)
                                if visit["visit_confirmed"] else None)
    else:
        visits = await confirmations.matches_of_family(person["id"])
        for visit in visits:
            visit["contact"] = (await households.read_student_contact(visit["student"], actor=actor)
                                if visit["visit_confirmed"] else None)
    return _page(request, "pages/visits/my.html", status_code=status, title="訪問予定", visits=visits,
                is_student=is_student, notice=notice, error=error, **_common())


@get("/visits/my", guards=[STUDENT_OR_FAMILY], include_in_schema=False)
async def my_visits(request: Request, notice: FromQuery[str] = "") -> Response:
    return await _my_page(request, notice=_notice(request, notice))


@post("/visits/matches/{match_id:int}/answer", guards=[STUDENT_OR_FAMILY], include_in_schema=False)
async def match_answer(request: Request, match_id: FromPath[int]) -> Response:
    form = await form_data(request)
    side = "student" if "student" in request.state.person["roles"] else "family"
    try:
        if form.get("decision") not in ("accept", "decline"):
            raise Invalid("「参加する」または「辞退する」を選んでください。", code="invalid_decision")
        await confirmations.respond(match_id, request.state.person["id"], side=side,
                                    accept=form["decision"] == "accept")
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _my_page(request, error=_error(request, exc), status=exc.status)
    return Redirect(path="/visits/my?notice=answered", status_code=303)


# ============================================================================ guardian consent (no account)


@get("/visits/consent/{token:str}", include_in_schema=False)
async def consent_page(token: FromPath[str]) -> Response:
    # Mails sent before the one consent page existed link here; the page is /consent/<token> for every subject.
    return Redirect(path=f"/consent/{token}", status_code=301)


# ============================================================================ coordinators


async def _admin_page(request: Request, *, notice: str = "", error: str = "", status: int = 200) -> Response:
    found = await households.list_households(actor=actor_of(request))
    today = timefmt.tokyo_date(utcnow())
    return _page(request, "pages/visits/admin.html", status_code=status, title="家庭訪問の管理",
                rounds=await rounds.list_rounds(), households=found, today=today,
                vetted=lambda h: households.vetting_valid(h, today), notice=notice, error=error, **_common())


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
                household=household, address=address, notice=notice, error=error, today=timefmt.tokyo_date(utcnow()),
                **_common())


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
                **view, notice=notice, error=error, **_common())


@get("/visits/admin/rounds/{round_id:int}", guards=[COORDINATOR], include_in_schema=False)
async def admin_round(request: Request, round_id: FromPath[int], notice: FromQuery[str] = "") -> Response:
    return await _round_admin_page(request, round_id, notice=_notice(request, notice))


@post("/visits/admin/rounds/{round_id:int}/run", guards=[COORDINATOR], include_in_schema=False)
async def admin_run(request: Request, round_id: FromPath[int]) -> Response:
    form = await form_data(request)
    try:
        seed_text = form.get("seed", "")
        if seed_text and not seed_text.isdigit():
            raise Invalid("シードは数字で入力してください。", code="invalid_seed")
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
    form = await form_data(request)
    round_id = int(form.get("round", "0") or 0)
    try:
        await proposals.confirm_proposal(proposal_id, actor_of(request))
    except DomainError as exc:
        if exc.status == 404 or not round_id:
            raise
        return await _round_admin_page(request, round_id, error=_error(request, exc), status=exc.status)
    return Redirect(path=f"/visits/admin/rounds/{round_id}?notice=confirmed", status_code=303)


ROUTES = [visits_home, request_form, request_submit, request_withdraw, household_form, household_save,
          household_address_save, slots, slot_add, slot_withdraw, my_visits, match_answer, consent_page, admin_home, admin_round_create, admin_household, admin_vetting, admin_round, admin_run,
          admin_rule, admin_round_status, admin_confirm]
