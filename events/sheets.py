"""Tables people open in a spreadsheet: CSV (UTF-8 with BOM, CRLF, as Excel on a ward PC expects) and XLSX,
and the one XLSX reader of uploads.

One writer for every export (registrations, survey answers, the audit log); no cell — header or data — can
become a formula. CSV has no cell types, so a text cell starting with = + - @ (or a tab or CR) gets a leading
`'`, which Excel reads as "text" and hides. XLSX has types: every text cell is written as a string cell
(never a formula), so it needs no `'` and shows exactly what was stored.

The reader refuses a file whose parts would unzip beyond `MAX_XLSX_UNZIPPED` before reading any of them
(a 1.6 MB file can hold a 1.6 GB string). It is blocking work: async callers run it in a thread.
Pure: bytes in, bytes out, no database.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from typing import Any

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_MEDIA_TYPE = "text/csv"  # the shell's responses add "; charset=utf-8" to text/* themselves (once)
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_XLSX_UNZIPPED = 30 * 1024 * 1024


def text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "、".join(str(v) for v in value)
    return str(value)


def cell(value: Any) -> str:
    """A CSV cell: text that a spreadsheet will not run as a formula."""
    text = text_of(value)
    return "'" + text if text[:1] in _FORMULA_STARTS else text


def to_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([cell(h) for h in header])
    writer.writerows([cell(v) for v in row] for row in rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _string_cells(sheet: Any, values: Sequence[Any], row: int) -> None:
    for column, value in enumerate(values, start=1):
        target = sheet.cell(row=row, column=column)
        if isinstance(value, int) and not isinstance(value, bool):
            target.value = value
        else:
            target.value = _printable(text_of(value))
            target.data_type = "s"  # a string cell, whatever it starts with: never a formula


def _printable(text: str) -> str:
    # XML 1.0 cannot carry most control characters; openpyxl would refuse the whole workbook.
    return "".join(ch if ch in "\t\n\r" or ch >= " " else " " for ch in text)


def to_xlsx(header: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "一覧") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.active
    sheet.title = (title or "一覧")[:31].translate({ord(c): "_" for c in "[]:*?/\\"})
    _string_cells(sheet, list(header), 1)
    for first in sheet[1]:
        first.font = Font(bold=True)
        first.alignment = Alignment(wrap_text=True, vertical="top")
    for number, row in enumerate(rows, start=2):
        _string_cells(sheet, list(row), number)
    sheet.freeze_panes = "A2"
    for index, name in enumerate(header, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = max(10, min(40, len(str(name)) * 2 + 2))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


class SheetRejected(ValueError):
    """An upload that cannot (or must not) be read; `message` says why, in words a coordinator can act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def xlsx_rows(data: bytes, *, max_rows: int, max_unzipped: int = MAX_XLSX_UNZIPPED) -> list[tuple[int, list[Any]]]:
    """The non-blank rows of the first sheet, with their row numbers in the sheet (at most max_rows + 1).

    Every part's declared size is checked before anything is inflated; Python's zipfile never inflates a part
    beyond its declared size (a part that lies fails its CRC), so the check bounds memory and time."""
    from openpyxl import load_workbook

    unreadable = SheetRejected("bad_file", "Excel ファイルを開けませんでした。ファイルが壊れていないかご確認ください。")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(max(info.file_size, 0) for info in archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        raise unreadable from None
    if unzipped > max_unzipped:
        raise SheetRejected("too_large_unzipped",
                            f"Excel ファイルの中身が大きすぎます（展開後 {unzipped // 1024 // 1024}MB、上限 "
                            f"{max_unzipped // 1024 // 1024}MB）。必要な列と行だけを残して保存し直してください。")
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds on a damaged file; each means the same to the person
        raise unreadable from None
    rows: list[tuple[int, list[Any]]] = []
    try:
        sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if any(v not in (None, "") for v in values):
                rows.append((number, list(values)))
            if len(rows) > max_rows:
                break
    except Exception:
        raise unreadable from None
    finally:
        book.close()
    return rows
