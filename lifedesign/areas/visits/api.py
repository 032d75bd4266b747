"""JSON API of home visits (/api/v1/visits/...): rounds, households, slots, requests, matching, answers.

Thin: parse, guard, call one events.visits service. A student sees only their own requests and visits, a
host family only its own slots and the students matched to it; addresses and contacts go through the
audited service functions.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec
from litestar import Request, get, post, put
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from events.errors import Invalid, NotFound
from events.visits import confirmations, households, proposals, requests, rounds
from lifedesign.security import COORDINATOR, LOGGED_IN, actor_of, requires

STUDENT = requires("student")
FAMILY = requires("host_family")
STUDENT_OR_FAMILY = requires("student", "host_family")


class RoundIn(msgspec.Struct):
    name: str
    requests_open_at: datetime
    requests_close_at: datetime
    description: str = ""
    status: str = "open"
    seed: int | None = None


class StatusIn(msgspec.Struct):
    status: str


class HouseholdIn(msgspec.Struct):
    display_name: str
    district: str
    children_ages: list[int] = []
    tags: list[str] = []
    pets: str = ""
    allergy_notes: str = ""
    languages: list[str] = msgspec.field(default_factory=lambda: ["ja"])
    introduction: str = ""


class AddressIn(msgspec.Struct):
    address: str
    postal_code: str = ""
    directions: str = ""
    phone: str = ""


class VettingIn(msgspec.Struct):
    interviewed_on: date
    valid_until: date


class SlotIn(msgspec.Struct):
    starts_at: datetime
    ends_at: datetime
    capacity: int = 2


class WindowIn(msgspec.Struct):
    starts_at: datetime
    ends_at: datetime


class RequestIn(msgspec.Struct):
    windows: list[WindowIn]
    districts: list[str] = []
    wanted_tags: list[str] = []
    avoided_tags: list[str] = []
    note: str = ""
    any_time: bool = False  # any slot offered in the round will do (windows may then be empty)


class RuleIn(msgspec.Struct):
    student_id: int
    household_id: int
    kind: str  # pin | forbid | none


class RunIn(msgspec.Struct):
    seed: int | None = None
    time_limit: float = proposals.DEFAULT_TIME_LIMIT


def _person(request: Request) -> dict[str, Any]:
    return request.state.person


def _staff(request: Request) -> bool:
    return actor_of(request).staff


def _side(request: Request) -> str:
    return "student" if "student" in _person(request)["roles"] else "family"


# ----------------------------------------------------------------------------- rounds


@get("/api/v1/visits/rounds", guards=[LOGGED_IN], tags=["visits"])
async def round_list(request: Request) -> list[dict[str, Any]]:
    """Coordinators see every round; everyone else the open ones."""
    return await rounds.list_rounds(open_only=not _staff(request))


@post("/api/v1/visits/rounds", guards=[COORDINATOR], tags=["visits"], status_code=HTTP_201_CREATED)
async def round_create(request: Request, data: JSONBody[RoundIn]) -> dict[str, Any]:
    round_id = await rounds.create_round(
        actor_of(request), name=data.name, requests_open_at=data.requests_open_at,
        requests_close_at=data.requests_close_at, description=data.description, status=data.status, seed=data.seed)
    return await rounds.get_round(round_id)


@get("/api/v1/visits/rounds/{round_id:int}", guards=[LOGGED_IN], tags=["visits"])
async def round_detail(request: Request, round_id: FromPath[int]) -> dict[str, Any]:
    row = await rounds.get_round(round_id)
    if row["status"] != "open" and not _staff(request):
        raise NotFound("その訪問回は見つかりません。", code="round_not_found")
    return row


@post("/api/v1/visits/rounds/{round_id:int}/status", guards=[COORDINATOR], tags=["visits"], status_code=HTTP_200_OK)
async def round_status(request: Request, round_id: FromPath[int], data: JSONBody[StatusIn]) -> dict[str, Any]:
    await rounds.set_round_status(actor_of(request), round_id, data.status)
    return await rounds.get_round(round_id)


# ----------------------------------------------------------------------------- households


@get("/api/v1/visits/household", guards=[FAMILY], tags=["visits"])
async def household_mine(request: Request) -> dict[str, Any]:
    row = await households.household_of(_person(request)["id"])
    if row is None:
        raise NotFound("家庭のプロフィールはまだ登録されていません。", code="household_not_found")
    return {**row, "address": await households.own_address(_person(request)["id"])}


@put("/api/v1/visits/household", guards=[FAMILY], tags=["visits"])
async def household_save(request: Request, data: JSONBody[HouseholdIn]) -> dict[str, Any]:
    await households.save_household(_person(request)["id"], households.HouseholdProfile(**msgspec.structs.asdict(data)))
    return await households.household_of(_person(request)["id"]) or {}


@put("/api/v1/visits/household/address", guards=[FAMILY], tags=["visits"])
async def household_address_save(request: Request, data: JSONBody[AddressIn]) -> dict[str, Any]:
    await households.save_address(_person(request)["id"], households.Address(
        postal_code=data.postal_code, address=data.address, directions=data.directions, phone=data.phone))
    return {"status": "saved"}


@get("/api/v1/visits/households", guards=[COORDINATOR], tags=["visits"])
async def household_list(request: Request) -> list[dict[str, Any]]:
    """Profiles only; an address is read one by one through the audited address endpoint."""
    return await households.list_households(actor=actor_of(request))


@post("/api/v1/visits/households/{household_id:int}/vetting", guards=[COORDINATOR], tags=["visits"],
      status_code=HTTP_200_OK)
async def household_vetting(request: Request, household_id: FromPath[int], data: JSONBody[VettingIn]) -> dict[str, Any]:
    actor = actor_of(request)
    await households.record_vetting(actor, household_id, interviewed_on=data.interviewed_on,
                                    valid_until=data.valid_until)
    return await households.view_household(household_id, actor=actor)


@get("/api/v1/visits/households/{household_id:int}/address", guards=[COORDINATOR], tags=["visits"])
async def household_address(request: Request, household_id: FromPath[int]) -> dict[str, Any]:
    return await households.read_address(household_id, actor=actor_of(request))


# ----------------------------------------------------------------------------- slots


@get("/api/v1/visits/rounds/{round_id:int}/slots", guards=[requires("host_family", "coordinator")], tags=["visits"])
async def slot_list(request: Request, round_id: FromPath[int]) -> list[dict[str, Any]]:
    """Coordinators see all slots of the round; a family only its own."""
    if _staff(request):
        return await rounds.view_slots(round_id, actor=actor_of(request))
    household = await households.household_of(_person(request)["id"])
    return await rounds.slots_of_round(round_id, household_id=household["id"]) if household else []


@post("/api/v1/visits/rounds/{round_id:int}/slots", guards=[FAMILY], tags=["visits"], status_code=HTTP_201_CREATED)
async def slot_create(request: Request, round_id: FromPath[int], data: JSONBody[SlotIn]) -> dict[str, Any]:
    slot_id = await rounds.offer_slot(_person(request)["id"], round_id, starts_at=data.starts_at,
                                      ends_at=data.ends_at, capacity=data.capacity)
    return {"id": slot_id, "round": round_id, "starts_at": data.starts_at, "ends_at": data.ends_at,
            "capacity": data.capacity, "status": "offered"}


@post("/api/v1/visits/slots/{slot_id:int}/withdraw", guards=[requires("host_family", "coordinator")],
      tags=["visits"], status_code=HTTP_200_OK)
async def slot_withdraw(request: Request, slot_id: FromPath[int]) -> dict[str, str]:
    await rounds.withdraw_slot(_person(request)["id"], slot_id, as_coordinator=_staff(request))
    return {"status": "withdrawn"}


# ----------------------------------------------------------------------------- requests


def _request_input(data: RequestIn) -> requests.RequestInput:
    return requests.RequestInput(windows=[(w.starts_at, w.ends_at) for w in data.windows], districts=data.districts,
                                 wanted_tags=data.wanted_tags, avoided_tags=data.avoided_tags, note=data.note,
                                 any_time=data.any_time)


@post("/api/v1/visits/rounds/{round_id:int}/requests", guards=[STUDENT], tags=["visits"],
      status_code=HTTP_201_CREATED)
async def request_submit(request: Request, round_id: FromPath[int], data: JSONBody[RequestIn]) -> dict[str, Any]:
    request_id = await requests.submit_request(_person(request)["id"], round_id, _request_input(data))
    return await requests.get_request(request_id, actor=actor_of(request))


@get("/api/v1/visits/rounds/{round_id:int}/requests", guards=[COORDINATOR], tags=["visits"])
async def request_list(request: Request, round_id: FromPath[int]) -> list[dict[str, Any]]:
    return await requests.view_requests(round_id, actor=actor_of(request))


@get("/api/v1/visits/requests", guards=[STUDENT], tags=["visits"])
async def request_mine(request: Request) -> list[dict[str, Any]]:
    return await requests.requests_of_student(_person(request)["id"])


@get("/api/v1/visits/requests/{request_id:int}", guards=[requires("student", "coordinator")], tags=["visits"])
async def request_detail(request: Request, request_id: FromPath[int]) -> dict[str, Any]:
    return await requests.get_request(request_id, actor=actor_of(request))


@post("/api/v1/visits/requests/{request_id:int}/withdraw", guards=[STUDENT], tags=["visits"],
      status_code=HTTP_200_OK)
async def request_withdraw(request: Request, request_id: FromPath[int]) -> dict[str, str]:
    await requests.withdraw_request(_person(request)["id"], request_id)
    return {"status": "withdrawn"}


# ----------------------------------------------------------------------------- matching


@get("/api/v1/visits/rounds/{round_id:int}/rules", guards=[COORDINATOR], tags=["visits"])
async def rule_list(request: Request, round_id: FromPath[int]) -> list[dict[str, Any]]:
    return await proposals.rules_of_round(round_id, actor=actor_of(request))


@post("/api/v1/visits/rounds/{round_id:int}/rules", guards=[COORDINATOR], tags=["visits"], status_code=HTTP_200_OK)
async def rule_set(request: Request, round_id: FromPath[int], data: JSONBody[RuleIn]) -> list[dict[str, Any]]:
    """Pin or forbid a (student, household) pair for the next runs; kind "none" removes it."""
    actor = actor_of(request)
    await proposals.set_rule(actor, round_id, student_id=data.student_id, household_id=data.household_id,
                             kind=data.kind)
    return await proposals.rules_of_round(round_id, actor=actor)


@post("/api/v1/visits/rounds/{round_id:int}/matching", guards=[COORDINATOR], tags=["visits"],
      status_code=HTTP_201_CREATED)
async def matching_run(request: Request, round_id: FromPath[int], data: JSONBody[RunIn]) -> dict[str, Any]:
    """Run the matching (accepted and offered visits stay pinned) and store a draft proposal."""
    if not 0.5 <= data.time_limit <= 60:
        raise Invalid("計算時間は0.5〜60秒で指定してください。", code="invalid_time_limit", field="time_limit")
    actor = actor_of(request)
    proposal_id = await proposals.run_matching(round_id, actor, seed=data.seed, time_limit=data.time_limit)
    return await proposals.proposal_view(proposal_id, actor=actor)


@get("/api/v1/visits/proposals/{proposal_id:int}", guards=[COORDINATOR], tags=["visits"])
async def proposal_detail(request: Request, proposal_id: FromPath[int]) -> dict[str, Any]:
    return await proposals.proposal_view(proposal_id, actor=actor_of(request))


@post("/api/v1/visits/proposals/{proposal_id:int}/confirm", guards=[COORDINATOR], tags=["visits"],
      status_code=HTTP_200_OK)
async def proposal_confirm(request: Request, proposal_id: FromPath[int]) -> dict[str, Any]:
    """Offer the proposal to students and families (they confirm or decline)."""
    return await proposals.confirm_proposal(proposal_id, actor_of(request))


# ----------------------------------------------------------------------------- answers and disclosure


@get("/api/v1/visits/matches", guards=[STUDENT_OR_FAMILY], tags=["visits"])
async def match_mine(request: Request) -> list[dict[str, Any]]:
    person_id = _person(request)["id"]
    if _side(request) == "student":
        return await confirmations.matches_of_student(person_id)
    return await confirmations.matches_of_family(person_id)


async def _answer(request: Request, match_id: int, accept: bool) -> dict[str, Any]:
    status = await confirmations.respond(match_id, _person(request)["id"], side=_side(request), accept=accept)
    return {"id": match_id, "status": status}


@post("/api/v1/visits/matches/{match_id:int}/confirm", guards=[STUDENT_OR_FAMILY], tags=["visits"],
      status_code=HTTP_200_OK)
async def match_confirm(request: Request, match_id: FromPath[int]) -> dict[str, Any]:
    return await _answer(request, match_id, True)


@post("/api/v1/visits/matches/{match_id:int}/decline", guards=[STUDENT_OR_FAMILY], tags=["visits"],
      status_code=HTTP_200_OK)
async def match_decline(request: Request, match_id: FromPath[int]) -> dict[str, Any]:
    return await _answer(request, match_id, False)


@get("/api/v1/visits/matches/{match_id:int}/address", guards=[STUDENT], tags=["visits"])
async def match_address(request: Request, match_id: FromPath[int]) -> dict[str, Any]:
    """The family's address, once both sides confirmed and until a week after the visit (audited)."""
    match = await confirmations.match_of(match_id, _person(request)["id"], side="student")
    return await households.read_address(match["household"], actor=actor_of(request))


@get("/api/v1/visits/matches/{match_id:int}/contact", guards=[FAMILY], tags=["visits"])
async def match_contact(request: Request, match_id: FromPath[int]) -> dict[str, Any]:
    """The visiting student's contact, on the same terms as the address (audited)."""
    match = await confirmations.match_of(match_id, _person(request)["id"], side="family")
    return await households.read_student_contact(match["student"], actor=actor_of(request))


ROUTES = [round_list, round_create, round_detail, round_status, household_mine, household_save,
          household_address_save, household_list, household_vetting, household_address, slot_list, slot_create,
          slot_withdraw, request_submit, request_list, request_mine, request_detail, request_withdraw, rule_list,
          rule_set, matching_run, proposal_detail, proposal_confirm, match_mine, match_confirm, match_decline,
          match_address, match_contact]
