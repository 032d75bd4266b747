"""JSON API of the shell: health, login, the current person, people, facilities, outbox, audit."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from events import audit, auth, outbox, people
from events.db import RETRY_AFTER_S, ping
from lifedesign.security import ADMIN, COORDINATOR, LOGGED_IN, actor_of, client_of
from lifedesign.settings import get_settings

HEALTH_TIMEOUT_S = 2.0


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
    phone: str = ""  # hyphenated (090-1234-5678); shown wherever the e-mail is


class StudentIn(msgspec.Struct):
    """A student's school and birth date; a minor (under 18) also needs a guardian's address."""

    school_level: str  # high_school | university
    school_name: str
    grade: int
    birth_date: date
    guardian_email: str = ""
    guardian_name: str = ""
    guardian_phone: str = ""  # optional; Japanese formats, full-width digits accepted


class NewPerson(msgspec.Struct):
    email: str
    name: str
    role: str
    kana: str = ""  # hiragana or katakana
    phone: str = ""  # optional; 090-1234-5678, 045-788-7777, with or without hyphens
    locale: str = "ja"
    student: StudentIn | None = None  # required when role is "student"
    facility_id: int | None = None  # the facility of a facility_staff account


class ProfileIn(msgspec.Struct):
    """Your own details; a field left out stays as it is."""

    name: str | None = None
    kana: str | None = None
    phone: str | None = None  # "" removes it
    guardian_phone: str | None = None  # students only
    reminders: bool | None = None


class TokenIn(msgspec.Struct):
    label: str = ""


class TokenOut(msgspec.Struct):
    id: int
    label: str
    prefix: str  # the first characters, to recognise it; the token itself is shown only once
    created_at: datetime
    revoked_at: datetime | None


class NewToken(msgspec.Struct):
    id: int
    label: str
    token: str  # shown once: only its digest is kept


class OutboxMessageOut(msgspec.Struct):
    id: int
    kind: str
    recipient: str
    subject: str
    status: str
    attempts: int
    due_at: datetime | None
    sent_at: datetime | None
    created_at: datetime | None
    last_error: str


class FacilityIn(msgspec.Struct):
    name: str
    kind: str = "nursery"
    area: str = ""
    kana: str = ""  # the reading: lists are in 五十音順


def person_out(person: dict[str, Any]) -> PersonOut:
    return PersonOut(id=person["id"], email=person["email"], name=person["name"], kana=person["kana"],
                     locale=person["locale"], roles=list(person["roles"]), active=bool(person["active"]),
                     phone=person.get("phone") or "")


@get("/health", tags=["system"])
async def health() -> Response[dict[str, str]]:
    """200 `{"status": "ok"}`, or 503 `{"status": "unavailable"}` with Retry-After within 2 s when the database
    does not answer."""
    kind = get_settings().database_kind
    if await ping(HEALTH_TIMEOUT_S):
        return Response({"status": "ok", "database": kind})
    return Response({"status": "unavailable", "database": kind}, status_code=503,
                    headers={"Retry-After": str(RETRY_AFTER_S)})


@post("/api/v1/auth/magic-link", status_code=HTTP_202_ACCEPTED, tags=["auth"])
async def magic_link(request: Request, data: JSONBody[MagicLinkRequest]) -> Response[dict[str, str]]:
    """Queue a login mail. The answer is the same — and as quick — whether or not the address is known: the
    lookup and the mail happen after the answer has gone."""
    email = await auth.accept_login_request(data.email, client=client_of(request))
    return Response({"status": "accepted", "message": "登録されているアドレスであれば、ログイン用のリンクを送信しました。"},
                    status_code=HTTP_202_ACCEPTED, background=BackgroundTask(auth.send_login_link, email, data.next))


@get("/api/v1/me", guards=[LOGGED_IN], tags=["people"])
async def me(request: Request) -> PersonOut:
    return person_out(request.state.person)


@patch("/api/v1/me", guards=[LOGGED_IN], tags=["people"])
async def me_update(request: Request, data: JSONBody[ProfileIn]) -> PersonOut:
    """Change your name, kana, phone, reminders or (a student) your guardian's phone, as on /profile."""
    person = request.state.person
    await people.update_profile(person["id"], name=person["name"] if data.name is None else data.name,
                                kana=person["kana"] if data.kana is None else data.kana, reminders=data.reminders,
                                phone=data.phone, guardian_phone=data.guardian_phone)
    return person_out(await people.get_person(person["id"]))


