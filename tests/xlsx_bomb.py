"""An XLSX decompression bomb for the tests and bench/hostile.py: a real workbook whose sheet holds one huge
inline string — small on disk, enormous once unzipped (no fixtures here: importing it changes nothing)."""

from __future__ import annotations

import io
import zipfile


def xlsx_bomb(unzipped_bytes: int) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["氏名", "メールアドレス", "施設名"])
    plain = io.BytesIO()
    book.save(plain)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain.getvalue())) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                xml = data.decode().replace('<dimension ref="A1:C1" />', '<dimension ref="A1:C2" />')
                head, _, tail = xml.partition("</sheetData>")
                data = (head + '<row r="2"><c r="A2" t="inlineStr"><is><t>').encode() + b"A" * unzipped_bytes + (
                    "</t></is></c></row></sheetData>" + tail).encode()
            z.writestr(info.filename, data)
    return out.getvalue()
