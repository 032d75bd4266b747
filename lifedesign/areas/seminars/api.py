"""JSON API of seminars and registration (/api/v1/events, /api/v1/registrations, /api/v1/consent).

Thin: parse, guard, call one events.seminars service, shape the answer. Errors are {status, code, message}.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from events import access, consent, people
from events.errors import Forbidden, Invalid, NotFound
from events.seminars import allocation, draws, exports, invitations, registration, schedule
from lifedesign.security import COORDINATOR, LOGGED_IN, actor_of, client_of


class QuestionIn(msgspec.Struct):
    label: str
    kind: str = "text"
    options: list[str] = []
    required: bool = False
    label_en: str = ""


class EventIn(msgspec.Struct):
    title: str
    starts_at: str
    ends_at: str
    capacity: int
    kind: str = "seminar"
    title_en: str | None = None
    description: str | None = None
    description_en: str | None = None
    venue: str | None = None
    venue_en: str | None = None
    access: str | None = None  # how to get to the venue (最寄り駅、徒歩、駐車場)
    access_en: str | None = None
    registration_opens_at: str | None = None
    registration_closes_at: str | None = None
    cancel_cutoff_hours: int | None = None
    audience: str = "anyone"
    allocation: str = "first_come"
    visibility: str | None = None
    series: str | None = None
    priority_rules: list[str] | None = None  # ward | first_time | high_school | university, drawn first in that order
    max_companions: int | None = None
    offer_hours: int | None = None
    offer_fallback_hours: int | None = None
    ask_accommodation: bool | None = None
    one_per_series: bool | None = None
    questions: list[QuestionIn] = []
    publish: bool = False


class EventPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields present change; the others keep their value (null clears an optional time)."""

    title: str | msgspec.UnsetType = msgspec.UNSET
    starts_at: str | msgspec.UnsetType = msgspec.UNSET
    ends_at: str | msgspec.UnsetType = msgspec.UNSET
    capacity: int | msgspec.UnsetType = msgspec.UNSET
    kind: str | msgspec.UnsetType = msgspec.UNSET
    title_en: str | None | msgspec.UnsetType = msgspec.UNSET
    description: str | None | msgspec.UnsetType = msgspec.UNSET
    description_en: str | None | msgspec.UnsetType = msgspec.UNSET
    venue: str | None | msgspec.UnsetType = msgspec.UNSET
    venue_en: str | None | msgspec.UnsetType = msgspec.UNSET
    access: str | None | msgspec.UnsetType = msgspec.UNSET
    access_en: str | None | msgspec.UnsetType = msgspec.UNSET
    registration_opens_at: str | None | msgspec.UnsetType = msgspec.UNSET
    registration_closes_at: str | None | msgspec.UnsetType = msgspec.UNSET
    cancel_cutoff_hours: int | None | msgspec.UnsetType = msgspec.UNSET
    audience: str | msgspec.UnsetType = msgspec.UNSET
    allocation: str | msgspec.UnsetType = msgspec.UNSET
    visibility: str | None | msgspec.UnsetType = msgspec.UNSET
    series: str | None | msgspec.UnsetType = msgspec.UNSET
    priority_rules: list[str] | None | msgspec.UnsetType = msgspec.UNSET
    max_companions: int | None | msgspec.UnsetType = msgspec.UNSET
    offer_hours: int | None | msgspec.UnsetType = msgspec.UNSET
    offer_fallback_hours: int | None | msgspec.UnsetType = msgspec.UNSET
    ask_accommodation: bool | None | msgspec.UnsetType = msgspec.UNSET
    one_per_series: bool | None | msgspec.UnsetType = msgspec.UNSET
    questions: list[QuestionIn] | msgspec.UnsetType = msgspec.UNSET

    def changes(self) -> dict[str, Any]:
        given = {name: getattr(self, name) for name in self.__struct_fields__
                 if getattr(self, name) is not msgspec.UNSET}
        if "questions" in given:
            given["questions"] = [msgspec.structs.asdict(q) for q in given["questions"]]
        return given


class QuestionOut(msgspec.Struct):
    id: int
    kind: str
    label: str
    label_en: str
    options: list[str]
    required: bool


