"""Guardian consent: one table, one token flow, one expiry job, one page, for every subject that needs it.

The rule this module owns: **a student under 18 on the day needs their guardian's consent before holding a
place** — a seminar place (subject `registration`) or a home visit (subject `visit_request`). Who is a minor
is decided here too (`is_minor`): under 18 on the day by the birth date of the student profile; a person
without a student profile (facility staff, an adult registered at the counter) is an adult.

How it goes, for every subject alike:
- `request(subject, student_id, …)` (inside the caller's transaction) stores a random token's digest and
  mails the guardian a link to `/consent/<token>`; a subject holds at most one live request (pending or
  given). The request expires `consent_expiry_hours` after it is made, never before `not_before` (e.g. the
  close of a visit round's requests) and never after `not_after` (the event's start): `expiry()`.
- `decide(token, decision)` records given / refused once (a conditional UPDATE, so a double click or the
  expiry job cannot decide twice); a given consent may later be revoked by the guardian (`revoked`) until
  the subject's start. The subject's area acts on the outcome in the same transaction
  (`ConsentSubject.decided`), and the guardian gets one mail per outcome.
- `expire_due()` (a worker job) expires pending requests past their time; the subject acts on it.
- `withdraw(subject)` ends a pending request without asking anyone when its subject ended first.

Bad input never reaches the database: an unknown token is NotFound (404), an unknown decision Invalid (422),
a second answer Conflict (409), an expired link 410.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from events import timefmt
from events.config import config
from events.core.tables import Person, StudentProfile
from events.db import raw, utcnow, write_transaction
from events.errors import Conflict, DomainError, Invalid, NotFound
from events.mail import queue_mail
from events.seminars.tables import GuardianConsent
from events.tokens import digest, new_token

AGE_OF_MAJORITY = 18
DECISIONS = ("pending", "given", "refused", "expired", "withdrawn", "revoked")
LIVE_DECISIONS = ("pending", "given")
# What a guardian may send, and the decision each means (the page sends give/refuse/revoke).
_ANSWERS = {"give": "given", "given": "given", "refuse": "refused", "refused": "refused",
            "revoke": "revoked", "revoked": "revoked"}


def age_on(birth_date: date, day: date) -> int:
    years = day.year - birth_date.year
    return years - ((day.month, day.day) < (birth_date.month, birth_date.day))


def is_minor(birth_date: date | None, day: date) -> bool:
    """Under 18 on `day`. No birth date means no student profile: an adult (see the module docstring)."""
    return birth_date is not None and age_on(birth_date, day) < AGE_OF_MAJORITY


async def needs_consent(person_id: int, day: date) -> bool:
    profile = await StudentProfile.select(StudentProfile.birth_date).where(StudentProfile.person == person_id).first()
    return bool(profile) and is_minor(profile["birth_date"], day)


async def minors_among(person_ids: Iterable[int], day: date) -> set[int]:
    ids = list(person_ids)
    if not ids:
        return set()
    rows = await StudentProfile.select(StudentProfile.person, StudentProfile.birth_date).where(
        StudentProfile.person.is_in(ids))
    return {row["person"] for row in rows if is_minor(row["birth_date"], day)}


async def guardian_of(person_id: int) -> tuple[str, str]:
    """(guardian e-mail, guardian name) from the student profile; ("", "") when none is recorded."""
    profile = await StudentProfile.select(StudentProfile.guardian_email, StudentProfile.guardian_name).where(
        StudentProfile.person == person_id).first()
    if not profile:
        return "", ""
    # one line whatever was stored before names were normalised: it becomes the To: display name of a mail
    return (profile["guardian_email"] or "").strip().lower(), " ".join((profile["guardian_name"] or "").split())


def expiry(now: datetime, *, hours: int, not_before: datetime | None = None,
           not_after: datetime | None = None) -> datetime:
    """When a request made `now` expires: `hours` later, at the earliest `not_before`, at the latest `not_after`."""
    expires = now + timedelta(hours=hours)
    if not_before is not None:
        expires = max(expires, not_before)
    if not_after is not None:
        expires = min(expires, not_after)
    return expires


# ---------------------------------------------------------------- subjects


@dataclass(frozen=True)
class Subject:
    kind: str  # registration | visit_request
    id: int


@dataclass(frozen=True)
class Description:
    """What the guardian is asked to consent to, as the mail and the page show it (Japanese)."""

    title: str  # 「ライフデザインセミナー」 / 「2026年度 第2回 家庭訪問」
    asks: str  # one sentence: what the student applied for
    facts: tuple[tuple[str, str], ...]  # (label, value) rows: 日時, 会場 / 訪問先の地区 …
    notes: tuple[str, ...] = ()  # what happens next, what is kept, safeguarding promises
    purpose: str = ""  # what was consented to, kept with the record
    starts_at: datetime | None = None  # the subject's start: consent can be revoked until then
    text_version: str = "consent-2026-12"
    link: str = ""  # where the student's side can be seen (an event page), or ""


class ConsentSubject:
    """What a subject's area tells this module: how to describe it and what an outcome does to it."""

    async def describe(self, subject_id: int) -> Description:  # pragma: no cover - interface
        raise NotImplementedError

    async def decided(self, subject_id: int, decision: str) -> None:  # pragma: no cover - interface
        """given / refused / expired / revoked, inside the deciding transaction."""
        raise NotImplementedError

    async def outcome_context(self, subject_id: int, decision: str) -> dict[str, Any]:
        """More for the guardian's outcome mail (a `status_link` to the subject's own page, say); {} by default."""
        return {}


