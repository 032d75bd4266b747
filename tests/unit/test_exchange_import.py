"""Reading facility / staff files without a database: encodings, delimiters, XLSX, line numbers."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from events.exchanges.importing import FileRejected, parse_kind, read_sheet

TEXT = "施設名,種別,地区\n金沢さくら保育園,保育園,金沢文庫\n\n南六浦保育園,保育園,六浦\n"


@pytest.mark.parametrize(("data", "encoding"), [
    (TEXT.encode("utf-8"), "utf-8"),
    (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), "utf-8-sig"),
    (TEXT.encode("cp932"), "cp932"),
    (TEXT.encode("utf-16"), "utf-16"),
    (TEXT.replace("\n", "\r\n").encode("cp932"), "cp932"),
])
def test_encodings_excel_writes_are_read(data: bytes, encoding: str) -> None:
    sheet = read_sheet(data)
    assert sheet.encoding == encoding
    assert sheet.rows[0] == (1, ["施設名", "種別", "地区"])
    # the empty line 3 is skipped but counted: 南六浦 is on line 4
    assert sheet.rows[2] == (4, ["南六浦保育園", "保育園", "六浦"])


def test_quoted_multiline_cell_keeps_later_line_numbers_true() -> None:
    sheet = read_sheet('施設名,地区\n"金沢\nさくら",金沢文庫\n並木保育園,並木\n'.encode())
    assert sheet.rows[1][0] == 2
    assert sheet.rows[2] == (4, ["並木保育園", "並木"])


def test_tab_separated_text_is_read() -> None:
    sheet = read_sheet("施設名\t地区\n並木保育園\t並木\n".encode())
    assert sheet.rows[1] == (2, ["並木保育園", "並木"])


@pytest.mark.parametrize(("data", "code"), [
    ("施設名,地区\n金沢さくら保育園,金沢文庫\n".encode("euc_jp"), "bad_encoding"),
    (b"\x00\x01\x02binary", "bad_encoding"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1old excel", "xls_not_supported"),
    (b"PK\x03\x04 not really a zip", "bad_file"),
    (b"   \n", "empty_file"),
])
def test_unreadable_files_are_rejected_with_a_reason(data: bytes, code: str) -> None:
    with pytest.raises(FileRejected) as caught:
        read_sheet(data)
    assert caught.value.code == code
    assert caught.value.message  # a sentence a coordinator can act on


def test_xlsx_rows_keep_sheet_row_numbers() -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["氏名", "メールアドレス", "施設名", "職員番号"])
    sheet.append(["小林 由美", "kobayashi@example.jp", "金沢さくら保育園", 1024])
    sheet.append([None, None, None, None])
    sheet.append(["加藤 直子", "kato@example.jp", "南六浦保育園", 7.0])
    buffer = io.BytesIO()
    book.save(buffer)
    read = read_sheet(buffer.getvalue(), "staff.xlsx")
    assert read.encoding == "xlsx"
    assert read.rows[1] == (2, ["小林 由美", "kobayashi@example.jp", "金沢さくら保育園", "1024"])
    assert read.rows[2] == (4, ["加藤 直子", "kato@example.jp", "南六浦保育園", "7"])


@pytest.mark.parametrize(("word", "kind"), [
    ("保育園", "nursery"), ("保育所", "nursery"), ("認定こども園", "certified_childcare"), ("幼稚園", "kindergarten"),
    ("小規模保育", "small_childcare"), ("ｎｕｒｓｅｒｙ", "nursery"), ("School", "school"), ("その他", "other"),
    ("病院", None), ("", None),
])
def test_facility_kinds_in_japanese_and_english(word: str, kind: str | None) -> None:
    assert parse_kind(word) == kind