class EventOut(msgspec.Struct):
    id: int
    kind: str
    title: str
    title_en: str
    description: str
    description_en: str
    venue: str
    venue_en: str
    access: str
    access_en: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    confirmed_count: int
    pending_consent_count: int
    waitlist_count: int
    applied_count: int
    remaining: int
    registration_opens_at: datetime | None
    registration_closes_at: datetime | None
    cancel_cutoff_hours: int
    audience: str
    allocation: str
    status: str
    visibility: str
    series: str
    calendar_sequence: int
    lottery_drawn_at: datetime | None
    lottery_commitment: str
    priority_rules: list[str]
    max_companions: int
    offer_hours: int
    offer_fallback_hours: int
    ask_accommodation: bool
    one_per_series: bool
    questions: list[QuestionOut] = []
    warnings: list[dict[str, Any]] = []


class RegistrationIn(msgspec.Struct):
    """Empty: register yourself. With `email` and `name` (coordinators, at the counter or on the phone): someone
    else; a new person needs `participant` "adult" (18 or older) or "student" with `birth_date` (and, for a
    minor, `guardian_email`), so a minor waits for the guardian's consent like anyone else."""

    email: str | None = None
    name: str | None = None
    answers: dict[str, Any] = {}
    companions: list[str] = []  # e-mail addresses of account holders applying together (all in, or none)
    ward_tie: str = ""  # lives | studies | works | none: asked when the event puts ward residents first
    accommodation: str = ""  # 配慮が必要なこと (手話通訳, 車いす …): seen by coordinators only
    participant: str | None = None  # adult | student
    birth_date: str | None = None  # YYYY-MM-DD
    school_level: str = "high_school"
    school_name: str = ""
    grade: int = 1
    guardian_email: str = ""
    guardian_name: str = ""


class RegistrationOut(msgspec.Struct):
    id: int
    event_id: int
    person_id: int
    status: str
    queue_position: int | None = None
    waitlist_rank: int | None = None
    replayed: bool = False
    person_created: bool | None = None
    lottery_ticket: str | None = None
    priority: int | None = None  # the priority group's value in the public record (higher is drawn first)
    priority_reason: str | None = None  # the rule codes met, comma-separated, or "none"
    offer_expires_at: datetime | None = None  # status offered: answer by then
    companions: list[int] | None = None


class CancelIn(msgspec.Struct):
    reason: str = ""


class DuplicateIn(msgspec.Struct):
    starts_at: str | None = None
    ends_at: str | None = None
    venue: str | None = None
    title: str | None = None


class AttendanceIn(msgspec.Struct):
    status: str


class GuestIn(msgspec.Struct):
    email: str
    name: str = ""


class InvitationsIn(msgspec.Struct):
    guests: list[GuestIn]


class ConsentDecisionIn(msgspec.Struct):
    decision: str = ""  # give | refuse | revoke


def event_out(event: dict[str, Any], warnings: list[dict[str, Any]] | None = None) -> EventOut:
    fields = {f: event[f] for f in EventOut.__struct_fields__ if f not in ("questions", "warnings")}
    questions = [QuestionOut(id=q["id"], kind=q["kind"], label=q["label"], label_en=q["label_en"],
                             options=list(q["options"] or []), required=q["required"]) for q in event.get("questions", [])]
    return EventOut(**fields, questions=questions, warnings=warnings if warnings is not None else event.get("warnings", []))


def registration_out(result: dict[str, Any]) -> RegistrationOut:
    return RegistrationOut(**{f: result.get(f) for f in RegistrationOut.__struct_fields__ if f in result})


async def _visible_event(request: Request, event_id: int) -> dict[str, Any]:
    event = await schedule.get_event(event_id)
    await access.require_event_visible(event, actor_of(request))
    return event


def participant_of(data: RegistrationIn) -> registration.Participant | None:
    """The counter form's "who is this" as the service takes it (None when not given)."""
    if data.participant in (None, ""):
        return None
    if data.participant == "adult":
        return registration.Participant(adult=True)
    if data.participant != "student":
        raise Invalid("participant は adult か student です。", code="invalid_participant", field="participant")
    return registration.Participant(adult=False, student=people.student_info_from(msgspec.structs.asdict(data)))


# ---------------------------------------------------------------- events