_SUBJECTS: dict[str, ConsentSubject] = {}


def register_subject(kind: str, subject: ConsentSubject) -> None:
    _SUBJECTS[kind] = subject


def _subject(kind: str) -> ConsentSubject:
    try:
        return _SUBJECTS[kind]
    except KeyError:  # an area that asked for consent and was then not installed
        raise NotFound("このリンクは無効です。", code="consent_not_found") from None


# ---------------------------------------------------------------- requests


async def request(subject: Subject, student_id: int, *, not_before: datetime | None = None,
                  not_after: datetime | None = None) -> bool:
    """Ask the guardian (in the caller's transaction); False when the subject already has a live request."""
    if await GuardianConsent.exists().where(
        (GuardianConsent.subject_kind == subject.kind) & (GuardianConsent.subject_id == subject.id)
        & GuardianConsent.decision.is_in(list(LIVE_DECISIONS))
    ):
        return False
    guardian_email, guardian_name = await guardian_of(student_id)
    if not guardian_email:
        raise Invalid("18歳未満の方は、保護者のメールアドレスを登録してから申し込んでください。", code="guardian_missing")
    student = await Person.select(Person.name).where(Person.id == student_id).first()
    described = await _subject(subject.kind).describe(subject.id)
    now = utcnow()
    expires = expiry(now, hours=config().consent_expiry_hours, not_before=not_before, not_after=not_after)
    token = new_token()
    await GuardianConsent.insert(GuardianConsent(
        subject_kind=subject.kind, subject_id=subject.id, student=student_id, guardian_email=guardian_email,
        guardian_name=guardian_name, token_hash=digest(token), text_version=described.text_version,
        purpose=described.purpose, decision="pending", created_at=now, expires_at=expires,
    ))
    await queue_mail(
        "consent_request", to_email=guardian_email, to_name=guardian_name, locale="ja",
        context={**_mail_context(described, student["name"] if student else ""),
                 "link": f"{config().base_url}/consent/{token}", "expires": timefmt.long(expires)},
        key=f"consent:{subject.kind}:{subject.id}:request:{digest(token)[:16]}",
    )
    return True


def _mail_context(described: Description, student_name: str) -> dict[str, Any]:
    return {"title": described.title, "asks": described.asks, "facts": list(described.facts),
            "notes": list(described.notes), "student_name": student_name}


# What ended a subject before the guardian answered (`withdraw(ended_by=…)`), as the guardian's page says it.
ENDED_BY = {
    "student": "生徒さんご本人がお申込みを取り消したため、ご回答の必要はありません。",
    "coordinator": "区の担当者がお申込みを取り消したため、ご回答の必要はありません。",
    "event": "イベントが中止になったため、ご回答の必要はありません。",
    "account": "生徒さんのアカウントが削除されたため、ご回答の必要はありません。",
    "details": "生徒さんの登録内容（生年月日または保護者の方）が訂正されたため、このお願いは無効になりました。"
               "必要な場合は、新しいお願いをお送りしています。",
}
ENDED_UNKNOWN = "生徒さんのお申込みが取り消されたため、ご回答の必要はありません。"


async def withdraw(subject: Subject, *, ended_by: str = "") -> int:
    """The subject ended before the guardian answered: the pending request closes, nobody is mailed; `ended_by`
    (a key of ENDED_BY) is what the guardian's page gives as the reason."""
    if ended_by and ended_by not in ENDED_BY:
        raise ValueError(f"unknown reason {ended_by!r}")
    rows = await GuardianConsent.update({GuardianConsent.decision: "withdrawn", GuardianConsent.decided_at: utcnow(),
                                         GuardianConsent.ended_by: ended_by}).where(
        (GuardianConsent.subject_kind == subject.kind) & (GuardianConsent.subject_id == subject.id)
        & (GuardianConsent.decision == "pending")
    ).returning(GuardianConsent.id)
    return len(rows)


