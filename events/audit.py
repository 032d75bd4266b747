"""The audit log: every staff view of personal data, every admin action, logins and refusals.

The rule this module owns: **an audit entry is written inside the transaction of the read or change it
records**, by the service that does it, with the actor (person and client) who asked. If the transaction
rolls back, so does its entry; if the entry cannot be written, the view does not happen. Handlers never
write audit entries; `record` refuses to run outside a write transaction.

`refused()` is the one exception that opens its own transaction: a refusal (a guard said no, a CSRF token
did not match) has no service transaction to join.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from events.access import Actor, require_admin
from events.core.tables import AuditEntry
from events.db import in_write_transaction, utcnow, write_transaction

T = TypeVar("T")

# What an action means, in the words the admin's audit page shows (the code stays in the 詳細).
ACTION_LABELS = {
    "login": "ログイン",
    "authorization_refused": "権限のない操作を拒否",
    "csrf_refused": "不正なフォーム送信を拒否",
    "address_refused": "住所の表示を拒否",
    "student_contact_refused": "学生の連絡先の表示を拒否",
    "viewed_address": "家庭の住所を表示",
    "viewed_student_contact": "学生の連絡先を表示",
    "staff_viewed_registrations": "申込者一覧を表示",
    "staff_exported_registrations": "申込者一覧を出力",
    "staff_checkin_search": "受付で参加者を検索",
    "staff_registered_person": "窓口・電話で申込を登録",
    "staff_cancelled_registration": "申込を取り消し（職員）",
    "staff_viewed_people": "利用者一覧を表示",
    "staff_viewed_households": "家庭一覧を表示",
    "staff_viewed_household": "家庭の情報を表示",
    "staff_viewed_visit_requests": "訪問希望の一覧を表示",
    "staff_viewed_visit_request": "訪問希望を表示",
    "staff_viewed_visit_slots": "訪問枠の一覧を表示",
    "staff_viewed_pair_rules": "組み合わせの指定を表示",
    "staff_viewed_proposal": "マッチング案を表示",
    "staff_viewed_round": "訪問回を表示",
    "staff_viewed_exchange": "交流会の席を表示",
    "staff_viewed_met": "交流の記録を表示",
    "staff_viewed_outbox": "メール送信状況を表示",
    "staff_viewed_feedback": "アンケート結果を表示",
    "staff_exported_feedback": "アンケート回答を出力",
    "feedback_survey_closed": "アンケートの受付を終了",
    "staff_viewed_audit": "監査ログを表示",
    "event_cancelled": "イベントを中止",
    "event_message_sent": "申込者にお知らせを送信",
    "lottery_drawn": "抽選を実施",
    "lottery_cancelled": "抽選を無効と宣言",
    "invite_resent": "招待状を再送",
    "outbox_retry": "メールを再送",
    "admin_user_added": "アカウントを追加",
    "admin_user_enabled": "アカウントを有効化",
    "admin_user_disabled": "アカウントを無効化",
    "visit_round_created": "訪問回を作成",
    "visit_round_status": "訪問回の状態を変更",
    "visit_household_vetted": "家庭の確認（面談）を記録",
    "visit_matching_run": "マッチングを実行",
    "visit_pair_rule": "組み合わせを指定",
    "visit_proposal_confirmed": "マッチング案を確定",
    "safeguarding_hold": "安全のため訪問を保留",
    "exchange_planned": "交流会の席を決定",
    "exchange_imported": "施設・職員を取り込み",
    "exchange_replanned": "交流会の残りのラウンドの席を決め直し",
    "exchange_tables_mailed": "交流会の席の案内メールを送信",
    "exchange_facility_updated": "施設の情報を変更",
    "exchange_staff_updated": "職員の情報を変更",
    "imported_facilities": "施設を取り込み",
    "imported_staff": "職員を取り込み",
    "staff_viewed_exchange_seats": "交流会の席を取得（API）",
    "staff_viewed_exchange_chart": "交流会の座席表を表示",
    "staff_viewed_exchange_cards": "交流会の名札を表示",
    "staff_viewed_staff_list": "職員の一覧を表示",
    "staff_viewed_person": "職員の情報を表示",
    "invitation_sent": "イベントに招待",
    "invitation_withdrawn": "イベントへの招待を取り消し",
    "staff_viewed_invitations": "招待した方の一覧を表示",
}


def label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


async def record(
    actor: Actor | None,
    action: str,
    *,
    subject_type: str = "",
    subject_id: object = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """One entry, in the caller's write transaction (RuntimeError anywhere else: that is a bug, not input)."""
    if not in_write_transaction():
        raise RuntimeError(f"audit entry {action!r} outside a write transaction")
    actor = actor or Actor.system()
    await AuditEntry.insert(
        AuditEntry(
            at=utcnow(),
            actor=actor.person_id,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            detail=detail or {},
            client=actor.client[:64],
        )
    )


async def viewed(
    actor: Actor,
    action: str,
    read: Callable[[], Awaitable[T]],
    *,
    subject_type: str = "",
    subject_id: object = "",
    detail: dict[str, Any] | Callable[[T], dict[str, Any]] | None = None,
) -> T:
    """A staff view of personal data: `read()` and its audit entry in one write transaction (the one way)."""
    async with write_transaction():
        result = await read()
        await record(actor, action, subject_type=subject_type, subject_id=subject_id,
                     detail=detail(result) if callable(detail) else detail)
    return result


async def refused(actor: Actor | None, action: str, *, path: str, detail: dict[str, Any] | None = None) -> None:
    """A refusal: its own transaction, since nothing else happens."""
    async with write_transaction():
        await record(actor, action, subject_type="path", subject_id=path[:64], detail=detail)


async def view(actor: Actor, *, limit: int = 200, offset: int = 0, action: str | None = None) -> list[dict[str, Any]]:
    """The admin's audit page (who saw whom: itself personal data, so reading it is audited too)."""
    require_admin(actor)
    return await viewed(actor, "staff_viewed_audit", lambda: recent(limit=limit, offset=offset, action=action),
                        subject_type="audit", detail={"action": action, "offset": offset})


async def recent(*, limit: int = 200, offset: int = 0, action: str | None = None) -> list[dict[str, Any]]:
    query = AuditEntry.select(
        AuditEntry.all_columns(), AuditEntry.actor.email.as_alias("actor_email")
    ).order_by(AuditEntry.id, ascending=False).limit(limit).offset(offset)
    if action:
        query = query.where(AuditEntry.action == action)
    return await query
