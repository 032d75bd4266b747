"""Registration for events: seats that never oversell, the waiting list, cancellation, attendance.

Public functions (each is one transaction; refusals raise events.errors with a stable `code`):

- `register(event_id, person_id, *, answers=None, idempotency_key=None, registered_by=None) -> dict`
      {"id", "event_id", "person_id", "status", "queue_position", "waitlist_rank", "replayed"}; status is
      confirmed | waitlisted | pending_consent | applied. Codes: event_not_found, event_not_published,
      event_cancelled, event_closed, event_started, registration_not_open, registration_closed,
      audience_mismatch, already_registered, account_disabled, invalid_answer, answer_required, unknown_question,
      guardian_missing, busy (503).
- `register_by_coordinator(event_id, *, email, name, by, answers=None, idempotency_key=None) -> dict`
      telephone / counter registration; creates the person (events.people.ensure_person); skips window,
      audience and required answers; adds "person_created".
- `cancel_registration(registration_id, *, by, as_coordinator=False, reason="") -> dict`
      the person until `event.cancel_cutoff_hours` before the start (code cancel_cutoff_passed; leaving the
      waiting list or withdrawing a lottery application is allowed until the start); coordinators any time.
      A freed seat goes to the first in line in the same transaction.
- `leave_waitlist(registration_id, *, by) -> dict`      only for waitlisted / applied (code not_waitlisted)
- `mark_attendance(registration_id, status, *, by) -> dict`   status attended | no_show | confirmed (undo)
- `get_registration(registration_id) -> dict`
- `my_registration(event_id, person_id) -> dict | None` the live one, or the latest cancelled one
- `registrations_of_person(person_id) -> list[dict]`   with event title/time
- `list_registrations(event_id, *, status=None) -> list[dict]`   seat holders first, then the waiting list
      in order; each row has person name/kana/email, answers, waitlist_rank, is_minor, school
- `checkin_search(event_id, query) -> list[dict]`      seat holders whose name, kana or e-mail matches
      (spaces, full/half width and hiragana/katakana ignored)
- `fill_free_seats(event_id) -> list[int]`             promote the waiting list into free seats (internal use)
- `event_context(event, locale) -> dict`               what mails and pages show about an event

Rules that hold everywhere: `Event.taken` is changed only by a conditional UPDATE (`taken < capacity`) or a
decrement of a seat actually held, and a CHECK backs it; every registration state change is a conditional
UPDATE on the old status, so two racing changes cannot both apply; each state change queues exactly one mail
to the person (keys `seminar:<registration id>:<new status>`), guardians get their own consent mails.
Signals: "registration.confirmed" whenever a place becomes confirmed, "registration.cancelled" whenever a
place or application ends (see events.hooks).

Links: the public page of an event is `/events/<id>` (`/seminars/<id>` redirects there), the guardian's consent page `/consent/<token>`.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import unicodedata
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from events import timefmt
from events.config import config
from events.core.tables import Person, PersonRole, StaffMembership, StudentProfile
from events.db import engine, is_sqlite, raw, read_transaction, utcnow, write_transaction
from events.errors import Busy, Conflict, DomainError, Forbidden, Invalid, NotFound
from events.hooks import emit, invite_for, invites_installed
from events.mail import queue_mail
from events.people import age_on
from events.seminars.schedule import aware, questions_of, validate_answers
from events.seminars.tables import (
    SEAT_HOLDING_STATES,
    Event,
    GuardianConsent,
    IdempotentRequest,
    Registration,
)
from events.timefmt import TOKYO

LIVE_STATES = ("confirmed", "waitlisted", "pending_consent", "applied", "attended", "no_show")
CONSENT_TEXT_VERSION = "2025-1"
# PostgreSQL: a lock wait beyond this answers 503 + Retry-After instead of hanging (SQLite: events.db busy timeout).
LOCK_TIMEOUT_MS = 20_000
SQLITE_QUEUE_TIMEOUT_S = 30.0

# Negative control for the race tests ONLY: replaces the conditional seat write by a read-then-write
# (count the seat holders, then insert), the classic oversell. Never set it outside a test.
_UNSAFE_CHECK_THEN_INSERT = False
_UNSAFE_DELAY_S = 0.005



class _Duplicate(Exception):
    """A UNIQUE index refused a second live registration (or a second idempotency record)."""


def _map_db_error(exc: BaseException) -> BaseException | None:
    if isinstance(exc, DomainError):
        return None
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        if "UNIQUE" in text:
            return _Duplicate(text)
        if "event_seats_within_capacity" in text:
            return Conflict("満席のため席を確保できませんでした。", code="capacity_exceeded")
        return None
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return Busy("混み合っています。少し待ってからもう一度お試しください。")
    try:
        import asyncpg
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, asyncpg.exceptions.UniqueViolationError):
        return _Duplicate(text)
    if isinstance(exc, asyncpg.exceptions.CheckViolationError):
        return Conflict("満席のため席を確保できませんでした。", code="capacity_exceeded")
    if isinstance(exc, asyncpg.exceptions.LockNotAvailableError | asyncpg.exceptions.DeadlockDetectedError
                  | asyncpg.exceptions.SerializationError | asyncpg.exceptions.TooManyConnectionsError):
        return Busy("混み合っています。少し待ってからもう一度お試しください。")
    return None


_sqlite_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def _queue_sqlite_writer() -> AsyncIterator[None]:
    """SQLite: this process's writers queue on an asyncio lock before BEGIN IMMEDIATE. The database lock
    still serialises processes; the queue only spares them SQLite's sleeping busy-handler (which wakes
    waiters late and made a 200-client race crawl)."""
    db = engine()
    if not is_sqlite() or db.current_transaction.get() is not None:
        yield
        return
    loop = asyncio.get_running_loop()
    lock = _sqlite_writers.setdefault(loop, asyncio.Lock())
    try:
        await asyncio.wait_for(lock.acquire(), timeout=SQLITE_QUEUE_TIMEOUT_S)
    except TimeoutError:
        raise Busy("混み合っています。少し待ってからもう一度お試しください。") from None
    try:
        yield
    finally:
        lock.release()


@asynccontextmanager
async def seat_transaction() -> AsyncIterator[None]:
    """write_transaction plus a bounded lock wait and one mapping of driver errors."""
    try:
        async with _queue_sqlite_writer(), write_transaction():
            if not is_sqlite():
                await raw(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
            yield
    except Exception as exc:
        mapped = _map_db_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


# ---------------------------------------------------------------- reading


async def _event(event_id: int) -> dict[str, Any]:
    event = await Event.select().where(Event.id == event_id).first()
    if event is None:
        raise NotFound("そのイベントは見つかりません。", code="event_not_found")
    for key in ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at", "lottery_drawn_at"):
        event[key] = aware(event[key])
    return event


async def _person(person_id: int) -> dict[str, Any]:
    person = await Person.select(Person.id, Person.email, Person.name, Person.kana, Person.locale, Person.active).where(
        Person.id == person_id
    ).first()
    if person is None:
        raise NotFound("その利用者は見つかりません。", code="person_not_found")
    person["roles"] = {r["role"] for r in await PersonRole.select(PersonRole.role).where(PersonRole.person == person_id)}
    person["profile"] = await StudentProfile.select().where(StudentProfile.person == person_id).first()
    return person


def _is_minor(person: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    profile = person.get("profile")
    if not profile or not profile.get("birth_date"):
        return False
    return age_on(profile["birth_date"], event["starts_at"].astimezone(TOKYO).date()) < 18


async def _check_audience(event: Mapping[str, Any], person: Mapping[str, Any]) -> None:
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
    names = {"high_school": "高校生", "university": "大学生", "students": "高校生・大学生", "facility_staff": "保育・教育施設の職員"}
    raise Forbidden(f"このイベントは{names.get(audience, audience)}の方が対象です。", code="audience_mismatch")


def _check_open(event: Mapping[str, Any], *, by_coordinator: bool) -> None:
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
    if event["registration_opens_at"] and now < event["registration_opens_at"]:
        raise Conflict("申込受付はまだ始まっていません。", code="registration_not_open")
    if event["registration_closes_at"] and now >= event["registration_closes_at"]:
        raise Conflict("申込受付は締め切りました。", code="registration_closed")


def event_context(event: Mapping[str, Any], locale: str = "ja") -> dict[str, Any]:
    english = locale == "en"
    return {
        "event_id": event["id"],
        "title": (event.get("title_en") if english else "") or event["title"],
        "venue": (event.get("venue_en") if english else "") or event["venue"],
        "when": timefmt.event_when(event, locale),
        "event_url": f"{config().base_url}/events/{event['id']}",
        "cancel_cutoff_hours": event.get("cancel_cutoff_hours", 24),
    }


async def _waitlist_rank(event_id: int, queue_position: int | None) -> int | None:
    if queue_position is None:
        return None
    ahead = await Registration.count().where(
        (Registration.event == event_id) & (Registration.status == "waitlisted")
        & (Registration.queue_position < queue_position)
    )
    return ahead + 1


# ---------------------------------------------------------------- mails and signals


async def _mail_person(name: str, registration_id: int, status_key: str, person: Mapping[str, Any],
                       event: Mapping[str, Any], *, calendar: str | None = None, **extra: Any) -> None:
    """`calendar` is the iTIP method the mail carries (REQUEST for a new place, CANCEL for an ended one)."""
    part = await invite_for(event_id=event["id"], person_id=person["id"], method=calendar) if calendar else None
    await queue_mail(
        name, to_email=person["email"], to_name=person["name"], locale=person["locale"],
        context={**event_context(event, person["locale"]), "registration_id": registration_id,
                 "has_invite": part is not None, **extra},
        key=f"seminar:{registration_id}:{status_key}", calendar=part,
    )


async def _request_consent(registration_id: int, person: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    """A pending_consent place: a token for the guardian (only its hash is kept) and the request mail."""
    profile = person.get("profile") or {}
    guardian_email = (profile.get("guardian_email") or "").strip().lower()
    if not guardian_email:
        raise Invalid("18歳未満の方は、保護者のメールアドレスを登録してから申し込んでください。", code="guardian_missing")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    expires = min(now + timedelta(hours=config().consent_expiry_hours), event["starts_at"])
    context = event_context(event, "ja")
    purpose = (f"{person['name']}さんが「{context['title']}」（{context['when']}、会場: {context['venue'] or '未定'}）"
               "に参加することへの保護者の同意")
    await GuardianConsent.insert(GuardianConsent(
        registration=registration_id, student=person["id"], guardian_email=guardian_email,
        guardian_name=profile.get("guardian_name") or "", token_hash=hashlib.sha256(token.encode()).hexdigest(),
        text_version=CONSENT_TEXT_VERSION, purpose=purpose, decision="pending", created_at=now, expires_at=expires,
    ))
    await queue_mail(
        "seminar_consent_request", to_email=guardian_email, to_name=profile.get("guardian_name") or "", locale="ja",
        context={**context, "student_name": person["name"], "link": f"{config().base_url}/consent/{token}",
                 "expires": timefmt.long(expires)},
        key=f"seminar:{registration_id}:guardian:request",
    )


async def _placed(registration_id: int, person: Mapping[str, Any], event: Mapping[str, Any], status: str,
                  mail: str) -> None:
    """After a place became `status` (confirmed or pending_consent): the one mail, the consent request, the signal."""
    if status == "confirmed":
        await _mail_person(mail, registration_id, "confirmed", person, event, calendar="REQUEST", needs_consent=False)
        await emit("registration.confirmed", registration_id=registration_id, event_id=event["id"], person_id=person["id"])
    else:
        await _mail_person(mail, registration_id, "pending_consent", person, event, needs_consent=True)
        await _request_consent(registration_id, person, event)


# ---------------------------------------------------------------- seats


async def _take_seat(event_id: int) -> bool:
    """The one atomic conditional write that holds a seat; no row back means the event is full."""
    if _UNSAFE_CHECK_THEN_INSERT:
        held = await Registration.count().where(
            (Registration.event == event_id) & Registration.status.is_in(list(SEAT_HOLDING_STATES))
        )
        capacity = (await Event.select(Event.capacity).where(Event.id == event_id).first())["capacity"]
        await asyncio.sleep(_UNSAFE_DELAY_S)
        return held < capacity
    rows = await raw(
        "UPDATE event SET taken = taken + 1 WHERE id = {} AND taken < capacity AND status = 'published' RETURNING taken",
        event_id,
    )
    return bool(rows)


async def _release_seat(event_id: int) -> None:
    if _UNSAFE_CHECK_THEN_INSERT:
        return
    await raw("UPDATE event SET taken = taken - 1 WHERE id = {} AND taken > 0", event_id)


async def _lock_event(event_id: int) -> None:
    """PostgreSQL: serialise waiting-list appends per event (SQLite's IMMEDIATE transaction already does)."""
    if not is_sqlite():
        await raw("SELECT id FROM event WHERE id = {} FOR UPDATE", event_id)


async def _next_queue_position(event_id: int) -> int:
    await _lock_event(event_id)
    rows = await raw("SELECT MAX(queue_position) AS top FROM registration WHERE event = {}", event_id)
    return int(rows[0]["top"] or 0) + 1 if rows else 1


async def _transition(registration_id: int, old: str | tuple[str, ...], new: str, **values: Any) -> dict[str, Any] | None:
    """Conditional UPDATE of the status: None when someone else changed it first."""
    olds = [old] if isinstance(old, str) else list(old)
    now = utcnow()
    update: dict[Any, Any] = {Registration.status: new, Registration.updated_at: now}
    if new == "confirmed":
        update[Registration.confirmed_at] = now
    if new == "cancelled":
        update[Registration.cancelled_at] = now
    for key, value in values.items():
        update[getattr(Registration, key)] = value
    rows = await Registration.update(update).where(
        (Registration.id == registration_id) & Registration.status.is_in(olds)
    ).returning(*Registration.all_columns())
    return rows[0] if rows else None


async def fill_free_seats(event_id: int) -> list[int]:
    """Give free seats to the waiting list, first in line first (in the caller's transaction)."""
    promoted: list[int] = []
    async with seat_transaction():
        event = await _event(event_id)
        if event["status"] != "published" or (event["allocation"] == "lottery" and not event["lottery_drawn_at"]):
            return promoted
        while True:
            candidate = await Registration.select(Registration.id, Registration.person).where(
                (Registration.event == event_id) & (Registration.status == "waitlisted")
            ).order_by(Registration.queue_position).order_by(Registration.id).first()
            if candidate is None or not await _take_seat(event_id):
                return promoted
            person = await _person(candidate["person"])
            status = "pending_consent" if _is_minor(person, event) else "confirmed"
            if await _transition(candidate["id"], "waitlisted", status) is None:
                await _release_seat(event_id)  # they left the list a moment ago; try the next one
                continue
            promoted.append(candidate["id"])
            await _placed(candidate["id"], person, event, status, "seminar_promoted")


# ---------------------------------------------------------------- register


def _result(row: Mapping[str, Any], rank: int | None, *, replayed: bool = False) -> dict[str, Any]:
    return {"id": row["id"], "event_id": row["event"], "person_id": row["person"], "status": row["status"],
            "queue_position": row["queue_position"], "waitlist_rank": rank, "replayed": replayed}


async def _replay(person_id: int, scope: str, key: str) -> dict[str, Any] | None:
    prior = await IdempotentRequest.select(IdempotentRequest.response).where(
        (IdempotentRequest.person == person_id) & (IdempotentRequest.scope == scope) & (IdempotentRequest.key == key)
    ).output(load_json=True).first()
    return {**prior["response"], "replayed": True} if prior else None


async def register(
    event_id: int,
    person_id: int,
    *,
    answers: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    registered_by: int | None = None,
    _person_created: bool = False,
) -> dict[str, Any]:
    """Register `person_id` (by themselves, or `registered_by` a coordinator) for an event."""
    actor = registered_by or person_id
    scope = f"register:{event_id}:{person_id}"
    key = (idempotency_key or "").strip()[:200] or None
    by_coordinator = registered_by is not None and registered_by != person_id
    # Reads and checks first, on a snapshot and outside the write lock: the lock is held only for the writes.
    async with read_transaction():
        if key and (prior := await _replay(actor, scope, key)):
            return prior
        event = await _event(event_id)
        person = await _person(person_id)
        if not person["active"]:
            raise Forbidden("このアカウントは利用できません。", code="account_disabled")
        _check_open(event, by_coordinator=by_coordinator)
        if not by_coordinator:
            await _check_audience(event, person)
        clean = validate_answers(await questions_of(event_id), answers, strict=not by_coordinator)
        if await Registration.exists().where(
            (Registration.event == event_id) & (Registration.person == person_id) & (Registration.status != "cancelled")
        ):
            raise Conflict("このイベントには既にお申し込みいただいています。", code="already_registered")
        minor = _is_minor(person, event)
        if minor and not ((person.get("profile") or {}).get("guardian_email") or "").strip():
            raise Invalid("18歳未満の方は、保護者のメールアドレスを登録してから申し込んでください。", code="guardian_missing")
    try:
        async with seat_transaction():
            event = await _event(event_id)  # again, inside: it may have been cancelled or drawn meanwhile
            _check_open(event, by_coordinator=by_coordinator)
            queue_position = None
            if event["allocation"] == "lottery" and not event["lottery_drawn_at"]:
                status = "applied"
            elif await _take_seat(event_id):
                status = "pending_consent" if minor else "confirmed"
            else:
                status = "waitlisted"
                queue_position = await _next_queue_position(event_id)
            now = utcnow()
            rows = await Registration.insert(Registration(
                event=event_id, person=person_id, status=status, answers=clean, queue_position=queue_position,
                idempotency_key=key, registered_by=registered_by, created_at=now, updated_at=now,
                confirmed_at=now if status == "confirmed" else None,
            )).returning(*Registration.all_columns())
            row = rows[0]
            rank = await _waitlist_rank(event_id, queue_position)
            if status in ("confirmed", "pending_consent"):
                await _placed(row["id"], person, event, status, "seminar_confirmed" if status == "confirmed"
                              else "seminar_pending_consent")
            elif status == "waitlisted":
                await _mail_person("seminar_waitlisted", row["id"], "waitlisted", person, event, waitlist_rank=rank)
            else:
                await _mail_person("seminar_applied", row["id"], "applied", person, event,
                                   closes=timefmt.long(event["registration_closes_at"], person["locale"]))
            result = _result(row, rank)
            if _person_created:
                result["person_created"] = True
            if key:
                await IdempotentRequest.insert(IdempotentRequest(
                    key=key, person=actor, scope=scope, response=result, status_code=201, created_at=now,
                ))
            return result
    except _Duplicate:
        if key:
            async with write_transaction():
                prior = await _replay(actor, scope, key)
            if prior:
                return prior
        raise Conflict("このイベントには既にお申し込みいただいています。", code="already_registered") from None


async def register_by_coordinator(
    event_id: int, *, email: str, name: str, by: int, answers: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Telephone and counter registrations: the person is found by e-mail or created."""
    from events.people import ensure_person

    async with seat_transaction():
        person_id, created = await ensure_person(email, name)
        result = await register(event_id, person_id, answers=answers, idempotency_key=idempotency_key,
                                registered_by=by, _person_created=created)
    result.setdefault("person_created", created)
    return result


# ---------------------------------------------------------------- cancel, leave, promote


async def _registration(registration_id: int) -> dict[str, Any]:
    row = await Registration.select().where(Registration.id == registration_id).output(load_json=True).first()
    if row is None:
        raise NotFound("その申込は見つかりません。", code="registration_not_found")
    return row


async def _end_place(row: Mapping[str, Any], *, mail: str | None, reason: str = "", **extra: Any) -> dict[str, Any]:
    """Move a live registration to cancelled; free its seat and promote the next in line (caller's transaction)."""
    old = row["status"]
    updated = await _transition(row["id"], old, "cancelled")
    if updated is None:
        raise Conflict("申込の状態が変わりました。画面を更新してください。", code="registration_changed")
    event = await _event(row["event"])
    person = await _person(row["person"])
    if old in SEAT_HOLDING_STATES:
        await _release_seat(row["event"])
    if old == "pending_consent":
        await GuardianConsent.update({GuardianConsent.decision: "withdrawn", GuardianConsent.decided_at: utcnow()}).where(
            (GuardianConsent.registration == row["id"]) & (GuardianConsent.decision == "pending")
        )
    if mail:
        await _mail_person(mail, row["id"], "cancelled", person, event, previous_status=old, reason=reason,
                           calendar="CANCEL" if old == "confirmed" else None, **extra)
    await emit("registration.cancelled", registration_id=row["id"], event_id=row["event"], person_id=row["person"],
               was_confirmed=old == "confirmed")
    if old in SEAT_HOLDING_STATES:
        await fill_free_seats(row["event"])
    return updated


async def cancel_registration(
    registration_id: int, *, by: int, as_coordinator: bool = False, reason: str = ""
) -> dict[str, Any]:
    async with seat_transaction():
        row = await _registration(registration_id)
        if not as_coordinator and row["person"] != by:
            raise Forbidden("この申込を取り消す権限がありません。", code="not_your_registration")
        if row["status"] == "cancelled":
            raise Conflict("この申込は既に取り消されています。", code="already_cancelled")
        if row["status"] in ("attended", "no_show"):
            raise Conflict("出欠が記録された申込は取り消せません。", code="attendance_recorded")
        event = await _event(row["event"])
        if not as_coordinator:
            now = utcnow()
            if event["starts_at"] <= now:
                raise Conflict("開始時刻を過ぎたため、取り消しできません。", code="event_started")
            cutoff = event["starts_at"] - timedelta(hours=event["cancel_cutoff_hours"])
            if row["status"] in SEAT_HOLDING_STATES and now > cutoff:
                raise Conflict(
                    f"開始{event['cancel_cutoff_hours']}時間前を過ぎたため、ウェブでの取り消しはできません。"
                    "お手数ですが、こども家庭支援課までお電話ください。", code="cancel_cutoff_passed")
        updated = await _end_place(row, mail="seminar_cancelled", reason=reason[:500], by_coordinator=as_coordinator)
    return _result(updated, None)


async def leave_waitlist(registration_id: int, *, by: int, as_coordinator: bool = False) -> dict[str, Any]:
    async with seat_transaction():
        row = await _registration(registration_id)
        if not as_coordinator and row["person"] != by:
            raise Forbidden("この申込を取り消す権限がありません。", code="not_your_registration")
        if row["status"] not in ("waitlisted", "applied"):
            raise Conflict("キャンセル待ち（または抽選申込）の状態ではありません。", code="not_waitlisted")
        updated = await _end_place(row, mail="seminar_cancelled", by_coordinator=as_coordinator)
    return _result(updated, None)


async def cancel_all_for_event(event_id: int, *, reason: str, by: int | None) -> int:
    """Event cancelled: every live registration ends, one 'event cancelled' mail each, no promotion."""
    count = 0
    async with seat_transaction():
        event = await _event(event_id)
        rows = await Registration.select().where(
            (Registration.event == event_id) & Registration.status.is_in(list(LIVE_STATES))
        )
        for row in rows:
            if await _transition(row["id"], row["status"], "cancelled") is None:
                continue
            await GuardianConsent.update({GuardianConsent.decision: "withdrawn", GuardianConsent.decided_at: utcnow()}).where(
                (GuardianConsent.registration == row["id"]) & (GuardianConsent.decision == "pending")
            )
            person = await _person(row["person"])
            await _mail_person("seminar_event_cancelled", row["id"], "cancelled", person, event, reason=reason,
                               calendar="CANCEL" if row["status"] == "confirmed" else None)
            await emit("registration.cancelled", registration_id=row["id"], event_id=event_id,
                       person_id=row["person"], was_confirmed=row["status"] == "confirmed")
            count += 1
        await raw("UPDATE event SET taken = 0 WHERE id = {}", event_id)
    return count


async def announce_change(event_id: int, fields: list[str], *, before: Mapping[str, Any]) -> int:
    """One 'event changed' mail to every live registration (called inside update_event's transaction).

    Confirmed places get the updated calendar invite instead (the invites area's event.changed mail says
    what changed), so nobody receives two mails for one change.
    """
    event = await _event(event_id)
    states = [s for s in LIVE_STATES if not (s == "confirmed" and invites_installed())]
    rows = await Registration.select(Registration.id, Registration.person).where(
        (Registration.event == event_id) & Registration.status.is_in(states)
    )
    for row in rows:
        person = await _person(row["person"])
        previous = event_context(before, person["locale"])
        await queue_mail(
            "seminar_changed", to_email=person["email"], to_name=person["name"], locale=person["locale"],
            context={**event_context(event, person["locale"]), "fields": fields, "previous": previous},
            key=f"seminar:{row['id']}:changed:{event['calendar_sequence']}",
        )
    return len(rows)


# ---------------------------------------------------------------- consent outcomes (used by events.seminars.consent)


async def confirm_pending(registration_id: int) -> dict[str, Any] | None:
    """Guardian consent given: pending_consent → confirmed (the seat is already held)."""
    updated = await _transition(registration_id, "pending_consent", "confirmed")
    if updated is None:
        return None
    event = await _event(updated["event"])
    person = await _person(updated["person"])
    await _mail_person("seminar_consent_outcome", registration_id, "confirmed", person, event, calendar="REQUEST",
                       decision="given")
    await emit("registration.confirmed", registration_id=registration_id, event_id=event["id"], person_id=person["id"])
    return updated


async def release_pending(registration_id: int, decision: str) -> dict[str, Any] | None:
    """Guardian refused, or the request expired: the seat goes to the waiting list."""
    row = await Registration.select().where(Registration.id == registration_id).first()
    if row is None or row["status"] != "pending_consent":
        return None
    return await _end_place(row, mail="seminar_consent_outcome", decision=decision)


# ---------------------------------------------------------------- attendance and views


async def mark_attendance(registration_id: int, status: str, *, by: int) -> dict[str, Any]:
    if status not in ("attended", "no_show", "confirmed"):
        raise Invalid("出欠は attended / no_show / confirmed のいずれかです。", code="invalid_attendance", field="status")
    async with seat_transaction():
        row = await _registration(registration_id)
        if row["status"] not in ("confirmed", "attended", "no_show"):
            raise Conflict("参加が確定している申込だけ出欠を記録できます。", code="not_confirmed")
        event = await _event(row["event"])
        if event["starts_at"] - utcnow() > timedelta(hours=12):
            raise Conflict("出欠は開催当日から記録できます。", code="too_early_for_attendance")
        updated = await _transition(registration_id, ("confirmed", "attended", "no_show"), status)
        if updated is None:
            raise Conflict("申込の状態が変わりました。画面を更新してください。", code="registration_changed")
        await Event.update({Event.attendance_taken: True}).where(Event.id == row["event"])
    return _result(updated, None)


async def get_registration(registration_id: int) -> dict[str, Any]:
    row = await _registration(registration_id)
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
    consent = await GuardianConsent.select(GuardianConsent.decision, GuardianConsent.expires_at).where(
        GuardianConsent.registration == row["id"]
    ).order_by(GuardianConsent.id, ascending=False).first()
    result["consent"] = {"decision": consent["decision"], "expires_at": aware(consent["expires_at"])} if consent else None
    return result


async def registrations_of_person(person_id: int) -> list[dict[str, Any]]:
    rows = await Registration.select(
        Registration.id, Registration.event, Registration.person, Registration.status, Registration.queue_position,
        Registration.event.title.as_alias("title"), Registration.event.starts_at.as_alias("starts_at"),
        Registration.event.ends_at.as_alias("ends_at"), Registration.event.venue.as_alias("venue"),
    ).where(Registration.person == person_id).order_by(Registration.event.starts_at)
    out = []
    for row in rows:
        item = _result(row, await _waitlist_rank(row["event"], row["queue_position"]) if row["status"] == "waitlisted" else None)
        item.update(title=row["title"], venue=row["venue"], starts_at=aware(row["starts_at"]), ends_at=aware(row["ends_at"]))
        out.append(item)
    return out


_STATUS_ORDER = {s: i for i, s in enumerate(("confirmed", "attended", "no_show", "pending_consent", "applied",
                                                "waitlisted", "cancelled"))}


async def list_registrations(event_id: int, *, status: str | None = None) -> list[dict[str, Any]]:
    """The coordinators' view: answers, waiting-list order, minors flagged (callers audit the view)."""
    from events.seminars.tables import REGISTRATION_STATES

    event = await _event(event_id)
    query = Registration.select(
        Registration.all_columns(),
        Registration.person.name.as_alias("name"), Registration.person.kana.as_alias("kana"),
        Registration.person.email.as_alias("email"),
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
    waitlisted = sorted((r for r in rows if r["status"] == "waitlisted"), key=lambda r: (r["queue_position"], r["id"]))
    ranks = {r["id"]: i for i, r in enumerate(waitlisted, start=1)}
    out = []
    for row in rows:
        profile = profiles.get(row["person"])
        out.append({
            "id": row["id"], "event_id": event_id, "person_id": row["person"], "name": row["name"], "kana": row["kana"],
            "email": row["email"], "status": row["status"], "answers": row["answers"],
            "queue_position": row["queue_position"], "waitlist_rank": ranks.get(row["id"]),
            "school_level": profile["school_level"] if profile else None,
            "school_name": profile["school_name"] if profile else "",
            "grade": profile["grade"] if profile else None,
            "is_minor": _is_minor({"profile": profile}, event),
            "registered_by": row["registered_by"], "created_at": aware(row["created_at"]),
            "confirmed_at": aware(row["confirmed_at"]), "cancelled_at": aware(row["cancelled_at"]),
        })
    out.sort(key=lambda r: (_STATUS_ORDER[r["status"]], r["waitlist_rank"] or 0, r["created_at"], r["id"]))
    return out


def search_key(text: str) -> str:
    """NFKC, no spaces, lower case, katakana folded to hiragana: 'サトウ ユイ' and 'さとうゆい' match."""
    folded = "".join(unicodedata.normalize("NFKC", text or "").split()).lower()
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in folded)


async def checkin_search(event_id: int, query: str) -> list[dict[str, Any]]:
    """Check-in: seat holders whose name, kana or e-mail contains the query; everyone when it is empty."""
    key = search_key(query)
    rows = [r for r in await list_registrations(event_id) if r["status"] in SEAT_HOLDING_STATES]
    if not key:
        return rows
    return [r for r in rows if any(key in search_key(r[f]) for f in ("name", "kana", "email"))]