@post("/api/v1/events", guards=[COORDINATOR], status_code=HTTP_201_CREATED, tags=["events"])
async def event_create(request: Request, data: JSONBody[EventIn]) -> EventOut:
    """Create an event (a draft unless `publish` is true). Times are ISO 8601 with an offset."""
    fields = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None and k != "publish"}
    fields["questions"] = [msgspec.structs.asdict(q) for q in data.questions]
    actor = actor_of(request)
    event_id = await schedule.create_event(fields, actor=actor)
    if data.publish:
        return event_out(await schedule.publish_event(event_id, actor=actor))
    event = await schedule.get_event(event_id)
    overlaps = await schedule.overlapping_events(event["venue"], event["starts_at"], event["ends_at"], exclude_id=event_id)
    return event_out(event, [{"code": "venue_overlap", "event_id": o["id"],
                              "message": f"同じ会場で時間が重なるイベントがあります: {o['title']}"} for o in overlaps])


@get("/api/v1/events", tags=["events"])
async def event_list(
    request: Request, start: FromQuery[str | None] = None, end: FromQuery[str | None] = None,
    kind: FromQuery[str | None] = None,
) -> list[EventOut]:
    """Upcoming published public events; coordinators may ask for every event between `start` and `end`."""
    if start or end:
        if not actor_of(request).staff:
            raise Forbidden("期間を指定した一覧はコーディネーターのみ利用できます。", code="coordinator_only")
        begin = schedule.parse_time(start, "start")
        finish = schedule.parse_time(end, "end")
        if finish <= begin or finish - begin > timedelta(days=400):
            raise Invalid("期間の指定が正しくありません（400日以内）。", code="invalid_range")
        events = await schedule.list_events_between(begin, finish, kinds=[kind] if kind else None)
    else:
        events = await schedule.list_public_events(kind=kind)
    return [event_out(e) for e in events]


@get("/api/v1/events/{event_id:int}", tags=["events"])
async def event_detail(request: Request, event_id: FromPath[int]) -> EventOut:
    """One event with its remaining places (drafts and private events only for those who may see them: 404)."""
    return event_out(await _visible_event(request, event_id))


@patch("/api/v1/events/{event_id:int}", guards=[COORDINATOR], tags=["events"])
async def event_update(request: Request, event_id: FromPath[int], data: JSONBody[EventPatch]) -> EventOut:
    """Change only the given fields. Changing a published event's time, venue or title mails everyone registered."""
    return event_out(await schedule.update_event(event_id, data.changes(), actor=actor_of(request)))


@post("/api/v1/events/{event_id:int}/publish", guards=[COORDINATOR], status_code=HTTP_200_OK, tags=["events"])
async def event_publish(request: Request, event_id: FromPath[int]) -> EventOut:
    return event_out(await schedule.publish_event(event_id, actor=actor_of(request)))


@post("/api/v1/events/{event_id:int}/cancel", guards=[COORDINATOR], status_code=HTTP_200_OK, tags=["events"])
async def event_cancel(request: Request, event_id: FromPath[int], data: JSONBody[CancelIn | None] = None) -> dict[str, Any]:
    count = await schedule.cancel_event(event_id, actor=actor_of(request), reason=data.reason if data else "")
    return {"id": event_id, "status": "cancelled", "registrations_cancelled": count}


@post("/api/v1/events/{event_id:int}/complete", guards=[COORDINATOR], status_code=HTTP_200_OK, tags=["events"])
async def event_complete(request: Request, event_id: FromPath[int]) -> EventOut:
    return event_out(await schedule.complete_event(event_id, actor=actor_of(request)))


@post("/api/v1/events/{event_id:int}/duplicate", guards=[COORDINATOR], status_code=HTTP_201_CREATED, tags=["events"])
async def event_duplicate(request: Request, event_id: FromPath[int], data: JSONBody[DuplicateIn | None] = None) -> EventOut:
    data = data or DuplicateIn()
    new_id = await schedule.duplicate_event(event_id, actor=actor_of(request), starts_at=data.starts_at,
                                            ends_at=data.ends_at, venue=data.venue, title=data.title)
    return event_out(await schedule.get_event(new_id))


@post("/api/v1/events/{event_id:int}/draw", guards=[COORDINATOR], status_code=HTTP_200_OK, tags=["lottery"])
async def event_draw(request: Request, event_id: FromPath[int]) -> dict[str, Any]:
    return await draws.draw_lottery(event_id, actor=actor_of(request))


