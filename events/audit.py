"""The audit log: every staff view of personal data, every admin action, logins and refusals.

The rule this module owns: **an audit entry is written inside the transaction of the read or change it
records**, by the service that does it, with the actor (person and client) who asked. If the transaction
rolls back, so does its entry; if the entry cannot be written, the view does not happen. Handlers never
write audit entries; `record` refuses to run outside a write transaction.

`refused()` is the one exception that opens its own transaction: a refusal (a guard said no, a CSRF token
did not match) has no service transaction to join.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from events import timefmt
from events.access import Actor, require_admin
from events.core.tables import AuditEntry
from events.db import in_write_transaction, utcnow, write_transaction
from events.errors import Invalid
from events.sheets import to_csv
from events.timefmt import TOKYO

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
    "feedback_survey_sent_now": "アンケートを今すぐ送信",
    "staff_viewed_audit": "監査ログを表示",
    "staff_exported_audit": "監査ログを出力",
    "staff_viewed_person_data": "利用者の個人情報を表示（開示）",
    "guardian_viewed_data": "保護者がお子さまの情報を表示",
    "staff_corrected_profile": "利用者の情報を訂正（職員）",
    "privacy_correction_requested": "情報の訂正の依頼を受付",
    "privacy_correction_applied": "情報の訂正の依頼を反映",
    "privacy_correction_rejected": "情報の訂正の依頼を見送り",
    "privacy_deletion_requested": "アカウント削除の依頼を受付",
    "privacy_deletion_approved": "アカウント削除を承認（保存義務を確認）",
    "privacy_deletion_kept": "アカウント削除を保留（保存義務あり）",
    "privacy_erased": "アカウントを削除（匿名化）",
    "staff_viewed_privacy_requests": "個人情報に関する依頼の一覧を表示",
    "legal_hold_placed": "保存義務（法的保全）を設定",
    "legal_hold_lifted": "保存義務（法的保全）を解除",
    "retention_purged": "保存期間を過ぎた情報を削除",
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
    "visit_cancelled": "家庭訪問を取りやめ（職員）",
    "staff_viewed_visit": "家庭訪問の予定を表示",
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
            action=action[:64],  # every text column holds at most its size (varchar(64) on PostgreSQL)
            subject_type=subject_type[:64],
            subject_id=str(subject_id)[:64],
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
        await record(actor, action, subject_type="path", subject_id=path[:64],
                     detail={"path": path[:2000], **(detail or {})})  # the whole path, however long


async def recent(*, limit: int = 200, offset: int = 0, action: str | None = None) -> list[dict[str, Any]]:
    """The latest entries (for services and tests reading back what they recorded; the admin's page is `search`)."""
    query = AuditEntry.select(
        AuditEntry.all_columns(), AuditEntry.actor.email.as_alias("actor_email")
    ).order_by(AuditEntry.id, ascending=False).limit(limit).offset(offset)
    if action:
        query = query.where(AuditEntry.action == action)
    return await query


# ---------------------------------------------------------------- the reviewer's view: filters, pages, CSV


PAGE_SIZE = 50
MAX_EXPORT_ROWS = 50_000
CSV_HEADER = ("番号", "日時（日本時間）", "操作", "操作コード", "操作者", "対象の種類", "対象の番号", "接続元", "詳細")


@dataclass(frozen=True)
class AuditFilter:
    """What a reviewer narrows the log to: an action, an actor (e-mail, part of one, a person id, or
    "system"), a subject (type and id), and a range of days in Asia/Tokyo (both ends included)."""

    action: str = ""
    actor: str = ""
    subject_type: str = ""
    subject_id: str = ""
    since: date | None = None
    until: date | None = None

    @classmethod
    def parse(cls, *, action: str = "", actor: str = "", subject_type: str = "", subject_id: str = "",
              since: str = "", until: str = "") -> AuditFilter:
        texts = {"action": action, "actor": actor, "subject_type": subject_type, "subject_id": subject_id}
        clean = {key: " ".join(str(value or "").split()) for key, value in texts.items()}
        for key, value in clean.items():
            if len(value) > 254:
                raise Invalid("絞り込みの条件が長すぎます。", code="invalid_filter", field=key)
        days = {}
        for key, value in (("since", since), ("until", until)):
            text = str(value or "").strip()
            try:
                days[key] = date.fromisoformat(text) if text else None
            except ValueError:
                raise Invalid("日付は 2026-04-01 の形で入力してください。", code="invalid_date", field=key) from None
        if days["since"] and days["until"] and days["since"] > days["until"]:
            raise Invalid("期間の始まりが終わりより後になっています。", code="invalid_range", field="since")
        return cls(**clean, **days)

    def as_dict(self) -> dict[str, str]:
        return {"action": self.action, "actor": self.actor, "subject_type": self.subject_type,
                "subject_id": self.subject_id, "since": self.since.isoformat() if self.since else "",
                "until": self.until.isoformat() if self.until else ""}


def _filtered(query: Any, wanted: AuditFilter) -> Any:
    if wanted.action:
        query = query.where(AuditEntry.action == wanted.action)
    if wanted.actor:
        who = wanted.actor.lower()
        if who.isdigit():
            query = query.where(AuditEntry.actor == int(who))
        elif who in ("system", "システム"):
            query = query.where(AuditEntry.actor.is_null())
        else:
            query = query.where(AuditEntry.actor.email.like(f"%{who}%"))  # addresses are stored lower-case
    if wanted.subject_type:
        query = query.where(AuditEntry.subject_type == wanted.subject_type)
    if wanted.subject_id:
        query = query.where(AuditEntry.subject_id == wanted.subject_id)
    if wanted.since:  # Tokyo days, compared in UTC (as stored)
        query = query.where(AuditEntry.at >= datetime.combine(wanted.since, time(0), TOKYO).astimezone(UTC))
    if wanted.until:
        query = query.where(AuditEntry.at < datetime.combine(wanted.until + timedelta(days=1), time(0), TOKYO)
                            .astimezone(UTC))
    return query


def _select() -> Any:
    return AuditEntry.select(AuditEntry.all_columns(), AuditEntry.actor.email.as_alias("actor_email"),
                             AuditEntry.actor.name.as_alias("actor_name")).output(load_json=True)


def _labelled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "label": label(row["action"])} for row in rows]


