"""JSON API of exchange sessions under /api/v1/exchanges (coordinators; staff read only their own seats)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from events.errors import Forbidden, Invalid
from events.exchanges import directory, importing, sessions
from lifedesign.security import COORDINATOR, LOGGED_IN, actor_of


class SessionUpdate(msgspec.Struct):
    rounds: int
    table_size: int | None = None
    tables: int | None = None
    themes: list[str] = []
    themes_en: list[str] = []
    round_minutes: int = 20


class SessionIn(SessionUpdate, kw_only=True):
    event_id: int


class PlanIn(msgspec.Struct):
    seed: int | None = None


class ReplanIn(msgspec.Struct):
    late: list[int] = []
    absent: list[int] = []
    arrived: list[int] = []
    seed: int | None = None


class RoundIn(msgspec.Struct):
    current_round: int


class FacilityOut(msgspec.Struct):
    id: int
    name: str
    kind: str
    area: str
    staff: int  # how many staff it has


class FacilityUpdate(msgspec.Struct):
    name: str
    kind: str  # nursery | kindergarten | certified_childcare | small_childcare | school | other
    area: str = ""
    kana: str | None = None  # the reading in kana, for 五十音順 (left out: unchanged)


class StaffOut(msgspec.Struct):
    id: int
    name: str
    kana: str
    email: str
    locale: str
    active: bool
    facility_id: int | None
    facility_name: str
    job_title: str


class StaffUpdate(msgspec.Struct):
    name: str
    facility_id: int
    kana: str = ""
    job_title: str = ""


class NameCard(msgspec.Struct):
    """One person's name card: who, from where, and their table in each round ({"1": 3, "2": 5, …})."""

    id: int
    name: str
    kana: str
    facility: str
    tables: dict[str, int]


class SessionOut(msgspec.Struct):
    id: int
    event_id: int
    title: str
    starts_at: str
    rounds: int
    table_size: int | None
    tables: int | None
    round_minutes: int
    themes: list[str]
    themes_en: list[str]
    current_round: int
    plan_version: int
    seed: int | None
    plan: dict[str, Any] | None


def session_out(s: dict[str, Any]) -> SessionOut:
    plan = None
    if s["plan_version"]:
        plan = {"method": s["plan_method"], "bound": s["plan_bound"], "clash_free_rounds": s["plan_clash_free"],
                "repeat_pairs": s["plan_repeats"], "same_facility_pairs": s["plan_same_facility"],
                "prior_pairs": s["plan_prior_pairs"], "fixed_rounds": s["plan_fixed_rounds"],
                "search_steps": s["plan_steps"], "seconds": s["plan_seconds"],
                "planned_at": s["planned_at"].isoformat() if s["planned_at"] else None}
    return SessionOut(
        id=s["id"], event_id=s["event"], title=s["event_title"], starts_at=s["starts_at"].isoformat(),
        rounds=s["rounds"], table_size=s["table_size"], tables=s["tables"], round_minutes=s["round_minutes"],
        themes=s["themes"], themes_en=s["themes_en"], current_round=s["current_round"],
        plan_version=s["plan_version"], seed=s["seed"], plan=plan,
    )


@get("/api/v1/exchanges", guards=[COORDINATOR], tags=["exchanges"])
async def api_sessions(event_id: FromQuery[int | None] = None) -> list[SessionOut]:
    found = await sessions.list_sessions()
    return [session_out(s) for s in found if event_id is None or s["event"] == event_id]


@post("/api/v1/exchanges", guards=[COORDINATOR], tags=["exchanges"])
async def api_create(request: Request, data: JSONBody[SessionIn]) -> SessionOut:
    session_id = await sessions.create_session(
        data.event_id, actor=actor_of(request), rounds=data.rounds, table_size=data.table_size, tables=data.tables, themes=data.themes,
        themes_en=data.themes_en, round_minutes=data.round_minutes)
    return session_out(await sessions.get_session(session_id))


@get("/api/v1/exchanges/{session_id:int}", guards=[COORDINATOR], tags=["exchanges"])
async def api_session(session_id: FromPath[int]) -> SessionOut:
    return session_out(await sessions.get_session(session_id))


