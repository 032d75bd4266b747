"""Pages of exchange sessions: coordinators' sessions, seating charts, name cards, who-met-whom,
facility and staff lists, imports; staff's phone page of their own table."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from events.core.tables import FACILITY_KINDS
from events.errors import DomainError, Forbidden, Invalid
from events.exchanges import directory, importing, sessions
from lifedesign.i18n import gettext_for
from lifedesign.rendering import form_data, page
from lifedesign.security import COORDINATOR, LOGGED_IN, actor_of

PRESENCE_LABELS = {"": "未確認", "arrived": "到着", "late": "遅れて参加", "absent": "欠席・退出"}


def _t(request: Request, text: str) -> str:
    return gettext_for(request.state.locale)(text)


def _int_or_none(value: str, field: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise Invalid("数字で入力してください。", code="invalid_number", field=field) from None


def _session_form(form: dict[str, str], themes: list[str], themes_en: list[str]) -> dict[str, Any]:
    size_mode = form.get("size_mode", "table_size")
    table_size = _int_or_none(form.get("table_size", ""), "table_size") if size_mode == "table_size" else None
    tables = _int_or_none(form.get("tables", ""), "tables") if size_mode == "tables" else None
    return {
        "rounds": _int_or_none(form.get("rounds", ""), "rounds") or 0,
        "table_size": table_size, "tables": tables,
        "round_minutes": _int_or_none(form.get("round_minutes", ""), "round_minutes") or 20,
        "themes": themes, "themes_en": themes_en,
    }


async def _themes(request: Request) -> tuple[list[str], list[str]]:
    form = await request.form()
    return [str(v) for v in form.getall("theme")] if "theme" in form else [], \
        [str(v) for v in form.getall("theme_en")] if "theme_en" in form else []


# ---------------------------------------------------------------- sessions


async def _index(request: Request, *, error: str = "", status: int = 200) -> Response:
    return page(request, "pages/exchanges/index.html", status_code=status, title=_t(request, "交流会の席決め"),
                sessions=await sessions.list_sessions(), events=await sessions.events_without_session(), error=error)


@get("/exchanges", guards=[COORDINATOR], include_in_schema=False)
async def exchanges_index(request: Request) -> Response:
    return await _index(request)


@post("/exchanges", guards=[COORDINATOR], include_in_schema=False)
async def exchanges_create(request: Request) -> Response:
    form = await form_data(request)
    themes, themes_en = await _themes(request)
    try:
        event_id = _int_or_none(form.get("event", ""), "event")
        if event_id is None:
            raise Invalid("イベントを選んでください。", code="event_required", field="event")
        session_id = await sessions.create_session(event_id, actor=actor_of(request),
                                                   **_session_form(form, themes, themes_en))
    except DomainError as exc:
        return await _index(request, error=gettext_for(request.state.locale)(exc.message), status=exc.status)
    return Redirect(path=f"/exchanges/{session_id}", status_code=303)


async def _session_page(request: Request, session_id: int, *, notice: str = "", error: str = "",
                        status: int = 200) -> Response:
    view = await sessions.session_view(session_id, actor=actor_of(request))
    return page(
        request, "pages/exchanges/session.html", status_code=status, title=view["session"]["event_title"],
        session=view["session"], participants=view["participants"], seating=view["seating"], gaps=view["gaps"],
        presence_labels=PRESENCE_LABELS, notice=notice, error=error,
    )


@get("/exchanges/{session_id:int}", guards=[COORDINATOR], include_in_schema=False)
async def session_view(request: Request, session_id: FromPath[int]) -> Response:
    return await _session_page(request, session_id)


async def _act(request: Request, session_id: int, action, done: str) -> Response:
    _ = gettext_for(request.state.locale)
    try:
        result = await action()
    except DomainError as exc:
        if exc.code == "session_not_found":
            raise
        return await _session_page(request, session_id, error=_(exc.message), status=exc.status)
    return await _session_page(request, session_id, notice=done if result is None else result)


def _plan_notice(request: Request, summary: sessions.PlanSummary) -> str:
    _ = gettext_for(request.state.locale)
    if summary.repeat_pairs == 0:
        text = _("席を決めました。{people}人・{tables}卓・{rounds}ラウンドで、同じ方と2度同じテーブルになることはありません。")
    elif 0 <= summary.bound <= summary.clash_free_rounds:  # the bound itself is the limit: no plan can do better
        text = _("席を決めました。{people}人・{tables}卓・{rounds}ラウンドです。この人数と施設の構成では、初対面どうしで組めるのは{bound}ラウンドまでです。それより後のラウンドで、同じ方と再び同じテーブルになる組が{repeats}組あります（できるだけ同じ方に偏らないようにしています）。")
    else:  # the bound is a ceiling nobody has shown to be reachable here, nor to be out of reach
        text = _("席を決めました。{people}人・{tables}卓・{rounds}ラウンドです。{clean}ラウンド目までは初対面どうしです。その後、同じ方と再び同じテーブルになる組が{repeats}組あります。計算上は{bound}ラウンドまで初対面にできる可能性がありますが、そのような席の組み方は見つかりませんでした（できないと確かめられたわけでもありません）。テーブル数を変えると減ることがあります。")
    return text.format(people=summary.people, tables=summary.tables, rounds=summary.rounds,
                       repeats=summary.repeat_pairs, clean=summary.clash_free_rounds, bound=summary.bound)


@post("/exchanges/{session_id:int}/settings", guards=[COORDINATOR], include_in_schema=False)
async def session_settings(request: Request, session_id: FromPath[int]) -> Response:
    form = await form_data(request)
    themes, themes_en = await _themes(request)

    async def action() -> None:
        await sessions.update_session(session_id, actor=actor_of(request), **_session_form(form, themes, themes_en))

    return await _act(request, session_id, action, gettext_for(request.state.locale)("設定を保存しました。"))


@post("/exchanges/{session_id:int}/plan", guards=[COORDINATOR], include_in_schema=False)
async def session_plan(request: Request, session_id: FromPath[int]) -> Response:
    form = await form_data(request)

    async def action() -> str:
        summary = await sessions.assign_tables(session_id, _int_or_none(form.get("seed", ""), "seed"),
                                               actor=actor_of(request))
        return _plan_notice(request, summary)

    return await _act(request, session_id, action, "")


@post("/exchanges/{session_id:int}/presence", guards=[COORDINATOR], include_in_schema=False)
async def session_presence(request: Request, session_id: FromPath[int]) -> Response:
    form = await form_data(request)

    async def action() -> None:
        person_id = _int_or_none(form.get("person", ""), "person")
        if person_id is None:
            raise Invalid("参加者を選んでください。", code="person_required")
        await sessions.set_presence(session_id, person_id, form.get("status", ""), actor=actor_of(request))

    return await _act(request, session_id, action,
                      gettext_for(request.state.locale)("出欠を記録しました。席に反映するには「残りのラウンドの席を決め直す」を押してください。"))


@post("/exchanges/{session_id:int}/round", guards=[COORDINATOR], include_in_schema=False)
async def session_round(request: Request, session_id: FromPath[int]) -> Response:
    form = await form_data(request)

    async def action() -> None:
        await sessions.set_current_round(session_id, _int_or_none(form.get("current_round", ""), "current_round") or 0,
                                         actor=actor_of(request))

    return await _act(request, session_id, action, gettext_for(request.state.locale)("現在のラウンドを更新しました。"))


@post("/exchanges/{session_id:int}/mail", guards=[COORDINATOR], include_in_schema=False)
async def session_mail(request: Request, session_id: FromPath[int]) -> Response:
    _ = gettext_for(request.state.locale)

    async def action() -> str:
        count = await sessions.send_table_mail(session_id, actor=actor_of(request))
        return _("{count}人に席のご案内メールを送信予約しました（席が変わっていない方には再送しません）。").format(count=count)

    return await _act(request, session_id, action, "")


@get("/exchanges/{session_id:int}/chart", guards=[COORDINATOR], include_in_schema=False)
async def session_chart(request: Request, session_id: FromPath[int], round: FromQuery[int | None] = None) -> Response:
    view = await sessions.seating_view(session_id, actor=actor_of(request), purpose="chart", round_no=round)
    return page(request, "pages/exchanges/chart.html", title=view["session"]["event_title"], session=view["session"],
                seating=view["seating"])


@get("/exchanges/{session_id:int}/cards", guards=[COORDINATOR], include_in_schema=False)
async def session_cards(request: Request, session_id: FromPath[int]) -> Response:
    view = await sessions.seating_view(session_id, actor=actor_of(request), purpose="cards")
    session = view["session"]
    people: dict[int, dict[str, Any]] = {}
    for r in view["seating"]:
        for t in r["tables"]:
            for p in t["people"]:
                people.setdefault(p["id"], {**p, "tables": {}})["tables"][r["round"]] = t["table"]
    cards = sorted(people.values(), key=lambda p: (p["kana"] or p["name"], p["id"]))
    return page(request, "pages/exchanges/cards.html", title=session["event_title"], session=session, cards=cards,
                rounds=list(range(1, session["rounds"] + 1)))


@get("/exchanges/{session_id:int}/my-table", guards=[LOGGED_IN], include_in_schema=False)
async def my_table(request: Request, session_id: FromPath[int]) -> Response:
    person = request.state.person
    session = await sessions.get_session(session_id)
    if not await sessions.is_participant(session_id, person["id"]):
        raise Forbidden("この交流会にお申し込みの方だけが席を確認できます。", code="not_a_participant")
    seats = await sessions.seats_of(session_id, person["id"])
    current = session["current_round"]
    now_seat = seats[current - 1] if current >= 1 else None
    next_seat = seats[current] if current < len(seats) else None
    return page(request, "pages/exchanges/my_table.html", title=_t(request, "あなたの席"), session=session, seats=seats,
                now_seat=now_seat, next_seat=next_seat, planned=bool(session["plan_version"]))


@get("/exchanges/met", guards=[COORDINATOR], include_in_schema=False)
async def met(request: Request, by: FromQuery[str] = "facility", facility: FromQuery[int | None] = None) -> Response:
    actor = actor_of(request)
    matrix = await sessions.met_view(actor=actor, facility_id=facility if by == "person" else None)
    people = matrix["people"]
    return page(request, "pages/exchanges/met.html", title=_t(request, "交流の記録（誰と誰が同じテーブルになったか）"), by=by,
                matrix=matrix, people=people[:150], truncated=len(people) > 150, facility=facility,
                all_facilities=await directory.facilities_with_counts(actor=actor))


# ---------------------------------------------------------------- facilities and staff


@get("/exchanges/facilities", guards=[COORDINATOR], include_in_schema=False)
async def facilities(request: Request) -> Response:
    return page(request, "pages/exchanges/facilities.html", title=_t(request, "施設の一覧"),
                facilities=await directory.facilities_with_counts(actor=actor_of(request)),
                kind_labels=importing.KIND_LABELS)


async def _facility_page(request: Request, facility_id: int, *, error: str = "", status: int = 200,
                         form: dict[str, str] | None = None) -> Response:
    facility = await directory.get_facility(facility_id, actor=actor_of(request))
    return page(request, "pages/exchanges/facility_edit.html", status_code=status, title=facility["name"],
                facility={**facility, **(form or {})}, kinds=FACILITY_KINDS, kind_labels=importing.KIND_LABELS,
                error=error)


@get("/exchanges/facilities/{facility_id:int}", guards=[COORDINATOR], include_in_schema=False)
async def facility_edit(request: Request, facility_id: FromPath[int]) -> Response:
    return await _facility_page(request, facility_id)


@post("/exchanges/facilities/{facility_id:int}", guards=[COORDINATOR], include_in_schema=False)
async def facility_save(request: Request, facility_id: FromPath[int]) -> Response:
    form = await form_data(request)
    try:
        await directory.update_facility(facility_id, actor=actor_of(request), name=form.get("name", ""),
                                        kind=form.get("kind", ""), area=form.get("area", ""),
                                        kana=form.get("kana"))
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _facility_page(request, facility_id, error=gettext_for(request.state.locale)(exc.message),
                                    status=exc.status, form=form)
    return Redirect(path="/exchanges/facilities", status_code=303)


@get("/exchanges/staff", guards=[COORDINATOR], include_in_schema=False)
async def staff(request: Request, q: FromQuery[str] = "", facility: FromQuery[int | None] = None) -> Response:
    actor = actor_of(request)
    found = await directory.list_staff(actor=actor, facility_id=facility, query=q)
    return page(request, "pages/exchanges/staff.html", title=_t(request, "職員の一覧"), staff=found, q=q, facility=facility,
                facilities=await directory.facilities_with_counts(actor=actor))


async def _staff_page(request: Request, person_id: int, *, error: str = "", status: int = 200,
                      form: dict[str, str] | None = None) -> Response:
    actor = actor_of(request)
    member = await directory.get_staff(person_id, actor=actor)
    if form:
        member = {**member, **form, "facility_id": _int_or_none(form.get("facility", ""), "facility")}
    return page(request, "pages/exchanges/staff_edit.html", status_code=status, title=member["name"], member=member,
                facilities=await directory.facilities_with_counts(actor=actor), error=error)


@get("/exchanges/staff/{person_id:int}", guards=[COORDINATOR], include_in_schema=False)
async def staff_edit(request: Request, person_id: FromPath[int]) -> Response:
    return await _staff_page(request, person_id)


@post("/exchanges/staff/{person_id:int}", guards=[COORDINATOR], include_in_schema=False)
async def staff_save(request: Request, person_id: FromPath[int]) -> Response:
    form = await form_data(request)
    try:
        facility_id = _int_or_none(form.get("facility", ""), "facility")
        if facility_id is None:
            raise Invalid("所属施設を選んでください。", code="facility_required", field="facility")
        await directory.update_staff(person_id, actor=actor_of(request), name=form.get("name", ""),
                                     kana=form.get("kana", ""), facility_id=facility_id,
                                     job_title=form.get("job_title", ""))
    except DomainError as exc:
        if exc.code == "staff_not_found":
            raise
        return await _staff_page(request, person_id, error=gettext_for(request.state.locale)(exc.message),
                                 status=exc.status, form=form)
    return Redirect(path="/exchanges/staff", status_code=303)


@get("/exchanges/import", guards=[COORDINATOR], include_in_schema=False)
async def import_form(request: Request) -> Response:
    return page(request, "pages/exchanges/import.html", title=_t(request, "施設・職員の取り込み"), report=None, what="facilities")


@post("/exchanges/import", guards=[COORDINATOR], include_in_schema=False)
async def import_upload(request: Request) -> Response:
    form = await request.form()
    what = str(form.get("what", "facilities"))
    upload = form.get("file")
    dry_run = str(form.get("action", "check")) != "import"
    if not isinstance(upload, UploadFile):
        report = importing.ImportReport(what)
        report.errors.append(importing.RowError(0, "no_file", "ファイルを選んでください。"))
    else:
        data = await upload.read()
        run = importing.import_staff if what == "staff" else importing.import_facilities
        report = await run(data, upload.filename or "", actor=actor_of(request), dry_run=dry_run)
    return page(request, "pages/exchanges/import.html", status_code=200 if report.ok else 422,
                title=_t(request, "施設・職員の取り込み"), report=report, what=what, dry_run=dry_run,
                filename=upload.filename if isinstance(upload, UploadFile) else "")


ROUTES = [exchanges_index, exchanges_create, session_view, session_settings, session_plan, session_presence,
          session_round, session_mail, session_chart, session_cards, my_table, met, facilities, facility_edit,
          facility_save, staff, staff_edit, staff_save, import_form, import_upload]
