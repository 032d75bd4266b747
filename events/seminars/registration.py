"""Registration for seminars and exchange sessions: who may register when, and the views of registrations.

Public functions (each one transaction; refusals raise events.errors with a stable `code`):

- `register(event_id, person_id, *, actor=None, answers=None, idempotency_key=None) -> dict`
      {"id", "event_id", "person_id", "status", "queue_position", "waitlist_rank", "replayed"}; status is
      confirmed | waitlisted | pending_consent | applied. Codes: event_not_found, event_not_published,
      event_cancelled, event_closed, event_started, registration_not_open, registration_closed,
      audience_mismatch, already_registered, account_disabled, invalid_answer, answer_required, unknown_question,
      guardian_missing, visit_by_match_only, busy (503).
- `register_by_coordinator(event_id, *, email, name, actor, participant=None, answers=None,
      idempotency_key=None) -> dict`   telephone / counter registration: the person is found by e-mail or
      created; a new person (or one without a student profile, for a students' event) needs `participant`
      (an adult, or a student with a birth date), so a minor registered this way waits for the guardian's
      consent like anyone else. Skips window, audience and required answers; adds "person_created".
- `cancel_registration(registration_id, *, actor, reason="") -> dict`
      the person until `event.cancel_cutoff_hours` before the start (code cancel_cutoff_passed; leaving the
      waiting list or withdrawing a lottery application is allowed until the start); coordinators any time.
- `leave_waitlist(registration_id, *, actor) -> dict`   only for waitlisted / applied (code not_waitlisted)
- `mark_attendance(registration_id, status, *, actor) -> dict`   attended | no_show | confirmed (undo)
- `get_registration(registration_id, *, actor) -> dict`, `my_registration(event_id, person_id) -> dict | None`,
  `registrations_of_person(person_id) -> list[dict]`
- `list_registrations(event_id, *, actor, status=None) -> list[dict]`   the coordinators' view (audited)
- `checkin_search(event_id, query, *, actor) -> list[dict]`   seat holders matching a name, kana or e-mail (audited)
- `eligibility(event, person_id) -> dict | None`   what the register button would be refused with, if anything

Places themselves — seats, the waiting list, consent, promotion — are the place ledger's (events.places);
the mails are events.seminars.notices'.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from events import access, audit, consent, people, places
from events.access import Actor
from events.core.tables import Person, PersonRole, StaffMembership, StudentProfile
from events.db import aware, decoded, engine, is_sqlite, is_unique_violation, raw, utcnow, write_transaction
from events.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from events.seminars import allocation, schedule
from events.seminars.schedule import questions_of, validate_answers
from events.seminars.tables import (
    LIVE_STATES,
    REGISTRATION_STATES,
    SEAT_HOLDING_STATES,
    Event,
    GuardianConsent,
    IdempotentRequest,
    Registration,
)

STUDENT_AUDIENCES = ("high_school", "university", "students")
AUDIENCE_NAMES = {"high_school": "高校生", "university": "大学生", "students": "高校生・大学生",
                  "facility_staff": "保育・教育施設の職員"}


# ---------------------------------------------------------------- reading


async def _person(person_id: int) -> dict[str, Any]:
    person = await Person.select(Person.id, Person.email, Person.name, Person.kana, Person.locale, Person.active,
                                 Person.reminders).where(Person.id == person_id).first()
    if person is None:
        raise NotFound("その利用者は見つかりません。", code="person_not_found")
    person["roles"] = {r["role"] for r in await PersonRole.select(PersonRole.role).where(PersonRole.person == person_id)}
    person["profile"] = await StudentProfile.select().where(StudentProfile.person == person_id).first()
    return person


_EVENT_NAMES = tuple(c._meta.db_column_name for c in Event._meta.columns)
_EVENT_COLUMNS = ", ".join(f"event.{name}" for name in _EVENT_NAMES)
_PROFILE_COLUMNS = [c._meta.db_column_name for c in StudentProfile._meta.columns]


async def _snapshot(event_id: int, person_id: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """What register() checks, in one statement: the event, the person with roles and student profile, and
    whether they already hold a live registration, are invited, and whether the event asks questions; on
    PostgreSQL also a reserved registration id (places.RESERVE_ID)."""
    roles = "group_concat(role, ',')" if is_sqlite() else "string_agg(role, ',')"
    profile = ", ".join(f"student_profile.{name} AS profile_{name}" for name in _PROFILE_COLUMNS)
    rows = await raw(
        f"SELECT {_EVENT_COLUMNS}, person.id AS person_id, person.email AS person_email, person.name AS person_name, "
        f"person.kana AS person_kana, person.locale AS person_locale, person.active AS person_active, "
        f"person.reminders AS person_reminders, {profile}, "
        f"(SELECT {roles} FROM person_role WHERE person_role.person = person.id) AS person_roles, "
        "EXISTS(SELECT 1 FROM registration WHERE registration.event = event.id AND registration.person = person.id"
        " AND registration.status != 'cancelled') AS already, "
        "EXISTS(SELECT 1 FROM event_invitation WHERE event_invitation.event = event.id"
        " AND event_invitation.person = person.id) AS invited, "
        "EXISTS(SELECT 1 FROM event_question WHERE event_question.event = event.id) AS has_questions, "
        f"{'NULL' if is_sqlite() else places.RESERVE_ID} AS reserved_id "
        "FROM event JOIN person ON person.id = {} LEFT JOIN student_profile ON student_profile.person = person.id "
        "WHERE event.id = {}", person_id, event_id)
    if not rows:
        if not await Event.exists().where(Event.id == event_id):
            raise NotFound("そのイベントは見つかりません。", code="event_not_found")
        raise NotFound("その利用者は見つかりません。", code="person_not_found")
    row = rows[0]
    event = decoded({key: row[key] for key in _EVENT_NAMES}, Event)
    profile_row = {name: row[f"profile_{name}"] for name in _PROFILE_COLUMNS}
    person = {"id": row["person_id"], "email": row["person_email"], "name": row["person_name"],
              "kana": row["person_kana"], "locale": row["person_locale"], "active": bool(row["person_active"]),
              "reminders": bool(row["person_reminders"]),
              "roles": set(filter(None, (row["person_roles"] or "").split(","))),
              "profile": decoded(profile_row, StudentProfile) if profile_row["id"] is not None else None}
    facts: dict[str, Any] = {key: bool(row[key]) for key in ("already", "invited", "has_questions")}
    facts["reserved_id"] = row["reserved_id"]  # PostgreSQL: the registration's id, should it be settled at commit
    return event, person, facts


def _is_minor(person: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    profile = person.get("profile") or {}
    return consent.is_minor(profile.get("birth_date"), places.event_day(event))


async def check_audience(event: Mapping[str, Any], person: Mapping[str, Any]) -> None:
    audience = event["audience"]
    level = (person.get("profile") or {}).get("school_level")
    if audience == "anyone":
        return
    if audience == "high_school" and level == "high_school":
        return
    if audience == "university" and level == "university":
        return
    if audience == "students" and level in ("high_school", "university"):
        return
    if audience == "facility_staff" and (
        "facility_staff" in person["roles"]
        or await StaffMembership.exists().where(StaffMembership.person == person["id"])
    ):
        return
    raise Forbidden(f"このイベントは{AUDIENCE_NAMES.get(audience, audience)}の方が対象です。", code="audience_mismatch")


def check_open(event: Mapping[str, Any], *, by_coordinator: bool) -> None:
    now = utcnow()
    if event["status"] == "cancelled":
        raise Conflict("このイベントは中止になりました。", code="event_cancelled")
    if event["status"] == "completed":
        raise Conflict("このイベントは終了しました。", code="event_closed")
    if event["status"] != "published":
        raise Conflict("このイベントはまだ公開されていません。", code="event_not_published")
    if by_coordinator:
        if event["ends_at"] <= now:
            raise Conflict("このイベントは終了しました。", code="event_closed")
        return
    if event["starts_at"] <= now:
        raise Conflict("開始時刻を過ぎたため、申込を受け付けていません。", code="event_started")
    window = schedule.registration_window(event, now)  # the one definition, also shown on the lists
    if window == "before":
        raise Conflict("申込受付はまだ始まっていません。", code="registration_not_open")
    if window == "closed":
        raise Conflict("申込受付は締め切りました。", code="registration_closed")


async def eligibility(event: Mapping[str, Any], person_id: int) -> dict[str, str] | None:
    """Read-only preview of register()'s refusals (window, state, audience, who may hold a place); None when the
    register button may be shown. It runs the same checks, so the page and the service never disagree."""
    try:
        if event["kind"] == "home_visit":
            raise Forbidden("家庭訪問の参加者は、マッチングで双方が参加を確定した方だけです。", code="visit_by_match_only")
        check_open(event, by_coordinator=False)
        person = await _person(person_id)
        if not person["active"]:
            return {"code": "account_disabled", "message": "このアカウントは利用できません。"}
        await check_audience(event, person)
    except DomainError as exc:
        return {"code": exc.code, "message": exc.message}
    return None


async def _waitlist_rank(event_id: int, queue_position: int | None) -> int | None:
    return await places.waitlist_rank(event_id, queue_position)


# ---------------------------------------------------------------- register


_UNLOCKED_RUNS = 3  # runs settled at commit before one under the event lock (each refusal means another commit won)


def _result(row: Mapping[str, Any], rank: int | None, *, replayed: bool = False) -> dict[str, Any]:
    return {"id": row["id"], "event_id": row["event"], "person_id": row["person"], "status": row["status"],
            "queue_position": row["queue_position"], "waitlist_rank": rank, "replayed": replayed}


async def _replay(person_id: int, scope: str, key: str) -> dict[str, Any] | None:
    prior = await IdempotentRequest.select(IdempotentRequest.response).where(
        (IdempotentRequest.person == person_id) & (IdempotentRequest.scope == scope) & (IdempotentRequest.key == key)
    ).output(load_json=True).first()
    if not prior:
        return None
    response = {**prior["response"], "replayed": True}
    if response.get("status") == "waitlisted":  # the place in line as it is now (settled at commit, or moved up)
        response["queue_position"], response["waitlist_rank"] = await places.place_in_line(response["id"])
    return response


def _already_registered() -> Conflict:
    return Conflict("このイベントには既にお申し込みいただいています。", code="already_registered")


async def register(
    event_id: int,
    person_id: int,
    *,
    actor: Actor | None = None,
    answers: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    companions: list[str] | None = None,
    ward_tie: str = "",
    accommodation: str = "",
    _person_created: bool = False,
) -> dict[str, Any]:
    """Register `person_id` — by themselves (`actor` the person; the default), or by a coordinator — with up to
    `Event.max_companions` others (by e-mail: one application, all in or none). A lottery application records its
    ticket and priority group (events.seminars.allocation); `accommodation` is 配慮の希望 for coordinators only."""
    actor = actor or Actor(person_id)
    by_coordinator = actor.staff and actor.person_id != person_id
    if actor.person_id != person_id and not by_coordinator:
        raise Forbidden("ほかの方の申込はコーディネーターのみ行えます。", code="coordinator_only")
    requester = actor.person_id or person_id
    scope = f"register:{event_id}:{person_id}"
    key = (idempotency_key or "").strip()[:200] or None
    # Reads and checks first, in one statement and outside the write lock; the ledger decides the seat late.
    if key and (prior := await _replay(requester, scope, key)):
        return prior
    event, person, facts = await _snapshot(event_id, person_id)
    if not by_coordinator:
        await access.require_event_visible(event, actor)
    if not person["active"]:
        raise Forbidden("このアカウントは利用できません。", code="account_disabled")
    check_open(event, by_coordinator=by_coordinator)
    if not by_coordinator:
        await check_audience(event, person)
    clean = validate_answers(await questions_of(event_id) if facts["has_questions"] else [], answers,
                             strict=not by_coordinator)
    lottery_event = event["allocation"] == "lottery"
    tie = allocation.clean_ward_tie(ward_tie, required=lottery_event and "ward" in (event["priority_rules"] or [])
                                    and not by_coordinator)
    needs = " ".join(str(accommodation or "").split())[:1000] if event["ask_accommodation"] else ""
    others = await allocation.companions_of(companions or [], event, person_id)
    group = [person]
    for other in others:
        companion = await _person(other)
        if not by_coordinator:
            await check_audience(event, companion)
        group.append(companion)
    if facts["already"] or (others and await Registration.exists().where(
        (Registration.event == event_id) & Registration.person.is_in(others) & (Registration.status != "cancelled")
    )):
        raise _already_registered()
    for member in group:
        if _is_minor(member, event) and not ((member.get("profile") or {}).get("guardian_email") or "").strip():
            raise Invalid("18歳未満の方は、保護者のメールアドレスを登録してから申し込んでください。",
                          code="guardian_missing")
    await allocation.check_one_per_series(event, [p["id"] for p in group])
    source = places.Source.COORDINATOR if by_coordinator else (
        places.Source.INVITATION if facts["invited"] else places.Source.SELF)
    nested = engine().current_transaction.get() is not None

    async def write() -> dict[str, Any]:
        async with write_transaction():
            ticket = ""
            if event["allocation"] == "lottery" and not event["lottery_drawn_at"]:
                await allocation.ensure_commitment(event_id)
                ticket = allocation.new_ticket()
            group_key = secrets.token_hex(8) if len(group) > 1 else ""
            applicants = []
            for index, member in enumerate(group):
                priority, reason = await allocation.priority_of(event, member["id"], tie)
                applicants.append(places.Applicant(member["id"], clean if index == 0 else {}, {
                    "lottery_ticket": ticket, "priority": priority, "priority_reason": reason,
                    "group_key": group_key, "accommodation": needs if index == 0 else "", "ward_tie": tie},
                    person={**{k: member[k] for k in ("id", "email", "name", "locale", "reminders")},
                            "birth_date": (member.get("profile") or {}).get("birth_date")}))
            # The ledger re-reads what decides (status, seats, the draw) under the lock; the rest stands.
            rows = await places.place_group(event_id, applicants, source=source, idempotency_key=key,
                                            registered_by=actor.person_id if by_coordinator else None, event=event,
                                            reserved_id=facts["reserved_id"])
            row = rows[0]
            result = _result(row, row.get("waitlist_rank"))
            result.update(lottery_ticket=row["lottery_ticket"], priority=row["priority"],
                          priority_reason=row["priority_reason"], companions=[r["id"] for r in rows[1:]])
            if _person_created:
                result["person_created"] = True
            if by_coordinator:
                await audit.record(actor, "staff_registered_person", subject_type="registration", subject_id=row["id"],
                                   detail={"event_id": event_id, "status": row["status"]})
            if key:
                await IdempotentRequest.insert(IdempotentRequest(
                    key=key, person=requester, scope=scope, response=result, status_code=201, created_at=utcnow(),
                ))
            return result

    try:
        if nested:
            return await write()
        for run in range(_UNLOCKED_RUNS):
            try:  # the seat or the place in line is settled at commit: on the snapshot, then on what is committed
                async with places.settle_at_commit(fresh=run > 0):
                    result = await write()
                break
            except places.Unsettled:  # the seats moved while the entry was written
                continue
        else:
            result = await write()  # the lock decides at once
        if result["status"] == "waitlisted" and result["queue_position"] == places.SETTLED_AT_COMMIT:
            result["queue_position"], result["waitlist_rank"] = await places.place_in_line(result["id"])
        return result
    except Exception as exc:
        if not is_unique_violation(exc):
            raise
        if nested:  # the outer transaction is spoilt (PostgreSQL); its caller retries as a whole
            raise _already_registered() from exc
    # A UNIQUE index refused a second live registration (or a second idempotency record): a racing twin won.
    if key:
        async with write_transaction():
            prior = await _replay(requester, scope, key)
        if prior:
            return prior
    raise _already_registered()


@dataclass(frozen=True)
class Participant:
    """Who a coordinator registers at the counter: an adult, or a student with a birth date (and for a minor,
    the guardian's e-mail)."""

    adult: bool = True
    student: people.StudentInfo | None = None

    def validated(self, today: date) -> Participant:
        if self.adult:
            return Participant(adult=True)
        if self.student is None:
            raise Invalid("生年月日を入力してください。", code="birth_date_required", field="birth_date")
        return Participant(adult=False, student=self.student.validated(today))


async def _counter_person(email: str, name: str, participant: Participant | None,
                          audience: str) -> tuple[int, bool]:
    """Find or create the person registered at the counter, recording their student profile when given."""
    email = people.normalize_email(email)
    today = utcnow().date()
    participant = participant.validated(today) if participant else None
    existing = await people.find_by_email(email)
    if existing is None:
        if participant is None:
            raise Invalid("参加者が18歳以上の方か、学生（生年月日）かを入力してください。", code="participant_required",
                          field="participant")
        roles = ("student",) if participant.student else ()
        return await people.create_person(email, name, roles=roles, student=participant.student), True
    profile = await people.student_profile(existing["id"])
    if profile is None and participant is not None and participant.student is not None:
        await people.add_student_profile(existing["id"], participant.student)
    elif profile is None and participant is None and audience in STUDENT_AUDIENCES:
        raise Invalid("この方の生年月日が登録されていません。18歳以上の方か、生年月日を入力してください。",
                      code="participant_required", field="participant")
    return existing["id"], False


async def register_by_coordinator(
    event_id: int, *, email: str, name: str, actor: Actor, participant: Participant | None = None,
    answers: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Telephone and counter registrations: the person is found by e-mail or created (see the module doc)."""
    access.require_staff(actor)
    async with write_transaction():
        event = await places.event_row(event_id)
        person_id, created = await _counter_person(email, name, participant, event["audience"])
        result = await register(event_id, person_id, actor=actor, answers=answers, idempotency_key=idempotency_key,
                                _person_created=created)
    result.setdefault("person_created", created)
    return result


# ---------------------------------------------------------------- cancel, leave, attendance


async def cancel_registration(registration_id: int, *, actor: Actor, reason: str = "") -> dict[str, Any]:
    async with write_transaction():
        row = await places.registration_row(registration_id)
        if not actor.staff and row["person"] != actor.person_id:
            raise NotFound("その申込は見つかりません。", code="registration_not_found")
        if row["status"] == "cancelled":
            raise Conflict("この申込は既に取り消されています。", code="already_cancelled")
        if row["status"] in ("attended", "no_show"):
            raise Conflict("出欠が記録された申込は取り消せません。", code="attendance_recorded")
        event = await places.event_row(row["event"])
        if not actor.staff:
            now = utcnow()
            if event["starts_at"] <= now:
                raise Conflict("開始時刻を過ぎたため、取り消しできません。", code="event_started")
            cutoff = event["starts_at"] - timedelta(hours=event["cancel_cutoff_hours"])
            if row["status"] in SEAT_HOLDING_STATES and now > cutoff:
                raise Conflict(
                    f"開始{event['cancel_cutoff_hours']}時間前を過ぎたため、ウェブでの取り消しはできません。"
                    "お手数ですが、こども家庭支援課までお電話ください。", code="cancel_cutoff_passed")
        updated = await places.end(registration_id, reason="cancelled", by=actor.person_id,
                                   detail={"reason": reason[:500], "by_coordinator": actor.staff})
        if updated is None:
            raise Conflict("申込の状態が変わりました。画面を更新してください。", code="registration_changed")
        if actor.staff:
            await audit.record(actor, "staff_cancelled_registration", subject_type="registration",
                               subject_id=registration_id, detail={"reason": reason[:200]})
    return _result(updated, None)


async def leave_waitlist(registration_id: int, *, actor: Actor) -> dict[str, Any]:
    async with write_transaction():
        row = await places.registration_row(registration_id)
        if not actor.staff and row["person"] != actor.person_id:
            raise NotFound("その申込は見つかりません。", code="registration_not_found")
        if row["status"] not in ("waitlisted", "applied"):
            raise Conflict("キャンセル待ち（または抽選申込）の状態ではありません。", code="not_waitlisted")
        updated = await places.end(registration_id, reason="left_waitlist", by=actor.person_id,
                                   expect=("waitlisted", "applied"), detail={"by_coordinator": actor.staff})
        if updated is None:
            raise Conflict("申込の状態が変わりました。画面を更新してください。", code="registration_changed")
    return _result(updated, None)


async def mark_attendance(registration_id: int, status: str, *, actor: Actor) -> dict[str, Any]:
    access.require_staff(actor)
    if status not in ("attended", "no_show", "confirmed"):
        raise Invalid("出欠は attended / no_show / confirmed のいずれかです。", code="invalid_attendance", field="status")
    async with write_transaction():
        row = await places.registration_row(registration_id)
        if row["status"] not in ("confirmed", "attended", "no_show"):
            raise Conflict("参加が確定している申込だけ出欠を記録できます。", code="not_confirmed")
        event = await places.event_row(row["event"])
        if event["starts_at"] - utcnow() > timedelta(hours=12):
            raise Conflict("出欠は開催当日から記録できます。", code="too_early_for_attendance")
        updated = row if row["status"] == status else await places.move(
            registration_id, status, expect=("confirmed", "attended", "no_show"), reason="attendance",
            by=actor.person_id)
        if updated is None:
            raise Conflict("申込の状態が変わりました。画面を更新してください。", code="registration_changed")
        await Event.update({Event.attendance_taken: True}).where(Event.id == row["event"])
    return _result(updated, None)


# ---------------------------------------------------------------- views


async def get_registration(registration_id: int, *, actor: Actor) -> dict[str, Any]:
    """The person's own registration, or anyone's for staff (NotFound otherwise: no hint that it exists)."""
    row = await places.registration_row(registration_id)
    if not actor.staff and row["person"] != actor.person_id:
        raise NotFound("その申込は見つかりません。", code="registration_not_found")
    result = _result(row, await _waitlist_rank(row["event"], row["queue_position"]) if row["status"] == "waitlisted" else None)
    result["answers"] = row["answers"]
    result["created_at"] = aware(row["created_at"])
    return result


async def my_registration(event_id: int, person_id: int) -> dict[str, Any] | None:
    rows = await Registration.select().where(
        (Registration.event == event_id) & (Registration.person == person_id)
    ).order_by(Registration.id, ascending=False).output(load_json=True)
    if not rows:
        return None
    row = next((r for r in rows if r["status"] != "cancelled"), rows[0])
    result = _result(row, await _waitlist_rank(event_id, row["queue_position"]) if row["status"] == "waitlisted" else None)
    result["answers"] = row["answers"]
    result.update(lottery_ticket=row["lottery_ticket"], priority=row["priority"], priority_reason=row["priority_reason"],
                  offer_expires_at=aware(row["offer_expires_at"]))
    found = await GuardianConsent.select(GuardianConsent.decision, GuardianConsent.expires_at).where(
        (GuardianConsent.subject_kind == places.REGISTRATION_SUBJECT) & (GuardianConsent.subject_id == row["id"])
    ).order_by(GuardianConsent.id, ascending=False).first()
    result["consent"] = {"decision": found["decision"], "expires_at": aware(found["expires_at"])} if found else None
    return result


async def registrations_of_person(person_id: int) -> list[dict[str, Any]]:
    rows = await Registration.select(
        Registration.id, Registration.event, Registration.person, Registration.status, Registration.queue_position,
        Registration.event.title.as_alias("title"), Registration.event.starts_at.as_alias("starts_at"),
        Registration.event.ends_at.as_alias("ends_at"), Registration.event.venue.as_alias("venue"),
        Registration.offer_expires_at,
    ).where(Registration.person == person_id).order_by(Registration.event.starts_at)
    out = []
    for row in rows:
        item = _result(row, await _waitlist_rank(row["event"], row["queue_position"]) if row["status"] == "waitlisted" else None)
        item.update(title=row["title"], venue=row["venue"], starts_at=aware(row["starts_at"]), ends_at=aware(row["ends_at"]),
                    offer_expires_at=aware(row["offer_expires_at"]))
        out.append(item)
    return out


_STATUS_ORDER = {s: i for i, s in enumerate(("confirmed", "attended", "no_show", "pending_consent", "offered",
                                                "applied", "waitlisted", "cancelled"))}


async def registration_rows(event_id: int, *, status: str | None = None) -> list[dict[str, Any]]:
    """Seat holders first, then the waiting list in order; names, answers, schools, minors flagged.
    Not audited by itself: callers are the audited views below and the audited exports."""
    event = await places.event_row(event_id)
    query = Registration.select(
        Registration.all_columns(),
        Registration.person.name.as_alias("name"), Registration.person.kana.as_alias("kana"),
        Registration.person.email.as_alias("email"), Registration.person.phone.as_alias("phone"),
    ).where(Registration.event == event_id).output(load_json=True)
    if status:
        if status not in REGISTRATION_STATES and status != "live":
            raise Invalid("状態の指定が正しくありません。", code="invalid_status", field="status")
        query = query.where(Registration.status.is_in(list(LIVE_STATES)) if status == "live" else Registration.status == status)
    rows = await query
    profiles = {
        p["person"]: p for p in await StudentProfile.select().where(
            StudentProfile.person.is_in([r["person"] for r in rows] or [-1])
        )
    }
    consented = {  # when the guardian gave the consent that stands (the latest given one)
        c["subject_id"]: aware(c["decided_at"]) for c in await GuardianConsent.select(
            GuardianConsent.subject_id, GuardianConsent.decided_at).where(
            (GuardianConsent.subject_kind == places.REGISTRATION_SUBJECT)
            & GuardianConsent.subject_id.is_in([r["id"] for r in rows] or [-1])
            & (GuardianConsent.decision == "given")).order_by(GuardianConsent.id)
    }
    waitlisted = sorted((r for r in rows if r["status"] == "waitlisted"), key=lambda r: (r["queue_position"], r["id"]))
    ranks = {r["id"]: i for i, r in enumerate(waitlisted, start=1)}
    out = []
    for row in rows:
        profile = profiles.get(row["person"])
        out.append({
            "id": row["id"], "event_id": event_id, "person_id": row["person"], "name": row["name"], "kana": row["kana"],
            "email": row["email"], "phone": row["phone"] or "", "status": row["status"], "answers": row["answers"],
            "guardian_name": profile["guardian_name"] if profile else "",
            "guardian_email": profile["guardian_email"] if profile else "",
            "guardian_phone": profile["guardian_phone"] if profile else "",
            "consent_given_at": consented.get(row["id"]),
            "queue_position": row["queue_position"], "waitlist_rank": ranks.get(row["id"]),
            "school_level": profile["school_level"] if profile else None,
            "school_name": profile["school_name"] if profile else "",
            "grade": profile["grade"] if profile else None,
            "is_minor": _is_minor({"profile": profile}, event),
            "accommodation": row["accommodation"], "lottery_ticket": row["lottery_ticket"],
            "priority_reason": row["priority_reason"], "ward_tie": row["ward_tie"],
            "offer_expires_at": aware(row["offer_expires_at"]), "group_key": row["group_key"],
            "registered_by": row["registered_by"], "created_at": aware(row["created_at"]),
            "confirmed_at": aware(row["confirmed_at"]), "cancelled_at": aware(row["cancelled_at"]),
        })
    out.sort(key=lambda r: (_STATUS_ORDER[r["status"]], r["waitlist_rank"] or 0, r["created_at"], r["id"]))
    return out


async def list_registrations(event_id: int, *, actor: Actor, status: str | None = None) -> list[dict[str, Any]]:
    """The coordinators' view (contact details, minors): audited in the same transaction."""
    access.require_staff(actor)
    async with write_transaction():
        rows = await registration_rows(event_id, status=status)
        await audit.record(actor, "staff_viewed_registrations", subject_type="event", subject_id=event_id,
                           detail={"status": status, "count": len(rows), "minors": sum(1 for r in rows if r["is_minor"])})
    return rows


def search_key(text: str) -> str:
    """NFKC, no spaces, lower case, katakana folded to hiragana: 'サトウ ユイ' and 'さとうゆい' match."""
    folded = "".join(unicodedata.normalize("NFKC", text or "").split()).lower()
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in folded)


async def checkin_search(event_id: int, query: str, *, actor: Actor) -> list[dict[str, Any]]:
    """Check-in: seat holders whose name, kana or e-mail contains the query; everyone when it is empty."""
    access.require_staff(actor)
    key = search_key(query)
    async with write_transaction():
        rows = [r for r in await registration_rows(event_id) if r["status"] in SEAT_HOLDING_STATES]
        if key:
            rows = [r for r in rows if any(key in search_key(r[f]) for f in ("name", "kana", "email"))]
        await audit.record(actor, "staff_checkin_search", subject_type="event", subject_id=event_id,
                           detail={"q": query[:100], "count": len(rows)})
    return rows