@get("/api/v1/people", guards=[COORDINATOR], tags=["people"])
async def people_list(request: Request, role: FromQuery[str | None] = None, q: FromQuery[str] = "") -> list[PersonOut]:
    found = await people.view_people(actor_of(request), role=role, query=q)
    return [person_out(p) for p in found]


@post("/api/v1/people", guards=[ADMIN], tags=["people"])
async def people_create(request: Request, data: JSONBody[NewPerson]) -> PersonOut:
    """Create any account (as /admin/users does; audited). A student needs `student`, facility staff
    `facility_id`."""
    student = people.StudentInfo(**msgspec.structs.asdict(data.student)) if data.student else None
    person_id = await people.add_account(actor_of(request), data.email, data.name, kana=data.kana, phone=data.phone,
                                         locale=data.locale, roles=(data.role,), student=student,
                                         facility_id=data.facility_id)
    return person_out(await people.get_person(person_id))


@post("/api/v1/people/{person_id:int}/disable", guards=[ADMIN], status_code=HTTP_200_OK, tags=["people"])
async def person_disable(request: Request, person_id: FromPath[int]) -> PersonOut:
    """Disable an account: its sessions end at once and its API tokens stop working (audited)."""
    await people.set_active(actor_of(request), person_id, False)
    return person_out(await people.get_person(person_id))


@post("/api/v1/people/{person_id:int}/enable", guards=[ADMIN], status_code=HTTP_200_OK, tags=["people"])
async def person_enable(request: Request, person_id: FromPath[int]) -> PersonOut:
    """Enable a disabled account again (audited)."""
    await people.set_active(actor_of(request), person_id, True)
    return person_out(await people.get_person(person_id))


@get("/api/v1/me/tokens", guards=[LOGGED_IN], tags=["auth"])
async def tokens_list(request: Request) -> list[TokenOut]:
    """Your personal API tokens (revoked ones too), as on /profile."""
    return [TokenOut(id=t["id"], label=t["label"], prefix=t["prefix"], created_at=t["created_at"],
                     revoked_at=t["revoked_at"]) for t in await auth.list_api_tokens(request.state.person["id"])]


@post("/api/v1/me/tokens", guards=[LOGGED_IN], tags=["auth"])
async def tokens_create(request: Request, data: JSONBody[TokenIn]) -> NewToken:
    """A new personal API token. The answer is the only time it is shown."""
    raw_token = await auth.create_api_token(request.state.person["id"], data.label)
    mine = await auth.list_api_tokens(request.state.person["id"])
    return NewToken(id=mine[-1]["id"], label=mine[-1]["label"], token=raw_token)


@delete("/api/v1/me/tokens/{token_id:int}", guards=[LOGGED_IN], status_code=HTTP_200_OK, tags=["auth"])
async def tokens_revoke(request: Request, token_id: FromPath[int]) -> dict[str, str]:
    """Revoke one of your tokens: it stops working at once (the one making this call too, if it is this one)."""
    await auth.revoke_api_token(request.state.person["id"], token_id)
    return {"status": "revoked"}


@get("/api/v1/facilities", tags=["people"])
async def facilities() -> list[dict[str, Any]]:
    """Facility names and kinds, as the sign-up form lists them."""
    return await people.list_facilities()


@post("/api/v1/facilities", guards=[COORDINATOR], tags=["people"])
async def facility_create(data: JSONBody[FacilityIn]) -> dict[str, Any]:
    facility_id = await people.create_facility(data.name, data.kind, data.area, data.kana)
    return {"id": facility_id, "name": data.name, "kind": data.kind, "area": data.area, "kana": data.kana}