@get("/api/v1/events/{event_id:int}/lottery", tags=["lottery"])
async def event_lottery(request: Request, event_id: FromPath[int]) -> dict[str, Any]:
    """The public record of a lottery (no names): the seed's commitment, published when registration opened; after
    the draw the revealed seed, the seats, every ticket with its priority group and size, the winners and the
    waiting list, and whether re-running the draw from this record reproduces it (`ok`).
    `python3 scripts/verify_lottery.py <this URL>` recomputes it with the standard library only."""
    await _visible_event(request, event_id)
    record = await draws.public_record(event_id)
    record["ok"] = (await draws.verify_draw(event_id))["ok"] if record["seed"] else None
    return record


class DrawCancelIn(msgspec.Struct):
    reason: str  # shown on the public record


@post("/api/v1/events/{event_id:int}/lottery/cancel", guards=[COORDINATOR], status_code=HTTP_200_OK, tags=["lottery"])
async def event_lottery_cancel(request: Request, event_id: FromPath[int], data: JSONBody[DrawCancelIn]) -> dict[str, Any]:
    """Declare the draw void (audited; the reason is shown on the public record). A draw is never run again."""
    await draws.cancel_draw(event_id, actor=actor_of(request), reason=data.reason)
    return await draws.public_record(event_id)


class OfferAnswerIn(msgspec.Struct):
    decision: str  # accept | decline


@post("/api/v1/registrations/{registration_id:int}/offer", guards=[LOGGED_IN], status_code=HTTP_200_OK,
      tags=["registrations"])
async def registration_offer(request: Request, registration_id: FromPath[int],
                             data: JSONBody[OfferAnswerIn]) -> dict[str, Any]:
    """Take (`accept`) or decline a seat offered from the waiting list before its deadline."""
    if data.decision not in ("accept", "decline"):
        raise Invalid("decision は accept か decline です。", code="invalid_decision", field="decision")
    return await allocation.answer_offer(registration_id, actor=actor_of(request), accept=data.decision == "accept")


# ---------------------------------------------------------------- registrations


@post("/api/v1/events/{event_id:int}/registrations", guards=[LOGGED_IN], status_code=HTTP_201_CREATED,
      tags=["registrations"])
async def registration_create(
    request: Request, event_id: FromPath[int], data: JSONBody[RegistrationIn | None] = None
) -> Response[RegistrationOut]:
    """Empty body: register yourself. `{"email", "name"}` (coordinators): register someone else.
    An `Idempotency-Key` header makes a retry return the first answer."""
    data = data or RegistrationIn()
    key = request.headers.get("idempotency-key")
    actor = actor_of(request)
    if data.email:
        if not actor.staff:
            raise Forbidden("ほかの方の申込はコーディネーターのみ行えます。", code="coordinator_only")
        result = await registration.register_by_coordinator(
            event_id, email=data.email, name=data.name or "", actor=actor, participant=participant_of(data),
            answers=data.answers, idempotency_key=key)
    else:
        result = await registration.register(event_id, actor.person_id, actor=actor, answers=data.answers,
                                             idempotency_key=key, companions=data.companions,
                                             ward_tie=data.ward_tie, accommodation=data.accommodation)
    headers = {"Idempotent-Replayed": "true"} if result.get("replayed") else {}
    return Response(registration_out(result), status_code=HTTP_201_CREATED, headers=headers)


@get("/api/v1/events/{event_id:int}/registrations", guards=[COORDINATOR], tags=["registrations"])
async def registration_list(request: Request, event_id: FromPath[int], status: FromQuery[str | None] = None) -> list[dict[str, Any]]:
    """Registrations with answers and waiting-list order. Every view is audited (contact details, minors)."""
    return await registration.list_registrations(event_id, actor=actor_of(request), status=status)


@get("/api/v1/events/{event_id:int}/registrations/me", guards=[LOGGED_IN], tags=["registrations"])
async def registration_mine(request: Request, event_id: FromPath[int]) -> dict[str, Any]:
    await _visible_event(request, event_id)
    found = await registration.my_registration(event_id, request.state.person["id"])
    if found is None:
        raise NotFound("このイベントへのお申込みはありません。", code="not_registered")
    return found


@get("/api/v1/me/registrations", guards=[LOGGED_IN], tags=["registrations"])
async def registrations_of_me(request: Request) -> list[dict[str, Any]]:
    return await registration.registrations_of_person(request.state.person["id"])


@get("/api/v1/events/{event_id:int}/checkin", guards=[COORDINATOR], tags=["registrations"])
async def checkin(request: Request, event_id: FromPath[int], q: FromQuery[str] = "") -> list[dict[str, Any]]:
    return await registration.checkin_search(event_id, q, actor=actor_of(request))