@patch("/api/v1/exchanges/{session_id:int}", guards=[COORDINATOR], tags=["exchanges"])
async def api_update(request: Request, session_id: FromPath[int], data: JSONBody[SessionUpdate]) -> SessionOut:
    await sessions.update_session(session_id, actor=actor_of(request), rounds=data.rounds, table_size=data.table_size,
                                  tables=data.tables, themes=data.themes, themes_en=data.themes_en,
                                  round_minutes=data.round_minutes)
    return session_out(await sessions.get_session(session_id))


@post("/api/v1/exchanges/{session_id:int}/plan", guards=[COORDINATOR], tags=["exchanges"])
async def api_plan(request: Request, session_id: FromPath[int], data: JSONBody[PlanIn]) -> dict[str, Any]:
    """Plan the seats (rounds already held stay as they were). The answer says how close it is to the bound."""
    summary = await sessions.assign_tables(session_id, data.seed, actor=actor_of(request))
    return summary.as_dict()


@post("/api/v1/exchanges/{session_id:int}/replan", guards=[COORDINATOR], tags=["exchanges"])
async def api_replan(request: Request, session_id: FromPath[int], data: JSONBody[ReplanIn]) -> dict[str, Any]:
    """Live re-plan: mark people late / absent / arrived, then re-solve only the rounds not yet held."""
    summary = await sessions.replan(session_id, actor=actor_of(request), late=data.late, absent=data.absent,
                                    arrived=data.arrived, seed=data.seed)
    return summary.as_dict()


@post("/api/v1/exchanges/{session_id:int}/round", guards=[COORDINATOR], tags=["exchanges"])
async def api_round(request: Request, session_id: FromPath[int], data: JSONBody[RoundIn]) -> SessionOut:
    await sessions.set_current_round(session_id, data.current_round, actor=actor_of(request))
    return session_out(await sessions.get_session(session_id))


@post("/api/v1/exchanges/{session_id:int}/mail", guards=[COORDINATOR], tags=["exchanges"])
async def api_mail(request: Request, session_id: FromPath[int]) -> Response:
    count = await sessions.send_table_mail(session_id, actor=actor_of(request))
    return Response(content={"status": "queued", "queued": count}, status_code=202)


@get("/api/v1/exchanges/{session_id:int}/seats", guards=[COORDINATOR], tags=["exchanges"])
async def api_seats(request: Request, session_id: FromPath[int], round: FromQuery[int | None] = None) -> list[dict[str, Any]]:
    """Every round (or only `round`): tables and the people at them (name, kana, facility) — the seating chart's
    data. Audited."""
    return (await sessions.seating_view(session_id, actor=actor_of(request), purpose="seats",
                                        round_no=round))["seating"]


@get("/api/v1/exchanges/{session_id:int}/cards", guards=[COORDINATOR], tags=["exchanges"])
async def api_cards(request: Request, session_id: FromPath[int]) -> list[NameCard]:
    """The name cards' data: every person with their table in each round, in kana order. Audited."""
    view = await sessions.seating_view(session_id, actor=actor_of(request), purpose="cards")
    cards: dict[int, NameCard] = {}
    for seated in view["seating"]:
        for table in seated["tables"]:
            for p in table["people"]:
                card = cards.setdefault(p["id"], NameCard(id=p["id"], name=p["name"], kana=p.get("kana") or "",
                                                          facility=p.get("facility") or "", tables={}))
                card.tables[str(seated["round"])] = table["table"]
    return sorted(cards.values(), key=lambda c: (c.kana or c.name, c.id))


@get("/api/v1/exchanges/facilities", guards=[COORDINATOR], tags=["exchanges"])
async def api_facilities(request: Request) -> list[FacilityOut]:
    """Facilities with their number of staff, as on the facilities page."""
    return [FacilityOut(id=f["id"], name=f["name"], kind=f["kind"], area=f["area"], staff=f["staff"])
            for f in await directory.facilities_with_counts(actor=actor_of(request))]


@patch("/api/v1/exchanges/facilities/{facility_id:int}", guards=[COORDINATOR], tags=["exchanges"])
async def api_facility_update(request: Request, facility_id: FromPath[int], data: JSONBody[FacilityUpdate]) -> FacilityOut:
    """Rename or re-classify a facility (the name stays unique; audited)."""
    actor = actor_of(request)
    await directory.update_facility(facility_id, actor=actor, name=data.name, kind=data.kind, area=data.area,
                                    kana=data.kana)
    found = [f for f in await directory.facilities_with_counts(actor=actor) if f["id"] == facility_id][0]
    return FacilityOut(id=found["id"], name=found["name"], kind=found["kind"], area=found["area"], staff=found["staff"])


