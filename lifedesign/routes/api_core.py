"""JSON API of the shell: health, login, the current person, people, facilities, outbox, audit."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED

from events import audit, auth, outbox, people
from events.db import raw
from lifedesign.security import ADMIN, COORDINATOR, LOGGED_IN, actor_of, client_of
from lifedesign.settings import get_settings


class MagicLinkRequest(msgspec.Struct):
    email: str
    next: str = "/"


class PersonOut(msgspec.Struct):
    id: int
    email: str
    name: str
    kana: str
    locale: str
    roles: list[str]
    active: bool


class NewPerson(msgspec.Struct):
    email: str
    name: str
    role: str
    kana: str = ""
    locale: str = "ja"


class FacilityIn(msgspec.Struct):
    name: str
    kind: str = "nursery"
    area: str = ""


def person_out(person: dict[str, Any]) -> PersonOut:
    return PersonOut(id=person["id"], email=person["email"], name=person["name"], kana=person["kana"],
                     locale=person["locale"], roles=list(person["roles"]), active=bool(person["active"]))


@get("/health", tags=["system"])
async def health() -> dict[str, str]:
    await raw("SELECT 1 AS ok")
    return {"status": "ok", "database": get_settings().database_kind}


@post("/api/v1/auth/magic-link", status_code=HTTP_202_ACCEPTED, tags=["auth"])
async def magic_link(request: Request, data: JSONBody[MagicLinkRequest]) -> dict[str, str]:
    """Queue a login mail. The answer is the same whether or not the address is known."""
    await auth.request_login(data.email, client=client_of(request), next_path=data.next)
    return {"status": "accepted", "message": "登録されているアドレスであれば、ログイン用のリンクを送信しました。"}


@get("/api/v1/me", guards=[LOGGED_IN], tags=["people"])
async def me(request: Request) -> PersonOut:
    return person_out(request.state.person)


@get("/api/v1/people", guards=[COORDINATOR], tags=["people"])
async def people_list(request: Request, role: FromQuery[str | None] = None, q: FromQuery[str] = "") -> list[PersonOut]:
    found = await people.view_people(actor_of(request), role=role, query=q)
    return [person_out(p) for p in found]


@post("/api/v1/people", guards=[ADMIN], tags=["people"])
async def people_create(request: Request, data: JSONBody[NewPerson]) -> PersonOut:
    person_id = await people.add_account(actor_of(request), data.email, data.name, kana=data.kana, locale=data.locale,
                                         roles=(data.role,))
    return person_out(await people.get_person(person_id))


@get("/api/v1/facilities", tags=["people"])
async def facilities() -> list[dict[str, Any]]:
    return await people.list_facilities()


@post("/api/v1/facilities", guards=[COORDINATOR], tags=["people"])
async def facility_create(data: JSONBody[FacilityIn]) -> dict[str, Any]:
    facility_id = await people.create_facility(data.name, data.kind, data.area)
    return {"id": facility_id, "name": data.name, "kind": data.kind, "area": data.area}


@get("/api/v1/outbox", guards=[COORDINATOR], tags=["mail"])
async def outbox_counts(request: Request, status: FromQuery[str | None] = None,
                        limit: FromQuery[int] = 100) -> dict[str, Any]:
    """Counts per state and the latest messages (recipients included: the view is audited)."""
    return await outbox.view(actor_of(request), status=status, limit=limit)


@post("/api/v1/outbox/{message_id:int}/retry", guards=[COORDINATOR], tags=["mail"])
async def outbox_retry(request: Request, message_id: FromPath[int]) -> Response:
    await outbox.retry_failed(message_id, actor=actor_of(request))
    return Response(content={"status": "queued"}, status_code=202)


@get("/api/v1/audit", guards=[ADMIN], tags=["audit"])
async def audit_entries(request: Request, limit: FromQuery[int] = 100,
                        action: FromQuery[str | None] = None) -> list[dict[str, Any]]:
    return await audit.view(actor_of(request), limit=min(max(limit, 1), 1000), action=action)


ROUTES = [health, magic_link, me, people_list, people_create, facilities, facility_create, outbox_counts,
          outbox_retry, audit_entries]