@get("/api/v1/events/{event_id:int}/registrations.csv", guards=[COORDINATOR], tags=["registrations"])
async def export_csv(request: Request, event_id: FromPath[int], status: FromQuery[str | None] = None) -> Response[bytes]:
    body = await exports.export(event_id, "csv", actor=actor_of(request), status=status)
    return Response(body, media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{exports.export_filename(event_id, "csv")}"'})


@get("/api/v1/events/{event_id:int}/registrations.xlsx", guards=[COORDINATOR], tags=["registrations"])
async def export_xlsx(request: Request, event_id: FromPath[int], status: FromQuery[str | None] = None) -> Response[bytes]:
    body = await exports.export(event_id, "xlsx", actor=actor_of(request), status=status)
    return Response(body, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", headers={
        "Content-Disposition": f'attachment; filename="{exports.export_filename(event_id, "xlsx")}"'})


@get("/api/v1/registrations/{registration_id:int}", guards=[LOGGED_IN], tags=["registrations"])
async def registration_detail(request: Request, registration_id: FromPath[int]) -> dict[str, Any]:
    return await registration.get_registration(registration_id, actor=actor_of(request))


@delete("/api/v1/registrations/{registration_id:int}", guards=[LOGGED_IN], status_code=HTTP_200_OK, tags=["registrations"])
async def registration_cancel(request: Request, registration_id: FromPath[int]) -> RegistrationOut:
    """Cancel a registration: the person until the cutoff, a coordinator any time. Frees the seat for the next in line."""
    return registration_out(await registration.cancel_registration(registration_id, actor=actor_of(request)))


@post("/api/v1/registrations/{registration_id:int}/leave-waitlist", guards=[LOGGED_IN], status_code=HTTP_200_OK,
      tags=["registrations"])
async def registration_leave(request: Request, registration_id: FromPath[int]) -> RegistrationOut:
    return registration_out(await registration.leave_waitlist(registration_id, actor=actor_of(request)))


@post("/api/v1/registrations/{registration_id:int}/attendance", guards=[COORDINATOR], status_code=HTTP_200_OK,
      tags=["registrations"])
async def registration_attendance(request: Request, registration_id: FromPath[int], data: JSONBody[AttendanceIn]) -> RegistrationOut:
    return registration_out(await registration.mark_attendance(registration_id, data.status, actor=actor_of(request)))


@post("/api/v1/events/{event_id:int}/invitations", guards=[COORDINATOR], status_code=HTTP_201_CREATED,
      tags=["registrations"])
async def invitation_create(request: Request, event_id: FromPath[int], data: JSONBody[InvitationsIn]) -> dict[str, int]:
    """Invite people to a private event (each new invitation is mailed once); only they may see it and register."""
    guests = [(people.normalize_email(g.email), g.name) for g in data.guests]
    return await invitations.invite(event_id, guests, actor=actor_of(request))


@get("/api/v1/events/{event_id:int}/invitations", guards=[COORDINATOR], tags=["registrations"])
async def invitation_list(request: Request, event_id: FromPath[int]) -> list[dict[str, Any]]:
    return await invitations.invitations_of(event_id, actor=actor_of(request))


# ---------------------------------------------------------------- guardian consent (no account; the token is the key)


@get("/api/v1/consent/{token:str}", tags=["consent"])
async def consent_show(request: Request, token: FromPath[str]) -> dict[str, Any]:
    """What the guardian is asked (a seminar place or a home visit), and which answers are possible."""
    request.state.personal = True
    return await consent.view(token)


@post("/api/v1/consent/{token:str}", status_code=HTTP_200_OK, tags=["consent"])
async def consent_decide(request: Request, token: FromPath[str], data: JSONBody[ConsentDecisionIn]) -> dict[str, Any]:
    """`decision`: give | refuse, or revoke a consent given earlier (until the start)."""
    request.state.personal = True
    return await consent.decide(token, data.decision, client=client_of(request))


ROUTES = [
    event_create, event_list, event_detail, event_update, event_publish, event_cancel, event_complete, event_duplicate,
    event_draw, event_lottery, event_lottery_cancel, registration_create, registration_list, registration_mine, registrations_of_me, checkin,
    export_csv, export_xlsx, registration_detail, registration_cancel, registration_leave, registration_attendance,
    registration_offer, invitation_create, invitation_list, consent_show, consent_decide,
]
