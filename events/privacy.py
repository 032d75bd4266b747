"""Personal-data rights, as Japan's APPI expects of a ward: disclosure (開示), correction (訂正), cessation of
use and deletion (利用停止・消去); for a minor, the guardian acts.

The rules this module owns:

1. **Disclosure is complete.** A person's export holds a section for every table that references them (each
   area answers for its own tables through a `Part`; `tests/service/test_privacy_export.py` walks the schema's
   foreign keys, so a new table without a part fails the suite). Anonymous survey answers are not linkable to
   anyone by design (events.feedback.tables) and the export says so.
2. **Correction runs the rules again.** A student's birth date or guardian changed while a guardian's consent is
   pending: the request is withdrawn and the guardian now on the profile is asked (events.consent). A change a
   person may not make alone (their e-mail address, a birth date that would make a minor an adult, a facility)
   is a request that coordinators decide, audited.
3. **Deletion keeps statistics, not people.** Future places end through the place ledger only (reason
   `account_deleted`: seats go to the waiting list, calendars get their CANCEL, home visits follow the ledger
   and the safeguarding invariant), then every area erases what it holds (`Part.erase`), then the person's
   row is anonymised: past registrations keep their status (counts survive) and lose their answers to free-text
   questions; names, e-mail, kana, phone numbers, school, birth date, guardian data (phone included), addresses,
   tokens and sessions go, and the account can no longer log in. A legal hold (an incident report …) sends the
   request to a coordinator, whose decision is audited; a minor's own request waits for the guardian.
4. **Everything runs in one write transaction with its audit entry** (events.audit), and mail goes through the
   outbox in the same transaction: mails caused by the deletion (CANCEL, the confirmation) still leave, then
   retention scrubs them (events.retention).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from events import access, audit, consent, places, timefmt
from events.access import Actor
from events.config import config
from events.core.tables import (
    ApiToken,
    AuditEntry,
    FormerEmail,
    GuardianAccess,
    LegalHold,
    LoginToken,
    OutboxMessage,
    Person,
    PersonRole,
    PrivacyRequest,
    RateLimitHit,
    StaffMembership,
    StudentProfile,
    WebSession,
)
from events.db import aware, raw, utcnow, write_transaction
from events.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, RateLimited
from events.mail import queue_mail
from events.people import StudentInfo, normalize_email, student_info_from
from events.seminars.tables import (
    LIVE_STATES,
    Event,
    EventInvitation,
    EventMessage,
    EventQuestion,
    GuardianConsent,
    IdempotentRequest,
    LotteryDraw,
    Registration,
)
from events.tokens import digest, new_token

EXPORT_FORMAT = "lifedesign-personal-data/1"
ERASED_NAME = "削除済みの利用者"
ERASED_BIRTH_DATE = date(1900, 1, 1)  # the column is NOT NULL; a date no validation accepts, so never a real one
GUARDIAN_LINK_HOURS = 24
OPEN_STATES = ("awaiting_guardian", "review")
ANONYMOUS_NOTE = ("無記名（匿名）のアンケートの回答は、誰の回答かを結び付けられない仕組みで保存しているため、"
                  "この一覧には含まれません（ご本人であっても特定できません）。")
# What a correction request may ask for, with the label a person reads.
REQUESTABLE_FIELDS = {
    "name": "お名前", "kana": "ふりがな", "email": "メールアドレス", "birth_date": "生年月日",
    "school_level": "学校の種別", "school_name": "学校名", "grade": "学年", "guardian_email": "保護者のメールアドレス",
    "guardian_name": "保護者のお名前", "facility": "所属施設", "other": "その他",
}
STUDENT_FIELDS = ("school_level", "school_name", "grade", "birth_date", "guardian_email", "guardian_name")
# Registration columns that may hold what a person wrote about themselves; emptied on erasure if present.
_REGISTRATION_FREE_TEXT = ("accommodation", "priority_reason")


def erased_email(person_id: int) -> str:
    return f"erased-{person_id}@erased.invalid"


# ---------------------------------------------------------------- parts: who answers for which table


@dataclass(frozen=True)
class Erasure:
    """What an area is told when a person's data go (inside the erasing transaction)."""

    person_id: int
    roles: frozenset[str]
    by: int | None  # the staff member who decided, or None (the person, their guardian, retention)
    reason: str  # account_deleted | retention
    now: datetime


@dataclass(frozen=True)
class Part:
    """One area's share of a person's data.

    - `tables`: tablename → the heading a person reads; the export always has these sections (maybe empty).
    - `export(person_id)`: {tablename: [row, …]}, every row with its `id`.
    - `erase(erasure)`: end and anonymise what the area holds, in the caller's transaction (None: nothing to do).
    - `subjects(person_id)`: (subject_type, subject_id) of the person's things, so that staff views of them
      recorded in the audit log are disclosed too.
    """

    name: str
    tables: Mapping[str, str]
    export: Callable[[int], Awaitable[dict[str, list[dict[str, Any]]]]]
    erase: Callable[[Erasure], Awaitable[None]] | None = None
    subjects: Callable[[int], Awaitable[list[tuple[str, str]]]] | None = None


_PARTS: dict[str, Part] = {}


def register_part(part: Part) -> None:
    """Each area registers its part in its install(); registering again replaces it (install is idempotent)."""
    _PARTS[part.name] = part


def parts() -> list[Part]:
    return list(_PARTS.values())


def covered_tables() -> dict[str, str]:
    return {name: heading for part in parts() for name, heading in part.tables.items()}