@get("/api/v1/outbox", guards=[COORDINATOR], tags=["mail"])
async def outbox_counts(request: Request, status: FromQuery[str | None] = None,
                        limit: FromQuery[int] = 100) -> dict[str, Any]:
    """Counts per state and the latest messages (recipients included: the view is audited)."""
    return await outbox.view(actor_of(request), status=status, limit=limit)


@get("/api/v1/outbox/messages", guards=[COORDINATOR], tags=["mail"])
async def outbox_messages(request: Request, status: FromQuery[str | None] = None,
                          limit: FromQuery[int] = 100) -> list[OutboxMessageOut]:
    """The latest messages, newest first, optionally of one state (queued, inflight, awaiting_retry, sent, failed,
    withdrawn); `limit` 1–500. Read-only, and audited like the outbox page."""
    found = await outbox.view(actor_of(request), status=status, limit=min(max(limit, 1), 500))
    return [OutboxMessageOut(
        id=m["id"], kind=m["kind"], recipient=m["recipient"], subject=m["subject"], status=m["status"],
        attempts=m["attempts"], due_at=m.get("due_at"), sent_at=m.get("sent_at"), created_at=m.get("created_at"),
        last_error=m.get("last_error") or "") for m in found["messages"]]


@post("/api/v1/outbox/{message_id:int}/retry", guards=[COORDINATOR], tags=["mail"])
async def outbox_retry(request: Request, message_id: FromPath[int]) -> Response:
    await outbox.retry_failed(message_id, actor=actor_of(request))
    return Response(content={"status": "queued"}, status_code=202)


@post("/api/v1/outbox/{message_id:int}/release", guards=[COORDINATOR], status_code=HTTP_202_ACCEPTED, tags=["mail"])
async def outbox_release(request: Request, message_id: FromPath[int]) -> dict[str, str]:
    """A stuck row (in flight, its worker's lease run out: the worker is gone) back to the queue, sent at the next
    pass. 409 `not_stuck` while its worker may still be sending it. Audited."""
    await outbox.release_stuck(message_id, actor=actor_of(request))
    return {"status": "awaiting_retry"}


@post("/api/v1/outbox/{message_id:int}/withdraw", guards=[COORDINATOR], status_code=HTTP_200_OK, tags=["mail"])
async def outbox_withdraw(request: Request, message_id: FromPath[int]) -> dict[str, str]:
    """Stop a mail that has not left (queued, waiting for a retry, failed, or stuck); its stored bytes are erased.
    409 `not_withdrawable` once sent or while a live worker sends it. Audited."""
    await outbox.withdraw_message(message_id, actor=actor_of(request))
    return {"status": "withdrawn"}


@get("/api/v1/audit", guards=[ADMIN], tags=["audit"])
async def audit_entries(request: Request, limit: FromQuery[int] = 100, cursor: FromQuery[str] = "",
                        action: FromQuery[str] = "", actor: FromQuery[str] = "", subject_type: FromQuery[str] = "",
                        subject_id: FromQuery[str] = "", since: FromQuery[str] = "",
                        until: FromQuery[str] = "") -> dict[str, Any]:
    """Newest first, `limit` (1–500) at a time; pass `next_cursor` back as `cursor` for the next page (null: the
    end). Filters: action code, actor (e-mail, person id or "system"), subject, since/until (dates, Asia/Tokyo)."""
    wanted = audit.AuditFilter.parse(action=action, actor=actor, subject_type=subject_type, subject_id=subject_id,
                                     since=since, until=until)
    return await audit.search(actor_of(request), wanted, cursor=cursor, limit=min(max(limit, 1), 500))


ROUTES = [health, magic_link, me, me_update, people_list, people_create, person_disable, person_enable, tokens_list,
          tokens_create, tokens_revoke, facilities, facility_create, outbox_counts, outbox_messages, outbox_retry,
          outbox_release, outbox_withdraw, audit_entries]