async def state_of(subject: Subject) -> str:
    """The latest decision for the subject, or "none" when no request was made."""
    row = await GuardianConsent.select(GuardianConsent.decision).where(
        (GuardianConsent.subject_kind == subject.kind) & (GuardianConsent.subject_id == subject.id)
    ).order_by(GuardianConsent.id, ascending=False).first()
    return row["decision"] if row else "none"


async def states_of(kind: str, subject_ids: Iterable[int]) -> dict[int, str]:
    ids = list(subject_ids)
    if not ids:
        return {}
    rows = await GuardianConsent.select(GuardianConsent.subject_id, GuardianConsent.decision).where(
        (GuardianConsent.subject_kind == kind) & GuardianConsent.subject_id.is_in(ids)
    ).order_by(GuardianConsent.id)
    return {row["subject_id"]: row["decision"] for row in rows}  # the latest wins


async def records(subject: Subject) -> list[dict[str, Any]]:
    """The kept record: who, for what, which text version, when and from where."""
    return await GuardianConsent.select(
        GuardianConsent.id, GuardianConsent.student, GuardianConsent.guardian_email, GuardianConsent.guardian_name,
        GuardianConsent.text_version, GuardianConsent.purpose, GuardianConsent.decision, GuardianConsent.created_at,
        GuardianConsent.expires_at, GuardianConsent.decided_at, GuardianConsent.decided_from,
    ).where((GuardianConsent.subject_kind == subject.kind) & (GuardianConsent.subject_id == subject.id)).order_by(
        GuardianConsent.id)


# ---------------------------------------------------------------- the guardian's page


async def _by_token(token: str) -> dict[str, Any]:
    row = await GuardianConsent.select(
        GuardianConsent.all_columns(), GuardianConsent.student.name.as_alias("student_name"),
    ).where(GuardianConsent.token_hash == digest(token or "")).first()
    if row is None:
        raise NotFound("このリンクは無効です。メールに記載されたリンクをもう一度ご確認ください。", code="consent_not_found")
    return row


def _state(row: Mapping[str, Any], described: Description, now: datetime) -> str:
    if row["decision"] == "pending" and row["expires_at"] <= now:
        return "expired"
    return row["decision"]


def _may_revoke(row: Mapping[str, Any], described: Description, now: datetime) -> bool:
    return row["decision"] == "given" and (described.starts_at is None or now < described.starts_at)


async def view(token: str) -> dict[str, Any]:
    """What the guardian's page shows: who, what, where, when, the state, and which answers are possible."""
    row = await _by_token(token)
    described = await _subject(row["subject_kind"]).describe(row["subject_id"])
    now = utcnow()
    state = _state(row, described, now)
    return {
        "state": state, "subject_kind": row["subject_kind"], "student_name": row["student_name"],
        "guardian_name": row["guardian_name"], "title": described.title, "asks": described.asks,
        "facts": list(described.facts), "notes": list(described.notes), "purpose": row["purpose"],
        "text_version": row["text_version"], "expires_at": row["expires_at"], "decided_at": row["decided_at"],
        "link": described.link, "may_answer": state == "pending", "may_revoke": _may_revoke(row, described, now),
        "ended": ENDED_BY.get(row.get("ended_by") or "", ENDED_UNKNOWN) if state == "withdrawn" else "",
    }


async def decide(token: str, answer: str, *, client: str = "") -> dict[str, Any]:
    """The guardian's answer (give / refuse, or revoke a given consent), in one transaction with its effect."""
    decision = _ANSWERS.get((answer or "").strip().lower())
    if decision is None:
        raise Invalid("「同意する」または「同意しない」を選んでください。", code="invalid_decision", field="decision")
    async with write_transaction():
        row = await _by_token(token)
        subject = _subject(row["subject_kind"])
        described = await subject.describe(row["subject_id"])
        now = utcnow()
        if decision == "revoked":
            if not _may_revoke(row, described, now):
                raise Conflict("この同意は取り消せません（未回答、または開始後）。", code="consent_not_revocable",
                               decision=row["decision"])
            expect = "given"
        else:
            if row["decision"] != "pending":
                raise Conflict("この同意のお願いには、既にご回答いただいています。", code="consent_already_decided",
                               decision=row["decision"])
            if row["expires_at"] <= now:
                raise DomainError("回答の期限を過ぎたため、お申込みは取り消されました。", code="consent_expired", status=410)
            expect = "pending"
        done = await GuardianConsent.update({
            GuardianConsent.decision: decision, GuardianConsent.decided_at: now, GuardianConsent.decided_from: client[:64],
        }).where((GuardianConsent.id == row["id"]) & (GuardianConsent.decision == expect)).returning(GuardianConsent.id)
        if not done:
            raise Conflict("この同意のお願いには、既にご回答いただいています。", code="consent_already_decided")
        await subject.decided(row["subject_id"], decision)
        await _tell_guardian(row, described, decision)
    return {"decision": decision, "subject_kind": row["subject_kind"], "subject_id": row["subject_id"]}