async def search(actor: Actor, wanted: AuditFilter, *, cursor: str = "", limit: int = PAGE_SIZE) -> dict[str, Any]:
    """One page of the log, newest first; `next_cursor` continues after the last entry of this page (stable
    while new entries arrive, unlike an offset). Reading it is audited."""
    require_admin(actor)
    cursor = str(cursor or "").strip()
    if cursor and not cursor.isdigit():
        raise Invalid("ページの指定が正しくありません。", code="invalid_cursor", field="cursor")
    limit = min(max(int(limit), 1), 500)

    async def read() -> dict[str, Any]:
        query = _filtered(_select(), wanted).order_by(AuditEntry.id, ascending=False).limit(limit + 1)
        if cursor:
            query = query.where(AuditEntry.id < int(cursor))
        rows = await query
        entries = _labelled(rows[:limit])
        return {"entries": entries, "next_cursor": str(entries[-1]["id"]) if len(rows) > limit else None}

    return await viewed(actor, "staff_viewed_audit", read, subject_type="audit",
                        detail={**{k: v for k, v in wanted.as_dict().items() if v}, "cursor": cursor})


async def export_csv(actor: Actor, wanted: AuditFilter) -> bytes:
    """The filtered log as CSV (events.sheets: formula-safe, Excel-ready), newest first; the export is audited."""
    require_admin(actor)

    async def read() -> list[dict[str, Any]]:
        return _labelled(await _filtered(_select(), wanted).order_by(AuditEntry.id, ascending=False).limit(
            MAX_EXPORT_ROWS))

    rows = await viewed(actor, "staff_exported_audit", read, subject_type="audit",
                        detail=lambda found: {**{k: v for k, v in wanted.as_dict().items() if v},
                                              "count": len(found)})
    return to_csv(CSV_HEADER, [
        [r["id"], timefmt.short(r["at"], "%Y-%m-%d %H:%M:%S"), r["label"], r["action"],
         r["actor_email"] or "システム", r["subject_type"], r["subject_id"], r["client"],
         json.dumps(r["detail"] or {}, ensure_ascii=False, sort_keys=True)] for r in rows])