def _staff_out(p: dict[str, Any]) -> StaffOut:
    return StaffOut(id=p["id"], name=p["name"], kana=p["kana"], email=p["email"], locale=p["locale"],
                    active=bool(p["active"]), facility_id=p["facility_id"], facility_name=p["facility_name"] or "",
                    job_title=p["job_title"] or "")


@get("/api/v1/exchanges/staff", guards=[COORDINATOR], tags=["exchanges"])
async def api_staff(request: Request, q: FromQuery[str] = "", facility: FromQuery[int | None] = None) -> list[StaffOut]:
    """Facility staff with their facility (names and addresses: audited), optionally of one facility or matching
    `q` (name, kana or e-mail)."""
    return [_staff_out(p) for p in await directory.list_staff(actor=actor_of(request), facility_id=facility, query=q)]


@get("/api/v1/exchanges/staff/{person_id:int}", guards=[COORDINATOR], tags=["exchanges"])
async def api_staff_member(request: Request, person_id: FromPath[int]) -> StaffOut:
    """One staff member (audited)."""
    return _staff_out(await directory.get_staff(person_id, actor=actor_of(request)))


@patch("/api/v1/exchanges/staff/{person_id:int}", guards=[COORDINATOR], tags=["exchanges"])
async def api_staff_update(request: Request, person_id: FromPath[int], data: JSONBody[StaffUpdate]) -> StaffOut:
    """Correct a staff member's name, kana, facility or job title (audited)."""
    actor = actor_of(request)
    await directory.update_staff(person_id, actor=actor, name=data.name, kana=data.kana, facility_id=data.facility_id,
                                 job_title=data.job_title)
    return _staff_out(await directory.get_staff(person_id, actor=actor))


@get("/api/v1/exchanges/{session_id:int}/my-seats", guards=[LOGGED_IN], tags=["exchanges"])
async def api_my_seats(request: Request, session_id: FromPath[int]) -> dict[str, Any]:
    """The caller's own table in every round (only for people registered for the session)."""
    person_id = request.state.person["id"]
    session = await sessions.get_session(session_id)
    if not await sessions.is_participant(session_id, person_id):
        raise Forbidden("この交流会にお申し込みの方だけが席を確認できます。", code="not_a_participant")
    return {"session_id": session_id, "current_round": session["current_round"],
            "seats": await sessions.seats_of(session_id, person_id)}


@get("/api/v1/exchanges/met", guards=[COORDINATOR], tags=["exchanges"])
async def api_met(request: Request) -> dict[str, Any]:
    """Who has met whom across sessions: person pairs and facility pairs with meeting counts."""
    matrix = await sessions.met_view(actor=actor_of(request))
    return {
        "people": matrix["people"], "facilities": matrix["facilities"],
        "people_pairs": [{"a": a, "b": b, "times": n} for (a, b), n in sorted(matrix["people_pairs"].items())],
        "facility_pairs": [{"a": a, "b": b, "times": n} for (a, b), n in sorted(matrix["facility_pairs"].items())],
    }


@post("/api/v1/exchanges/import/{what:str}", guards=[COORDINATOR], tags=["exchanges"])
async def api_import(request: Request, what: FromPath[str], dry_run: FromQuery[bool] = False) -> Response:
    """Import facilities or staff: the request body is the CSV or XLSX file itself. 422 lists every bad row."""
    if what not in ("facilities", "staff"):
        raise Invalid("取り込めるのは facilities か staff です。", code="unknown_import", status=404)
    data = await request.body()
    run = importing.import_staff if what == "staff" else importing.import_facilities
    report = await run(data, request.headers.get("x-filename", ""), actor=actor_of(request), dry_run=dry_run)
    if not report.ok:
        return Response(content={"status": 422, "code": "import_rejected",
                                 "message": "取り込めない行があるため、何も取り込んでいません。", **report.as_dict()},
                        status_code=422)
    return Response(content=report.as_dict(), status_code=200)


ROUTES = [api_sessions, api_create, api_session, api_update, api_plan, api_replan, api_round, api_mail, api_seats,
          api_cards, api_my_seats, api_met, api_import, api_facilities, api_facility_update, api_staff, api_staff_member,
          api_staff_update]
