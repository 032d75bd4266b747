"""Guardian consent for students under 18 (no account: a link with a secret token, only its hash is stored).

Public functions:

- `consent_request_by_token(token) -> dict`   what the consent page shows: state (pending | given | refused |
      expired | withdrawn), student_name, guardian_name, title, venue, when (plain Japanese), starts_at, ends_at,
      description, consent_text, text_version, expires_at, purpose. NotFound(code consent_not_found).
- `decide_consent(token, give, client) -> dict`   {"decision", "registration_id", "registration_status"};
      codes consent_not_found, consent_already_decided (409), consent_expired (410).
- `expire_consents(now=None) -> int`          worker job: pending requests past their expiry release the seat.
- `consent_records(registration_id) -> list[dict]`  the kept record (who, for what, text version, when, how).

Consent confirms the place (mail to the student with the invite, and to the guardian); refusal or expiry ends it,
frees the seat and promotes the waiting list, in the same transaction.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from events.db import utcnow
from events.errors import Conflict, DomainError, NotFound
from events.mail import queue_mail
from events.seminars import registration
from events.seminars.schedule import aware
from events.seminars.tables import Event, GuardianConsent, Registration

CONSENT_TEXT = (
    "{student_name}さんは、金沢区こども家庭支援課が開催する「{title}」への参加を申し込みました。\n"
    "日時: {when}\n会場: {venue}\n\n"
    "18歳未満の方の参加には、保護者の方の同意が必要です。内容をご確認のうえ、同意いただける場合は"
    "「同意する」を、同意いただけない場合は「同意しない」を押してください。\n"
    "いただいた回答は、申込の記録として区が保管します（誰が・どの内容に・いつ同意したか）。"
    "同意いただけない場合や期限までにご回答がない場合、お申込みは取り消され、席はキャンセル待ちの方にお譲りします。"
)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _load(token: str) -> dict[str, Any]:
    row = await GuardianConsent.select(
        GuardianConsent.all_columns(), GuardianConsent.student.name.as_alias("student_name"),
    ).where(GuardianConsent.token_hash == _digest(token or "")).first()
    if row is None:
        raise NotFound("このリンクは無効です。メールに記載されたリンクをもう一度ご確認ください。", code="consent_not_found")
    return row


async def consent_request_by_token(token: str) -> dict[str, Any]:
    row = await _load(token)
    reg = await Registration.select(Registration.event, Registration.status).where(
        Registration.id == row["registration"]
    ).first()
    event = await Event.select().where(Event.id == reg["event"]).first()
    event["starts_at"], event["ends_at"] = aware(event["starts_at"]), aware(event["ends_at"])
    context = registration.event_context(event, "ja")
    expires = aware(row["expires_at"])
    state = row["decision"]
    if state == "pending" and expires <= utcnow():
        state = "expired"
    return {
        "state": state,
        "student_name": row["student_name"],
        "guardian_name": row["guardian_name"],
        "title": context["title"],
        "venue": context["venue"],
        "when": context["when"],
        "starts_at": event["starts_at"],
        "ends_at": event["ends_at"],
        "description": event["description"],
        "event_url": context["event_url"],
        "consent_text": CONSENT_TEXT.format(student_name=row["student_name"], title=context["title"],
                                            when=context["when"], venue=context["venue"] or "未定"),
        "text_version": row["text_version"],
        "purpose": row["purpose"],
        "expires_at": expires,
        "decided_at": aware(row["decided_at"]),
        "registration_status": reg["status"],
    }


async def _guardian_outcome(row: dict[str, Any], decision: str) -> None:
    reg = await Registration.select(Registration.event).where(Registration.id == row["registration"]).first()
    event = await Event.select().where(Event.id == reg["event"]).first()
    event["starts_at"], event["ends_at"] = aware(event["starts_at"]), aware(event["ends_at"])
    await queue_mail(
        "seminar_consent_outcome", to_email=row["guardian_email"], to_name=row["guardian_name"], locale="ja",
        context={**registration.event_context(event, "ja"), "decision": decision, "to_guardian": True,
                 "student_name": row["student_name"], "registration_id": row["registration"]},
        key=f"seminar:{row['registration']}:guardian:{decision}",
    )


async def decide_consent(token: str, give: bool, client: str) -> dict[str, Any]:
    decision = "given" if give else "refused"
    async with registration.seat_transaction():
        row = await _load(token)
        now = utcnow()
        if row["decision"] != "pending":
            raise Conflict("この同意のお願いには、既にご回答いただいています。", code="consent_already_decided",
                           decision=row["decision"])
        if aware(row["expires_at"]) <= now:
            raise DomainError("回答の期限を過ぎたため、お申込みは取り消されました。", code="consent_expired", status=410)
        # conditional: a second click, or the expiry job, cannot decide the same request again
        done = await GuardianConsent.update({
            GuardianConsent.decision: decision, GuardianConsent.decided_at: now, GuardianConsent.decided_from: client[:64],
        }).where((GuardianConsent.id == row["id"]) & (GuardianConsent.decision == "pending")).returning(GuardianConsent.id)
        if not done:
            raise Conflict("この同意のお願いには、既にご回答いただいています。", code="consent_already_decided")
        if give:
            updated = await registration.confirm_pending(row["registration"])
        else:
            updated = await registration.release_pending(row["registration"], "refused")
        await _guardian_outcome(row, decision)
        status = updated["status"] if updated else (
            await Registration.select(Registration.status).where(Registration.id == row["registration"]).first()
        )["status"]
    return {"decision": decision, "registration_id": row["registration"], "registration_status": status}


async def expire_consents(now: datetime | None = None) -> int:
    """Worker job: requests past expiry release their seat (one transaction each, cheap when none is due)."""
    now = now or utcnow()
    due = await GuardianConsent.select(GuardianConsent.id).where(
        (GuardianConsent.decision == "pending") & (GuardianConsent.expires_at <= now)
    ).limit(200)
    expired = 0
    for item in due:
        async with registration.seat_transaction():
            rows = await GuardianConsent.update({GuardianConsent.decision: "expired", GuardianConsent.decided_at: now}).where(
                (GuardianConsent.id == item["id"]) & (GuardianConsent.decision == "pending")
            ).returning(GuardianConsent.id)
            if not rows:
                continue
            row = await GuardianConsent.select(
                GuardianConsent.all_columns(), GuardianConsent.student.name.as_alias("student_name"),
            ).where(GuardianConsent.id == item["id"]).first()
            await registration.release_pending(row["registration"], "expired")
            await _guardian_outcome(row, "expired")
            expired += 1
    return expired


async def consent_records(registration_id: int) -> list[dict[str, Any]]:
    rows = await GuardianConsent.select(
        GuardianConsent.id, GuardianConsent.student, GuardianConsent.guardian_email, GuardianConsent.guardian_name,
        GuardianConsent.text_version, GuardianConsent.purpose, GuardianConsent.decision, GuardianConsent.created_at,
        GuardianConsent.expires_at, GuardianConsent.decided_at, GuardianConsent.decided_from,
    ).where(GuardianConsent.registration == registration_id).order_by(GuardianConsent.id)
    return rows