def plain(value: Any) -> Any:
    """JSON-ready: times as ISO 8601, bytes left out."""
    if isinstance(value, datetime):
        return aware(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    return value


def tagged(rows: Iterable[Mapping[str, Any]], relation: str) -> list[dict[str, Any]]:
    """Rows with the column that points at the person (`as`), for rows that are about someone else."""
    return [{**row, "as": relation} for row in rows]


def has_column(table: Any, name: str) -> bool:
    return any(column._meta.name == name for column in table._meta.columns)


# ---------------------------------------------------------------- the kernel's own tables


KERNEL_TABLES = {
    "person": "アカウント",
    "person_role": "役割",
    "student_profile": "学生情報",
    "staff_membership": "所属施設",
    "web_session": "ログイン中の端末（セッション）",
    "api_token": "APIトークン",
    "event": "作成したイベント",
    "registration": "イベントへの申込",
    "event_invitation": "イベントへの招待",
    "guardian_consent": "保護者の同意",
    "lottery_draw": "実施した抽選",
    "event_message": "参加者へ送ったお知らせ",
    "idempotent_request": "送信の重複防止の記録",
    "outbox_message": "お送りしたメール",
    "former_email": "以前のメールアドレス（訂正の前）",
    "privacy_request": "個人情報に関するご依頼",
    "legal_hold": "保存義務（法的保全）",
    "audit_entry": "監査ログ（あなたの情報の閲覧と、あなたの操作）",
}


async def _former_addresses(person_id: int) -> list[str]:
    """The addresses the person had before a correction: mail sent to any of them is still theirs."""
    return [r["email"] for r in await FormerEmail.select(FormerEmail.email).where(FormerEmail.person == person_id)
            .order_by(FormerEmail.id)]


async def _kernel_export(person_id: int) -> dict[str, list[dict[str, Any]]]:
    person = await Person.select().where(Person.id == person_id).first()
    roles = sorted(r["role"] for r in await PersonRole.select(PersonRole.role).where(PersonRole.person == person_id))
    out: dict[str, list[dict[str, Any]]] = {
        "person": [{**person, "roles": roles}] if person else [],
        "person_role": await PersonRole.select().where(PersonRole.person == person_id),
        "student_profile": await StudentProfile.select().where(StudentProfile.person == person_id),
        "staff_membership": await StaffMembership.select(
            StaffMembership.id, StaffMembership.facility, StaffMembership.facility.name.as_alias("facility_name"),
            StaffMembership.job_title).where(StaffMembership.person == person_id),
        "web_session": await WebSession.select(
            WebSession.id, WebSession.created_at, WebSession.last_seen_at, WebSession.ended_at).where(
            WebSession.person == person_id),
        "api_token": await ApiToken.select(
            ApiToken.id, ApiToken.label, ApiToken.prefix, ApiToken.created_at, ApiToken.last_used_at,
            ApiToken.revoked_at).where(ApiToken.person == person_id),
        "event": tagged(await Event.select(Event.id, Event.title, Event.starts_at, Event.created_at).where(
            Event.created_by == person_id), "created_by"),
        "lottery_draw": tagged(await LotteryDraw.select(LotteryDraw.id, LotteryDraw.event, LotteryDraw.drawn_at).where(
            LotteryDraw.drawn_by == person_id), "drawn_by"),
        "event_message": tagged(await EventMessage.select(
            EventMessage.id, EventMessage.event, EventMessage.subject, EventMessage.recipients, EventMessage.sent_at,
        ).where(EventMessage.sent_by == person_id), "sent_by"),
        "idempotent_request": await IdempotentRequest.select(
            IdempotentRequest.id, IdempotentRequest.scope, IdempotentRequest.status_code,
            IdempotentRequest.created_at).where(IdempotentRequest.person == person_id),
    }
    hidden = {"idempotency_key", "calendar_sequence", "group_key"}
    own = await Registration.select(
        Registration.all_columns(), Registration.event.title.as_alias("event_title"),
        Registration.event.starts_at.as_alias("event_starts_at"), Registration.event.kind.as_alias("event_kind"),
    ).where(Registration.person == person_id).order_by(Registration.id).output(load_json=True)
    entered = await Registration.select(Registration.id, Registration.event, Registration.created_at).where(
        Registration.registered_by == person_id)
    out["registration"] = [{k: v for k, v in r.items() if k not in hidden} for r in own] + tagged(
        entered, "registered_by")
    out["event_invitation"] = await EventInvitation.select(
        EventInvitation.id, EventInvitation.event, EventInvitation.event.title.as_alias("event_title"),
        EventInvitation.created_at).where(EventInvitation.person == person_id) + tagged(
        await EventInvitation.select(EventInvitation.id, EventInvitation.event, EventInvitation.created_at).where(
            EventInvitation.invited_by == person_id), "invited_by")
    out["guardian_consent"] = await GuardianConsent.select(
        GuardianConsent.id, GuardianConsent.subject_kind, GuardianConsent.subject_id, GuardianConsent.guardian_email,
        GuardianConsent.guardian_name, GuardianConsent.text_version, GuardianConsent.purpose,
        GuardianConsent.decision, GuardianConsent.created_at, GuardianConsent.expires_at, GuardianConsent.decided_at,
    ).where(GuardianConsent.student == person_id).order_by(GuardianConsent.id)
    out["former_email"] = await FormerEmail.select(FormerEmail.id, FormerEmail.email, FormerEmail.replaced_at).where(
        FormerEmail.person == person_id).order_by(FormerEmail.id)
    out["outbox_message"] = await OutboxMessage.select(
        OutboxMessage.id, OutboxMessage.kind, OutboxMessage.recipient, OutboxMessage.subject, OutboxMessage.status,
        OutboxMessage.created_at, OutboxMessage.sent_at,
    ).where(OutboxMessage.recipient.is_in([person["email"] if person else "", *await _former_addresses(person_id)])
            ).order_by(OutboxMessage.id)
    requests_of = await PrivacyRequest.select(
        PrivacyRequest.id, PrivacyRequest.kind, PrivacyRequest.via, PrivacyRequest.status, PrivacyRequest.fields,
        PrivacyRequest.note, PrivacyRequest.created_at, PrivacyRequest.decided_at, PrivacyRequest.decision_note,
        PrivacyRequest.person, PrivacyRequest.requested_by, PrivacyRequest.decided_by,
    ).where((PrivacyRequest.person == person_id) | (PrivacyRequest.requested_by == person_id)
            | (PrivacyRequest.decided_by == person_id)).order_by(PrivacyRequest.id).output(load_json=True)
    out["privacy_request"] = [
        row if row["person"] == person_id else {"id": row["id"], "kind": row["kind"], "created_at": row["created_at"],
                                                "as": "decided_by" if row["decided_by"] == person_id else "requested_by"}
        for row in requests_of]
    holds = await LegalHold.select(LegalHold.id, LegalHold.person, LegalHold.placed_at, LegalHold.lifted_at,
                                   LegalHold.placed_by, LegalHold.lifted_by).where(
        (LegalHold.person == person_id) | (LegalHold.placed_by == person_id) | (LegalHold.lifted_by == person_id))
    out["legal_hold"] = [
        {"id": h["id"], "placed_at": h["placed_at"], "lifted_at": h["lifted_at"]} if h["person"] == person_id
        else {"id": h["id"], "placed_at": h["placed_at"], "as": "placed_by" if h["placed_by"] == person_id
              else "lifted_by"} for h in holds]
    out["audit_entry"] = await _audit_of(person_id, own)
    return out


async def _audit_of(person_id: int, registrations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the person did, and every recorded view or change of their things (their subjects)."""
    subjects: list[tuple[str, str]] = [("person", str(person_id))]
    subjects += [("registration", str(r["id"])) for r in registrations]
    for part in parts():
        if part.subjects is not None:
            subjects += await part.subjects(person_id)
    columns = (AuditEntry.id, AuditEntry.at, AuditEntry.action, AuditEntry.subject_type, AuditEntry.subject_id,
               AuditEntry.client, AuditEntry.actor, AuditEntry.actor.name.as_alias("actor_name"))
    rows = await AuditEntry.select(*columns).where(AuditEntry.actor == person_id).order_by(AuditEntry.id)
    by_type: dict[str, list[str]] = {}
    for subject_type, subject_id in subjects:
        by_type.setdefault(subject_type, []).append(subject_id)
    for subject_type, ids in by_type.items():
        rows += await AuditEntry.select(*columns).where(
            (AuditEntry.subject_type == subject_type) & AuditEntry.subject_id.is_in(sorted(set(ids)))
            & ((AuditEntry.actor != person_id) | AuditEntry.actor.is_null())).order_by(AuditEntry.id)
    seen: set[int] = set()
    out = []
    for row in sorted(rows, key=lambda r: r["id"]):
        if row["id"] in seen:
            continue
        seen.add(row["id"])
        mine = row["actor"] == person_id
        out.append({"id": row["id"], "at": row["at"], "action": row["action"], "label": audit.label(row["action"]),
                    "subject_type": row["subject_type"], "subject_id": row["subject_id"],
                    "by": "本人" if mine else (row["actor_name"] or "システム"), "as": "actor" if mine else "subject"})
    return out


register_part(Part("kernel", KERNEL_TABLES, _kernel_export))


# ---------------------------------------------------------------- disclosure


async def export_of(person_id: int) -> dict[str, Any]:
    """Everything held about the person, by table (read in the caller's transaction, if any)."""
    person = await Person.select(Person.id, Person.name, Person.erased_at).where(Person.id == person_id).first()
    if person is None:
        raise NotFound("その利用者は見つかりません。", code="person_not_found")
    tables: dict[str, list[dict[str, Any]]] = {}
    headings: dict[str, str] = {}
    for part in parts():
        found = await part.export(person_id)
        for name, heading in part.tables.items():
            tables[name] = [plain(row) for row in found.get(name, [])]
            headings[name] = heading
    return {"format": EXPORT_FORMAT, "generated_at": utcnow().isoformat(), "person_id": person_id,
            "name": person["name"], "erased": person["erased_at"] is not None, "headings": headings,
            "tables": tables, "notes": [ANONYMOUS_NOTE]}


async def my_data(actor: Actor) -> dict[str, Any]:
    """The person's own data (their own view: no audit entry, as for every page of their own)."""
    if actor.person_id is None:
        raise Forbidden("ログインが必要です。", code="not_authenticated")
    return await export_of(actor.person_id)


async def view_person_data(actor: Actor, person_id: int) -> dict[str, Any]:
    """A coordinator answering a disclosure request (e.g. one received on paper): audited."""
    access.require_staff(actor)
    return await audit.viewed(actor, "staff_viewed_person_data", lambda: export_of(person_id),
                              subject_type="person", subject_id=person_id)


# ---------------------------------------------------------------- legal holds


async def active_holds(person_id: int) -> list[dict[str, Any]]:
    return await LegalHold.select(LegalHold.id, LegalHold.reason, LegalHold.placed_at).where(
        (LegalHold.person == person_id) & LegalHold.lifted_at.is_null()).order_by(LegalHold.id)


async def held_people() -> set[int]:
    return {r["person"] for r in await LegalHold.select(LegalHold.person).where(LegalHold.lifted_at.is_null())}


async def place_hold(actor: Actor, person_id: int, reason: str) -> int:
    access.require_staff(actor)
    reason = " ".join(str(reason or "").split())
    if not reason or len(reason) > 1000:
        raise Invalid("保存が必要な理由（例: 事故報告 2026-03）を1000文字以内で入力してください。", code="invalid_reason",
                      field="reason")
    async with write_transaction():
        await _person(person_id)
        row = await LegalHold.insert(LegalHold(person=person_id, reason=reason, placed_by=actor.person_id,
                                               placed_at=utcnow())).returning(LegalHold.id)
        await audit.record(actor, "legal_hold_placed", subject_type="person", subject_id=person_id,
                           detail={"hold": row[0]["id"]})
    return row[0]["id"]


async def lift_hold(actor: Actor, hold_id: int) -> None:
    access.require_staff(actor)
    async with write_transaction():
        rows = await LegalHold.update({LegalHold.lifted_at: utcnow(), LegalHold.lifted_by: actor.person_id}).where(
            (LegalHold.id == hold_id) & LegalHold.lifted_at.is_null()).returning(LegalHold.person)
        if not rows:
            raise NotFound("その保存義務は見つかりません（解除済みの可能性があります）。", code="hold_not_found")
        await audit.record(actor, "legal_hold_lifted", subject_type="person", subject_id=rows[0]["person"],
                           detail={"hold": hold_id})


# ---------------------------------------------------------------- correction


async def _person(person_id: int) -> dict[str, Any]:
    person = await Person.select().where(Person.id == person_id).first()
    if person is None:
        raise NotFound("その利用者は見つかりません。", code="person_not_found")
    if person["erased_at"] is not None:
        raise Conflict("このアカウントは削除されています。", code="person_erased")
    return person


def _today() -> date:
    return timefmt.tokyo_date(utcnow())


async def _save_student(actor: Actor, person_id: int, info: StudentInfo, *, staff: bool) -> dict[str, Any]:
    """Write a corrected student profile; a change of birth date or guardian re-runs pending consents."""
    today = _today()
    info = info.validated(today)
    current = await StudentProfile.select().where(StudentProfile.person == person_id).first()
    if current is None:
        raise Conflict("学生として登録された方のみ、学生情報を変更できます。", code="not_student")
    if not staff and consent.is_minor(current["birth_date"], today) != consent.is_minor(info.birth_date, today):
        raise Invalid("18歳未満かどうかが変わる生年月日の訂正は、区の担当者が確認します。"
                      "「訂正の依頼」からお送りください。", code="birth_date_needs_review", field="birth_date")
    changed = [name for name in STUDENT_FIELDS if current[name] != getattr(info, name)]
    if not changed:
        return {"changed": [], "consent_reasked": 0}
    await StudentProfile.update({getattr(StudentProfile, name): getattr(info, name) for name in changed}).where(
        StudentProfile.person == person_id)
    reasked = 0
    if {"birth_date", "guardian_email"} & set(changed):
        reasked = await consent.rerun_pending(person_id)
    if staff:
        await audit.record(actor, "staff_corrected_profile", subject_type="person", subject_id=person_id,
                           detail={"fields": changed, "consent_reasked": reasked})
    return {"changed": changed, "consent_reasked": reasked}


async def correct_student_profile(actor: Actor, person_id: int, info: StudentInfo) -> dict[str, Any]:
    """A student corrects their own school, grade, birth date or guardian (staff may correct anyone's, audited)."""
    staff = actor.staff and actor.person_id != person_id
    if not staff and actor.person_id != person_id:
        raise Forbidden("この操作を行う権限がありません。", code="forbidden")
    async with write_transaction():
        await _person(person_id)
        return await _save_student(actor, person_id, info, staff=staff)


def _clean_fields(fields: Mapping[str, Any], note: str) -> tuple[dict[str, str], str]:
    clean: dict[str, str] = {}
    for key, value in (fields or {}).items():
        text = " ".join(str(value or "").split())
        if not text:
            continue
        if key not in REQUESTABLE_FIELDS:
            raise Invalid("訂正できる項目から選んでください。", code="unknown_field", field="field")
        if len(text) > 300:
            raise Invalid("訂正後の内容は300文字以内で入力してください。", code="too_long", field="value")
        clean[key] = text
    note = str(note or "").strip()
    if len(note) > 2000:
        raise Invalid("補足は2000文字以内で入力してください。", code="too_long", field="note")
    if not clean and not note:
        raise Invalid("訂正する項目と訂正後の内容を入力してください。", code="correction_empty", field="value")
    return clean, note


async def request_correction(actor: Actor, person_id: int, fields: Mapping[str, Any], note: str = "", *,
                             via: str = "self") -> int:
    """A correction a person may not make alone: it goes to the coordinators (listed, audited, mailed)."""
    if via == "self" and actor.person_id != person_id:
        raise Forbidden("この操作を行う権限がありません。", code="forbidden")
    clean, note = _clean_fields(fields, note)
    async with write_transaction():
        person = await _person(person_id)
        row = await PrivacyRequest.insert(PrivacyRequest(
            kind="correction", person=person_id, via=via, requested_by=actor.person_id, fields=clean, note=note,
            status="review", created_at=utcnow())).returning(PrivacyRequest.id)
        request_id = row[0]["id"]
        await audit.record(actor, "privacy_correction_requested", subject_type="person", subject_id=person_id,
                           detail={"request": request_id, "fields": sorted(clean), "via": via})
        await _tell_received(person, request_id, "correction")
        await _tell_coordinators(request_id, "correction", person)
    return request_id


async def _apply_correction(actor: Actor, person_id: int, fields: Mapping[str, str]) -> list[str]:
    applied: list[str] = []
    values: dict[Any, Any] = {}
    if "name" in fields:
        values[Person.name] = fields["name"][:200]
    if "kana" in fields:
        values[Person.kana] = fields["kana"][:200]
    if "email" in fields:
        email = normalize_email(fields["email"])
        if await Person.exists().where((Person.email == email) & (Person.id != person_id)):
            raise Conflict("そのメールアドレスは別のアカウントで使われています。", code="email_taken", field="email")
        values[Person.email] = email
        before = await Person.select(Person.email).where(Person.id == person_id).first()
        if before is not None and before["email"] != email:  # mail sent there stays the person's
            await FormerEmail.insert(FormerEmail(person=person_id, email=before["email"], replaced_at=utcnow()))
    if values:
        await Person.update(values).where(Person.id == person_id)
        applied += [column._meta.name for column in values]
    student = {k: v for k, v in fields.items() if k in STUDENT_FIELDS}
    if student:
        current = await StudentProfile.select().where(StudentProfile.person == person_id).first()
        if current is None:
            raise Invalid("この方には学生情報がありません。", code="not_student")
        merged = {**{k: current[k] for k in STUDENT_FIELDS}, **student}
        merged["birth_date"] = str(merged["birth_date"])
        info = student_info_from(merged)
        applied += (await _save_student(actor, person_id, info, staff=True))["changed"]
    return applied


# ---------------------------------------------------------------- deletion


async def _open_request(person_id: int, kind: str) -> dict[str, Any] | None:
    return await PrivacyRequest.select().where(
        (PrivacyRequest.person == person_id) & (PrivacyRequest.kind == kind)
        & PrivacyRequest.status.is_in(list(OPEN_STATES))).output(load_json=True).first()


async def _is_minor(person_id: int) -> bool:
    return await consent.needs_consent(person_id, _today())


async def request_deletion(actor: Actor, person_id: int, *, via: str = "self", note: str = "") -> dict[str, Any]:
    """A person (a guardian for a minor; an admin for a request received on paper) asks to delete the account.

    No legal hold: the account is erased now. A legal hold: a coordinator decides. A minor's own request: the
    guardian confirms by the link mailed to them. Returns {"request_id", "status", "cancelled"}."""
    if via == "self":
        if actor.person_id != person_id:
            raise Forbidden("この操作を行う権限がありません。", code="forbidden")
        if actor.staff:
            raise Conflict("職員のアカウントは、管理者が書面の請求として削除します。", code="staff_account")
    elif via == "paper":
        access.require_admin(actor)
    elif via != "guardian":
        raise Invalid("依頼の方法が正しくありません。", code="invalid_via")
    note = str(note or "").strip()[:2000]
    async with write_transaction():
        person = await _person(person_id)
        existing = await _open_request(person_id, "deletion")
        minor = await _is_minor(person_id)
        if existing and not (existing["status"] == "awaiting_guardian" and via in ("guardian", "paper")):
            return {"request_id": existing["id"], "status": existing["status"], "cancelled": []}
        now = utcnow()
        if existing:
            request_id = existing["id"]
            await PrivacyRequest.update({PrivacyRequest.via: via, PrivacyRequest.status: "review"}).where(
                PrivacyRequest.id == request_id)
        else:
            row = await PrivacyRequest.insert(PrivacyRequest(
                kind="deletion", person=person_id, via=via, requested_by=actor.person_id, note=note,
                status="review", created_at=now)).returning(PrivacyRequest.id)
            request_id = row[0]["id"]
        await audit.record(actor, "privacy_deletion_requested", subject_type="person", subject_id=person_id,
                           detail={"request": request_id, "via": via, "minor": minor})
        if via == "self" and minor:
            await PrivacyRequest.update({PrivacyRequest.status: "awaiting_guardian"}).where(
                PrivacyRequest.id == request_id)
            await _ask_guardian(person)
            await _tell_received(person, request_id, "deletion_guardian")
            return {"request_id": request_id, "status": "awaiting_guardian", "cancelled": []}
        holds = await active_holds(person_id)
        if holds:
            await PrivacyRequest.update({PrivacyRequest.hold_reasons: [h["reason"] for h in holds]}).where(
                PrivacyRequest.id == request_id)
            await _tell_received(person, request_id, "deletion_review")
            await _tell_coordinators(request_id, "deletion", person)
            return {"request_id": request_id, "status": "review", "cancelled": []}
        outcome = await _erase_for_request(actor, person, request_id, decided_by=None)
    remove_mail_files(outcome["scrubbed"])
    return {"request_id": request_id, "status": "done", "cancelled": outcome["cancelled"]}


async def _erase_for_request(actor: Actor, person: dict[str, Any], request_id: int, *,
                             decided_by: int | None) -> dict[str, Any]:
    now = utcnow()
    await PrivacyRequest.update({PrivacyRequest.status: "done", PrivacyRequest.decided_at: now,
                                 PrivacyRequest.decided_by: decided_by}).where(PrivacyRequest.id == request_id)
    return await erase(person["id"], by=decided_by if decided_by is not None else actor.person_id,
                       actor=actor, reason="account_deleted", request_id=request_id)


async def decide_request(actor: Actor, request_id: int, *, action: str, note: str = "") -> dict[str, Any]:
    """A coordinator decides an open request: a deletion under a legal hold (approve: the holds are lifted and
    the account erased; keep: the data stay, the person is told why), or a correction (apply / reject)."""
    access.require_staff(actor)
    note = str(note or "").strip()[:2000]
    scrubbed: list[int] = []
    async with write_transaction():
        row = await PrivacyRequest.select().where(PrivacyRequest.id == request_id).output(load_json=True).first()
        if row is None:
            raise NotFound("そのご依頼は見つかりません。", code="request_not_found")
        if row["status"] != "review":
            raise Conflict("このご依頼は既に処理されています。", code="request_decided", state=row["status"])
        person = await _person(row["person"])
        now = utcnow()
        decided = {PrivacyRequest.decided_by: actor.person_id, PrivacyRequest.decided_at: now,
                   PrivacyRequest.decision_note: note}
        if row["kind"] == "deletion" and action == "approve":
            holds = await active_holds(person["id"])
            await LegalHold.update({LegalHold.lifted_at: now, LegalHold.lifted_by: actor.person_id}).where(
                (LegalHold.person == person["id"]) & LegalHold.lifted_at.is_null())
            await PrivacyRequest.update({PrivacyRequest.decision_note: note}).where(PrivacyRequest.id == request_id)
            await audit.record(actor, "privacy_deletion_approved", subject_type="person", subject_id=person["id"],
                               detail={"request": request_id, "holds_lifted": [h["id"] for h in holds]})
            outcome = await _erase_for_request(actor, person, request_id, decided_by=actor.person_id)
            scrubbed = outcome["scrubbed"]
            status = "done"
        elif row["kind"] == "deletion" and action == "keep":
            if not note:
                raise Invalid("保存を続ける理由を入力してください（ご本人にお伝えします）。", code="reason_required",
                              field="note")
            await PrivacyRequest.update({PrivacyRequest.status: "kept", **decided}).where(
                PrivacyRequest.id == request_id)
            await audit.record(actor, "privacy_deletion_kept", subject_type="person", subject_id=person["id"],
                               detail={"request": request_id})
            await _tell_decided(person, "deletion", "kept", note)
            status = "kept"
        elif row["kind"] == "correction" and action == "apply":
            applied = await _apply_correction(actor, person["id"], row["fields"] or {})
            await PrivacyRequest.update({PrivacyRequest.status: "done", **decided}).where(
                PrivacyRequest.id == request_id)
            await audit.record(actor, "privacy_correction_applied", subject_type="person", subject_id=person["id"],
                               detail={"request": request_id, "fields": applied})
            person = await Person.select().where(Person.id == person["id"]).first()
            await _tell_decided(person, "correction", "done", note)
            status = "done"
        elif row["kind"] == "correction" and action == "reject":
            await PrivacyRequest.update({PrivacyRequest.status: "rejected", **decided}).where(
                PrivacyRequest.id == request_id)
            await audit.record(actor, "privacy_correction_rejected", subject_type="person", subject_id=person["id"],
                               detail={"request": request_id})
            await _tell_decided(person, "correction", "rejected", note)
            status = "rejected"
        else:
            raise Invalid("操作が正しくありません。", code="invalid_action", field="action")
    remove_mail_files(scrubbed)
    return {"request_id": request_id, "status": status}


async def erase(person_id: int, *, actor: Actor, by: int | None, reason: str,
                request_id: int | None = None, notify: bool = True) -> dict[str, Any]:
    """Erase a person in the caller's write transaction (see rule 3 of the module docstring).

    Returns {"cancelled": [registration ids ended], "scrubbed": [outbox ids whose .eml files should go]}; the
    caller removes those files after its transaction commits (`remove_mail_files`)."""
    now = utcnow()
    person = await _person(person_id)
    roles = frozenset(r["role"] for r in await PersonRole.select(PersonRole.role).where(PersonRole.person == person_id))
    last_mail = (await raw("SELECT COALESCE(MAX(id), 0) AS top FROM outbox_message"))[0]["top"]
    guardian_email, guardian_name = await consent.guardian_of(person_id)
    minor = await _is_minor(person_id)
    # 1. future places end through the ledger: seats to the waiting list, CANCELs, visits follow it
    future = await Registration.select(
        Registration.id, Registration.event.title.as_alias("title"), Registration.event.starts_at.as_alias("starts_at"),
    ).where((Registration.person == person_id) & Registration.status.is_in(list(LIVE_STATES))
            & (Registration.event.ends_at > now)).order_by(Registration.id)
    cancelled = []
    for row in future:
        if await places.end(row["id"], reason="account_deleted", by=by) is not None:
            cancelled.append(row)
    # 2. every area erases its own
    erasure = Erasure(person_id=person_id, roles=roles, by=by, reason=reason, now=now)
    for part in parts():
        if part.erase is not None:
            await part.erase(erasure)
    if notify:
        context = {"name": person["name"], "events": [(r["title"], timefmt.long(r["starts_at"])) for r in cancelled]}
        await queue_mail("privacy_deleted", to_email=person["email"], to_name=person["name"], locale=person["locale"],
                         context={**context, "side": "person"}, key=f"privacy:deleted:{person_id}")
        if minor and guardian_email:
            await queue_mail("privacy_deleted", to_email=guardian_email, to_name=guardian_name, locale="ja",
                             context={**context, "side": "guardian"}, key=f"privacy:deleted:{person_id}:guardian")
    # 3. the kernel's tables, last (the mails above still needed the address)
    await _anonymise_kernel(person, now)
    scrubbed = await _erase_outbox(person, last_mail, guardian_email=guardian_email)
    await consent.erase_student(person_id)
    await audit.record(actor, "privacy_erased", subject_type="person", subject_id=person_id,
                       detail={"reason": reason, "request": request_id, "cancelled": [r["id"] for r in cancelled]})
    return {"cancelled": [r["id"] for r in cancelled], "scrubbed": scrubbed}


async def _anonymise_kernel(person: dict[str, Any], now: datetime) -> None:
    person_id = person["id"]
    await Person.update({Person.name: ERASED_NAME, Person.kana: "", Person.phone: "",
                         Person.email: erased_email(person_id), Person.active: False, Person.reminders: False,
                         Person.erased_at: now}).where(Person.id == person_id)
    await StudentProfile.update({StudentProfile.school_name: "", StudentProfile.birth_date: ERASED_BIRTH_DATE,
                                 StudentProfile.guardian_email: "", StudentProfile.guardian_name: "",
                                 StudentProfile.guardian_phone: ""}).where(StudentProfile.person == person_id)
    await StaffMembership.update({StaffMembership.job_title: ""}).where(StaffMembership.person == person_id)
    await WebSession.delete().where(WebSession.person == person_id)
    await ApiToken.delete().where(ApiToken.person == person_id)
    await LoginToken.delete().where(LoginToken.email == person["email"])
    await RateLimitHit.delete().where(RateLimitHit.bucket == f"login-address:{person['email']}")
    await IdempotentRequest.delete().where(IdempotentRequest.person == person_id)
    await PrivacyRequest.update({PrivacyRequest.status: "rejected", PrivacyRequest.decided_at: now,
                                 PrivacyRequest.decision_note: "アカウントの削除により終了"}).where(
        (PrivacyRequest.person == person_id) & (PrivacyRequest.kind == "correction")
        & PrivacyRequest.status.is_in(list(OPEN_STATES)))  # nothing left to correct
    await PrivacyRequest.update({PrivacyRequest.fields: {}, PrivacyRequest.note: ""}).where(
        PrivacyRequest.person == person_id)
    await _scrub_registrations(person_id)


async def _scrub_registrations(person_id: int) -> None:
    """Past rows stay (their status is the attendance count); what the person wrote goes: free-text answers and
    free-text columns. Choice answers stay, as counts of the choices do."""
    rows = await Registration.select(Registration.id, Registration.event, Registration.answers).where(
        Registration.person == person_id).output(load_json=True)
    if not rows:
        return
    text_questions = {str(q["id"]) for q in await EventQuestion.select(EventQuestion.id).where(
        EventQuestion.event.is_in(sorted({r["event"] for r in rows})) & (EventQuestion.kind == "text"))}
    extra = {getattr(Registration, name): "" for name in _REGISTRATION_FREE_TEXT if has_column(Registration, name)}
    for row in rows:
        answers = {k: v for k, v in (row["answers"] or {}).items() if str(k) not in text_questions}
        await Registration.update({Registration.answers: answers, Registration.idempotency_key: None, **extra}).where(
            Registration.id == row["id"])


_SCRUB = "recipient = '', subject = '', message = {}, last_error = ''"


async def _erase_outbox(person: dict[str, Any], last_mail: int, *, guardian_email: str) -> list[int]:
    """Mail to the person: what has left (or never will) is scrubbed now; what is still queued from before is
    withdrawn and scrubbed; what the erasure itself queued (CANCELs, the confirmation) still leaves, tagged so
    that retention scrubs it once sent. A minor's guardian, known to us only through this student, is treated
    the same way; a guardian of another student too (or with an account) loses the mails about this student."""
    scrubbed = []
    for address in dict.fromkeys([person["email"], *await _former_addresses(person["id"])]):  # now and before
        scrubbed += await _scrub_mail_to(address, last_mail, person["id"])
    await FormerEmail.delete().where(FormerEmail.person == person["id"])
    if not guardian_email:
        return scrubbed
    if not await StudentProfile.exists().where(
            (StudentProfile.guardian_email == guardian_email) & (StudentProfile.person != person["id"])
            & StudentProfile.person.erased_at.is_null()) and not await Person.exists().where(
            Person.email == guardian_email):
        await GuardianAccess.delete().where(GuardianAccess.guardian_email == guardian_email)
        return scrubbed + await _scrub_mail_to(guardian_email, last_mail, person["id"])
    await OutboxMessage.update({OutboxMessage.group_key: f"erased:{person['id']}"}).where(
        (OutboxMessage.recipient == guardian_email) & (OutboxMessage.id > last_mail))
    subjects = await GuardianConsent.select(GuardianConsent.subject_kind, GuardianConsent.subject_id).where(
        GuardianConsent.student == person["id"])
    for subject in subjects:
        rows = await raw(
            f"UPDATE outbox_message SET {_SCRUB}, status = CASE WHEN status IN ('queued', 'awaiting_retry') THEN "
            "'withdrawn' ELSE status END WHERE recipient = {} AND id <= {} AND status IN ('sent', 'failed', "
            "'withdrawn', 'queued', 'awaiting_retry') AND idempotency_key LIKE {} RETURNING id", b"", guardian_email,
            last_mail, f"consent:{subject['subject_kind']}:{subject['subject_id']}:%")
        scrubbed += [r["id"] for r in rows]
    return scrubbed


async def _scrub_mail_to(email: str, last_mail: int, person_id: int) -> list[int]:
    gone = await raw(
        f"UPDATE outbox_message SET {_SCRUB}, status = CASE WHEN status IN ('queued', 'awaiting_retry') THEN "
        "'withdrawn' ELSE status END WHERE recipient = {} AND (status IN ('sent', 'failed', 'withdrawn') OR "
        "(status IN ('queued', 'awaiting_retry') AND id <= {})) RETURNING id", b"", email, last_mail)
    await OutboxMessage.update({OutboxMessage.group_key: f"erased:{person_id}"}).where(
        (OutboxMessage.recipient == email) & (OutboxMessage.id > last_mail))
    return [r["id"] for r in gone]


def remove_mail_files(outbox_ids: Iterable[int]) -> int:
    """The file transport's copies of scrubbed mails (<mail dir>/<id>.eml); after the transaction commits."""
    folder = config().mail_dir
    removed = 0
    if folder is None:
        return 0
    for outbox_id in outbox_ids:
        path = Path(folder) / f"{int(outbox_id):08d}.eml"
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except OSError:
            continue
    return removed


# ---------------------------------------------------------------- requests for coordinators


async def view_requests(actor: Actor, *, include_closed: bool = False) -> dict[str, Any]:
    """Open requests (corrections, deletions under a legal hold, a minor's awaiting the guardian) and active
    legal holds, for coordinators: names and requested values are personal data, so the view is audited."""
    access.require_staff(actor)

    async def read() -> dict[str, Any]:
        query = PrivacyRequest.select(
            PrivacyRequest.all_columns(), PrivacyRequest.person.name.as_alias("person_name"),
            PrivacyRequest.person.email.as_alias("person_email"),
            PrivacyRequest.decided_by.name.as_alias("decided_by_name"),
        ).order_by(PrivacyRequest.id, ascending=False).limit(300).output(load_json=True)
        if not include_closed:
            query = query.where(PrivacyRequest.status.is_in(list(OPEN_STATES)))
        holds = await LegalHold.select(
            LegalHold.all_columns(), LegalHold.person.name.as_alias("person_name"),
            LegalHold.person.email.as_alias("person_email"), LegalHold.placed_by.name.as_alias("placed_by_name"),
        ).where(LegalHold.lifted_at.is_null()).order_by(LegalHold.id)
        return {"requests": await query, "holds": holds}

    return await audit.viewed(actor, "staff_viewed_privacy_requests", read, subject_type="privacy_request",
                              detail=lambda found: {"count": len(found["requests"])})


async def find_person(email: str) -> dict[str, Any]:
    found = await Person.select(Person.id, Person.name, Person.email, Person.erased_at).where(
        Person.email == normalize_email(email)).first()
    if found is None:
        raise NotFound("そのメールアドレスのアカウントは見つかりません。", code="person_not_found", field="email")
    return found


# ---------------------------------------------------------------- mails


async def _coordinators() -> list[dict[str, Any]]:
    ids = [r["person"] for r in await PersonRole.select(PersonRole.person).where(PersonRole.role == "coordinator")]
    if not ids:
        return []
    return await Person.select(Person.id, Person.email, Person.name, Person.locale).where(
        Person.id.is_in(ids) & Person.active.eq(True))


async def _tell_coordinators(request_id: int, kind: str, person: Mapping[str, Any]) -> None:
    link = f"{config().base_url}/coordinator/privacy"
    for coordinator in await _coordinators():
        await queue_mail("privacy_review_needed", to_email=coordinator["email"], to_name=coordinator["name"],
                         locale=coordinator["locale"], context={"kind": kind, "request_id": request_id, "link": link},
                         key=f"privacy:review:{request_id}:{coordinator['id']}")


async def _tell_received(person: Mapping[str, Any], request_id: int, what: str) -> None:
    await queue_mail("privacy_request_received", to_email=person["email"], to_name=person["name"],
                     locale=person["locale"], context={"what": what, "request_id": request_id,
                                                       "link": f"{config().base_url}/my/data"},
                     key=f"privacy:received:{request_id}:{what}")


async def _tell_decided(person: Mapping[str, Any], kind: str, outcome: str, note: str) -> None:
    await queue_mail("privacy_request_decided", to_email=person["email"], to_name=person["name"],
                     locale=person["locale"], context={"kind": kind, "outcome": outcome, "note": note,
                                                       "link": f"{config().base_url}/my/data"},
                     key=f"privacy:decided:{person['id']}:{kind}:{outcome}:{utcnow().isoformat()}")


# ---------------------------------------------------------------- the guardian's link


GUARDIAN_ACTOR_ROLE = "guardian"


def guardian_actor(client: str) -> Actor:
    return Actor(None, frozenset({GUARDIAN_ACTOR_ROLE}), client[:64])


async def minors_of_guardian(guardian_email: str) -> list[dict[str, Any]]:
    """Students under 18 today whose profile names this guardian."""
    rows = await StudentProfile.select(
        StudentProfile.person, StudentProfile.birth_date, StudentProfile.person.name.as_alias("name"),
    ).where((StudentProfile.guardian_email == guardian_email) & StudentProfile.person.erased_at.is_null()).order_by(
        StudentProfile.person)
    today = _today()
    return [{"id": r["person"], "name": r["name"]} for r in rows if consent.is_minor(r["birth_date"], today)]


async def _over_limit(bucket: str, limit: int, window: timedelta) -> bool:
    now = utcnow()
    if await RateLimitHit.count().where((RateLimitHit.bucket == bucket) & (RateLimitHit.at > now - window)) >= limit:
        return True
    await RateLimitHit.insert(RateLimitHit(bucket=bucket, at=now))
    return False


async def _issue_guardian_link(guardian_email: str, *, mail: str, context: Mapping[str, Any]) -> None:
    token = new_token()
    now = utcnow()
    await GuardianAccess.insert(GuardianAccess(token_hash=digest(token), guardian_email=guardian_email,
                                               created_at=now, expires_at=now + timedelta(hours=GUARDIAN_LINK_HOURS)))
    await queue_mail(mail, to_email=guardian_email, locale="ja",
                     context={**context, "link": f"{config().base_url}/privacy/guardian/{token}",
                              "hours": GUARDIAN_LINK_HOURS},
                     key=f"privacy:guardian:{digest(token)[:24]}")


async def request_guardian_link(email: str, *, client: str) -> None:
    """A guardian asks for a link to their minors' data; the answer is the same whoever asks (no hint of who
    is registered), and the link goes only to an address a minor's profile names."""
    guardian_email = normalize_email(email)
    async with write_transaction():
        if await _over_limit(f"guardian-client:{client}", 20, timedelta(minutes=15)) or await _over_limit(
                f"guardian-address:{guardian_email}", 3, timedelta(hours=1)):
            raise RateLimited("リクエストが多すぎます。しばらくしてからもう一度お試しください。", retry_after=600)
        minors = await minors_of_guardian(guardian_email)
        if minors:
            await _issue_guardian_link(guardian_email, mail="privacy_guardian_link",
                                       context={"names": [m["name"] for m in minors]})


async def _ask_guardian(person: Mapping[str, Any]) -> None:
    guardian_email, _name = await consent.guardian_of(person["id"])
    if not guardian_email:
        raise Invalid("保護者のメールアドレスが登録されていないため、削除のご依頼を受け付けられません。"
                      "区の担当者にお問い合わせください。", code="guardian_missing")
    await _issue_guardian_link(guardian_email, mail="privacy_guardian_confirm", context={"student_name": person["name"]})


async def _guardian_by_token(token: str) -> str:
    if not token or len(token) > 100:
        raise NotFound("このリンクは無効です。", code="guardian_link_unknown")
    row = await GuardianAccess.select(GuardianAccess.guardian_email, GuardianAccess.expires_at).where(
        GuardianAccess.token_hash == digest(token)).first()
    if row is None:
        raise NotFound("このリンクは無効です。メールに記載されたリンクをもう一度ご確認ください。", code="guardian_link_unknown")
    if aware(row["expires_at"]) <= utcnow():
        raise DomainError("このリンクの有効期限が切れました。もう一度お申し込みください。", code="guardian_link_expired",
                          status=410)
    return row["guardian_email"]


async def guardian_view(token: str, *, client: str) -> dict[str, Any]:
    """What the guardian's page shows: each minor's data and open requests. Reading a minor's data as their
    guardian is recorded in the audit log (the student's own export shows it)."""
    async with write_transaction():
        guardian_email = await _guardian_by_token(token)
        children = []
        for minor in await minors_of_guardian(guardian_email):
            data = await export_of(minor["id"])
            pending = await _open_request(minor["id"], "deletion")
            children.append({**minor, "data": data, "pending_deletion": pending})
            await audit.record(guardian_actor(client), "guardian_viewed_data", subject_type="person",
                               subject_id=minor["id"])
    return {"guardian_email": guardian_email, "children": children}


async def _guardian_child(token: str, student_id: int) -> None:
    guardian_email = await _guardian_by_token(token)
    if student_id not in {m["id"] for m in await minors_of_guardian(guardian_email)}:
        raise NotFound("このリンクからは、その方の情報は扱えません。", code="not_your_minor")


async def guardian_request_deletion(token: str, student_id: int, *, client: str, note: str = "") -> dict[str, Any]:
    async with write_transaction():
        await _guardian_child(token, student_id)
    return await request_deletion(guardian_actor(client), student_id, via="guardian", note=note)


async def guardian_request_correction(token: str, student_id: int, fields: Mapping[str, Any], note: str = "", *,
                                      client: str) -> int:
    async with write_transaction():
        await _guardian_child(token, student_id)
    return await request_correction(guardian_actor(client), student_id, fields, note, via="guardian")