async def _tell_guardian(row: Mapping[str, Any], described: Description, decision: str) -> None:
    await queue_mail(
        "consent_outcome", to_email=row["guardian_email"], to_name=row["guardian_name"], locale="ja",
        context={"status_link": "", **_mail_context(described, row.get("student_name") or ""), "decision": decision,
                 "subject_kind": row["subject_kind"],
                 **await _subject(row["subject_kind"]).outcome_context(row["subject_id"], decision)},
        key=f"consent:{row['subject_kind']}:{row['subject_id']}:{row['id']}:{decision}",
    )


# ---------------------------------------------------------------- the one expiry job


async def expire_due(now: datetime | None = None, limit: int = 200) -> int:
    """Worker job: pending requests past their time expire, one transaction each; the subject acts on it
    and the guardian is told. Cheap when none is due (one indexed query)."""
    now = now or utcnow()
    due = await GuardianConsent.select(GuardianConsent.id).where(
        (GuardianConsent.decision == "pending") & (GuardianConsent.expires_at <= now)
    ).order_by(GuardianConsent.id).limit(limit)
    expired = 0
    for item in due:
        async with write_transaction():
            rows = await GuardianConsent.update({GuardianConsent.decision: "expired", GuardianConsent.decided_at: now}).where(
                (GuardianConsent.id == item["id"]) & (GuardianConsent.decision == "pending")
            ).returning(GuardianConsent.id)
            if not rows:
                continue
            row = await GuardianConsent.select(
                GuardianConsent.all_columns(), GuardianConsent.student.name.as_alias("student_name"),
            ).where(GuardianConsent.id == item["id"]).first()
            subject = _SUBJECTS.get(row["subject_kind"])
            if subject is None:
                continue
            described = await subject.describe(row["subject_id"])
            await subject.decided(row["subject_id"], "expired")
            await _tell_guardian(row, described, "expired")
            expired += 1
    return expired


# ---------------------------------------------------------------- corrections, erasure and retention (events.privacy)


async def rerun_pending(student_id: int) -> int:
    """The student's birth date or guardian changed (a correction): every pending request is withdrawn and the
    guardian now on the profile is asked again, with at least as long to answer as before (in the caller's
    transaction). Returns how many requests were made again."""
    pending = await GuardianConsent.select(
        GuardianConsent.subject_kind, GuardianConsent.subject_id, GuardianConsent.expires_at,
    ).where((GuardianConsent.student == student_id) & (GuardianConsent.decision == "pending")).order_by(
        GuardianConsent.id)
    asked = 0
    for row in pending:
        subject = Subject(row["subject_kind"], row["subject_id"])
        await withdraw(subject, ended_by="details")
        described = await _subject(subject.kind).describe(subject.id)
        if await request(subject, student_id, not_before=row["expires_at"], not_after=described.starts_at):
            asked += 1
    return asked


async def erase_student(student_id: int) -> int:
    """The student's account is erased: pending requests close (nobody is asked any more), links stop working,
    and the guardian's name, address and answer's origin go; the decision and its text version stay, so that
    counts of consents given survive."""
    await GuardianConsent.update({GuardianConsent.decision: "withdrawn", GuardianConsent.decided_at: utcnow(),
                                  GuardianConsent.ended_by: "account"}).where(
        (GuardianConsent.student == student_id) & (GuardianConsent.decision == "pending"))
    rows = await raw(
        "UPDATE guardian_consent SET guardian_email = '', guardian_name = '', purpose = '', decided_from = '', "
        "token_hash = 'erased:' || id WHERE student = {} RETURNING id", student_id)
    return len(rows)


async def purge_links(cutoff: datetime, *, limit: int = 500) -> int:
    """Retention: a consent link answered, withdrawn or expired before `cutoff` stops working (its digest is
    replaced); the record itself stays. One batch, in the caller's transaction."""
    rows = await raw(
        "UPDATE guardian_consent SET token_hash = 'purged:' || id WHERE id IN (SELECT id FROM guardian_consent "
        "WHERE token_hash NOT LIKE 'purged:%' AND token_hash NOT LIKE 'erased:%' AND ((decision <> 'pending' "
        f"AND decided_at < {{}}) OR expires_at < {{}}) ORDER BY id LIMIT {int(limit)}) RETURNING id", cutoff, cutoff)
    return len(rows)


async def count_purgeable_links(cutoff: datetime) -> int:
    rows = await raw(
        "SELECT COUNT(*) AS n FROM guardian_consent WHERE token_hash NOT LIKE 'purged:%' AND token_hash NOT LIKE "
        "'erased:%' AND ((decision <> 'pending' AND decided_at < {}) OR expires_at < {})", cutoff, cutoff)
    return int(rows[0]["n"])
