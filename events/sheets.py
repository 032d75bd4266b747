"""Tables people open in a spreadsheet: CSV (UTF-8 with BOM, CRLF, as Excel on a ward PC expects) and XLSX.

One writer for every export (registrations, survey answers); every text cell is guarded against formula
injection (a cell starting with = + - @ would run in Excel). Pure: bytes out, no database.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = "、".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text[:1] in _FORMULA_STARTS else text


def to_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([cell(h) for h in header])
    writer.writerows([cell(v) for v in row] for row in rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(header: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "一覧") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.active
    sheet.title = (title or "一覧")[:31].translate({ord(c): "_" for c in "[]:*?/\\"})
    sheet.append([cell(h) for h in header])
    for first in sheet[1]:
        first.font = Font(bold=True)
        first.alignment = Alignment(wrap_text=True, vertical="top")
    for row in rows:
        sheet.append([v if isinstance(v, int) and not isinstance(v, bool) else cell(v) for v in row])
    sheet.freeze_panes = "A2"
    for index, name in enumerate(header, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = max(10, min(40, len(str(name)) * 2 + 2))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
