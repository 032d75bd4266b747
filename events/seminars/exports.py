"""Registrations of one event as a table with Japanese headers: CSV (UTF-8 with BOM, for Excel) and XLSX.

Public functions:

- `registration_table(event_id, *, status=None) -> (headers, rows)`   the plain table both exports share
- `export(event_id, fmt, *, actor, status=None) -> bytes`              fmt csv | xlsx; audited
- `export_filename(event_id, ext) -> str`                              e.g. "event-12-registrations.csv"

The export contains minors' data: it is audited, in the same transaction, by `export`.
"""

from __future__ import annotations

from typing import Any

from events import access, audit, sheets, timefmt
from events.access import Actor
from events.db import write_transaction
from events.errors import Invalid
from events.seminars import allocation
from events.seminars.registration import registration_rows
from events.seminars.schedule import questions_of

STATUS_JA = {
    "confirmed": "参加確定", "waitlisted": "キャンセル待ち", "pending_consent": "保護者同意待ち", "applied": "抽選申込",
    "cancelled": "取消", "attended": "出席", "no_show": "欠席", "offered": "繰り上げの返事待ち",
}
LEVEL_JA = {"high_school": "高校生", "university": "大学生"}
HEADERS = ["申込番号", "状態", "キャンセル待ち順", "氏名", "ふりがな", "メールアドレス", "電話番号", "学校種別", "学校名",
           "学年", "18歳未満", "保護者氏名", "保護者メールアドレス", "保護者電話番号", "保護者の同意日時", "申込日時",
           "配慮の希望", "抽選券番号", "優先の区分"]


async def registration_table(event_id: int, *, status: str | None = None) -> tuple[list[str], list[list[Any]]]:
    questions = await questions_of(event_id)
    rows = []
    for r in await registration_rows(event_id, status=status):
        answers = r["answers"] or {}
        extra = []
        for q in questions:
            value = answers.get(str(q["id"]))
            extra.append("、".join(value) if isinstance(value, list) else ("はい" if value is True else value or ""))
        rows.append([
            r["id"], STATUS_JA[r["status"]], r["waitlist_rank"] or "", r["name"], r["kana"], r["email"], r["phone"],
            LEVEL_JA.get(r["school_level"] or "", ""), r["school_name"], r["grade"] or "",
            "はい" if r["is_minor"] else "", r["guardian_name"], r["guardian_email"], r["guardian_phone"],
            timefmt.short(r["consent_given_at"], "%Y-%m-%d %H:%M") if r["consent_given_at"] else "",
            timefmt.short(r["created_at"], "%Y-%m-%d %H:%M"), r["accommodation"],
            r["lottery_ticket"], allocation.priority_label(r["priority_reason"]), *extra,
        ])
    return HEADERS + [q["label"] for q in questions], rows


async def export(event_id: int, fmt: str, *, actor: Actor, status: str | None = None) -> bytes:
    """The registrations of an event as CSV or XLSX; the export is audited in the same transaction."""
    access.require_staff(actor)
    if fmt not in ("csv", "xlsx"):
        raise Invalid("出力形式は csv か xlsx です。", code="invalid_format", field="format")
    async with write_transaction():
        headers, rows = await registration_table(event_id, status=status)
        await audit.record(actor, "staff_exported_registrations", subject_type="event", subject_id=event_id,
                           detail={"format": fmt, "status": status, "rows": len(rows)})
    return sheets.to_csv(headers, rows) if fmt == "csv" else sheets.to_xlsx(headers, rows, title="申込者一覧")


def export_filename(event_id: int, ext: str) -> str:
    return f"event-{event_id}-registrations.{ext}"
