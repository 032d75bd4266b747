"""Registrations of one event as a table with Japanese headers: CSV (UTF-8 with BOM, for Excel) and XLSX.

Public functions:

- `registration_table(event_id, *, status=None) -> (headers, rows)`   the plain table both exports share
- `export_csv(event_id, *, status=None) -> bytes`
- `export_xlsx(event_id, *, status=None) -> bytes`
- `export_filename(event_id, ext) -> str`                              e.g. "event-12-registrations.csv"

Callers audit the export (it contains minors' data).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from events.seminars.registration import list_registrations
from events.seminars.schedule import questions_of
from events.timefmt import TOKYO

STATUS_JA = {
    "confirmed": "参加確定", "waitlisted": "キャンセル待ち", "pending_consent": "保護者同意待ち", "applied": "抽選申込",
    "cancelled": "取消", "attended": "出席", "no_show": "欠席",
}
LEVEL_JA = {"high_school": "高校生", "university": "大学生"}
HEADERS = ["申込番号", "状態", "キャンセル待ち順", "氏名", "ふりがな", "メールアドレス", "学校種別", "学校名", "学年",
           "18歳未満", "申込日時"]


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # a cell starting with = + - @ would run as a formula in Excel
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def registration_table(event_id: int, *, status: str | None = None) -> tuple[list[str], list[list[Any]]]:
    questions = await questions_of(event_id)
    rows = []
    for r in await list_registrations(event_id, status=status):
        answers = r["answers"] or {}
        extra = []
        for q in questions:
            value = answers.get(str(q["id"]))
            extra.append("、".join(value) if isinstance(value, list) else ("はい" if value is True else value or ""))
        rows.append([
            r["id"], STATUS_JA[r["status"]], r["waitlist_rank"] or "", r["name"], r["kana"], r["email"],
            LEVEL_JA.get(r["school_level"] or "", ""), r["school_name"], r["grade"] or "",
            "はい" if r["is_minor"] else "", r["created_at"].astimezone(TOKYO).strftime("%Y-%m-%d %H:%M"), *extra,
        ])
    return HEADERS + [q["label"] for q in questions], rows


async def export_csv(event_id: int, *, status: str | None = None) -> bytes:
    headers, rows = await registration_table(event_id, status=status)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


async def export_xlsx(event_id: int, *, status: str | None = None) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    headers, rows = await registration_table(event_id, status=status)
    book = Workbook()
    sheet = book.active
    sheet.title = "申込者一覧"
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([v if isinstance(v, int) else _cell(v) for v in row])
    sheet.freeze_panes = "A2"
    for index, header in enumerate(headers, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = max(10, min(40, len(header) * 2 + 2))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def export_filename(event_id: int, ext: str) -> str:
    return f"event-{event_id}-registrations.{ext}"
