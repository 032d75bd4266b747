"""Hostile spreadsheets in and out (events.sheets): an XLSX decompression bomb is refused before it is inflated
(importer, CLI, upload page, API), parsing runs off the event loop, exports never turn a label into a formula
and never show a stray `'`, and every CSV says its charset once."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from events import auth, sheets
from events.exchanges import importing
from tests.conftest import csrf_from, login, make_person
from tests.xlsx_bomb import xlsx_bomb

ROOT = Path(__file__).resolve().parents[2]
BOMB_TEXT = 40 * 1024 * 1024  # one inline string of 40 MB (the audit's was 1.6 GB): over the 30 MB bound


def bomb() -> bytes:
    return xlsx_bomb(BOMB_TEXT)


@pytest.fixture(scope="module")
def bomb_file() -> bytes:
    data = bomb()
    assert len(data) < importing.MAX_BYTES  # it passes the upload limit: only the unzipped size gives it away
    return data


def test_the_reader_refuses_a_decompression_bomb_before_inflating_it(bomb_file, monkeypatch):
    import openpyxl

    def never(*args, **kwargs):
        raise AssertionError("the bomb was opened")

    monkeypatch.setattr(openpyxl, "load_workbook", never)
    with pytest.raises(importing.FileRejected) as refused:
        importing.read_sheet(bomb_file, "staff.xlsx")
    assert refused.value.code == "too_large_unzipped" and "展開後" in refused.value.message
    # Negative control: within the bound, the same reader opens the same kind of file.
    monkeypatch.undo()
    assert len(sheets.xlsx_rows(bomb_file, max_rows=10, max_unzipped=2 * BOMB_TEXT)) == 2


def test_a_part_that_lies_about_its_size_is_not_inflated_beyond_it():
    data = bytearray(bomb())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    # Rewrite the declared size in the central directory (and local header) to 1 KB: zipfile stops there.
    real = info.file_size.to_bytes(4, "little")
    assert data.count(real) >= 1
    lied = bytes(data).replace(real, (1024).to_bytes(4, "little"))
    with pytest.raises(sheets.SheetRejected) as refused:
        sheets.xlsx_rows(lied, max_rows=10)
    assert refused.value.code == "bad_file"


def test_the_cli_refuses_the_bomb_with_one_line(bomb_file, tmp_path, db):
    path = tmp_path / "staff.xlsx"
    path.write_bytes(bomb_file)
    done = subprocess.run([sys.executable, "-m", "lifedesign", "import", "staff", str(path), "--dry-run"], cwd=ROOT,
                          env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    problems = [line for line in done.stderr.splitlines() if line.startswith(str(path))]
    assert len(problems) == 1 and "展開後" in problems[0], done.stderr


async def test_upload_page_and_api_refuse_the_bomb(client, bomb_file):
    await make_person("coordinator", "import@example.jp")
    await login(client, "import@example.jp")
    form = await client.get("/exchanges/import")
    page = await client.post("/exchanges/import", data={"_csrf": csrf_from(form.text), "what": "staff"},
                             files={"file": ("staff.xlsx", bomb_file)})
    assert page.status_code == 422 and "展開後" in page.text
    token = await auth.create_api_token(await make_person("coordinator", "bot@example.jp"), "bot")
    api = await client.post("/api/v1/exchanges/import/staff", content=bomb_file,
                            headers={"authorization": f"Bearer {token}", "content-type": sheets.XLSX_MEDIA_TYPE})
    assert api.status_code == 422 and "too_large_unzipped" in api.text


async def test_parsing_an_upload_does_not_hold_the_event_loop(live_server, monkeypatch):
    """While a file is being read, the service answers others: /health returns before the reading ends."""
    import httpx

    token = await auth.create_api_token(await make_person("coordinator", "slow@example.jp"), "slow")
    reading, release, finished = threading.Event(), threading.Event(), threading.Event()
    real = importing.read_sheet

    def slow_read(data: bytes, filename: str = ""):
        reading.set()
        release.wait(30)  # a long parse, as the thread doing it sees it
        finished.set()
        return real(data, filename)

    monkeypatch.setattr(importing, "read_sheet", slow_read)
    async with httpx.AsyncClient(base_url=live_server, timeout=60) as http:
        upload = asyncio.create_task(http.post(
            "/api/v1/exchanges/import/facilities?dry_run=true", content="施設名,地区\n金沢さくら保育園,金沢文庫\n".encode(),
            headers={"authorization": f"Bearer {token}", "content-type": "text/csv"}))
        try:
            await asyncio.get_running_loop().run_in_executor(None, reading.wait, 30)
            assert reading.is_set()
            health = await http.get("/health")
            assert health.status_code == 200 and not finished.is_set()  # answered while the file was being read
        finally:
            release.set()
        assert (await upload).status_code == 200


def _read_back(content: bytes):
    return load_workbook(io.BytesIO(content)).active


def test_exports_never_make_a_formula_and_show_no_stray_quote():
    header = ["番号", "=1+1", "+SUM(A1:A9)", "@cmd", "-2"]
    rows = [[1, "=HYPERLINK(\"http://x\")", "普通の回答", "-3", "@x"]]
    sheet = _read_back(sheets.to_xlsx(header, rows))
    for cell in [*sheet[1], *sheet[2]]:
        assert cell.data_type in ("s", "n"), (cell.coordinate, cell.data_type)
    assert [c.value for c in sheet[1]] == header  # shown exactly as typed: no formula, no leading '
    assert [c.value for c in sheet[2]] == rows[0]
    csv_text = sheets.to_csv(header, rows).decode("utf-8-sig")
    assert csv_text.splitlines()[0] == "番号,'=1+1,'+SUM(A1:A9),'@cmd,'-2"  # CSV has no types: the ' is the guard
    # Control characters that XML cannot carry do not break the workbook.
    assert _read_back(sheets.to_xlsx(["a\x01b"], [["c\x00d"]])).cell(row=2, column=1).value == "c d"


async def test_survey_export_over_http_neutralises_labels_and_says_its_charset_once(client):
    from events.feedback import surveys
    from tests.http.test_feedback_pages import _answer_form
    from tests.service.test_feedback_service import make_event, register, tokens_by_recipient

    event = await make_event()
    student = await make_person("student", "label@example.jp")
    await register(event, student, "confirmed")
    survey_id = await surveys.create_survey(audience="seminar_student", event_id=event, anonymous=False,
                                            title="記名アンケート", questions=[
                                                {"kind": "text", "text": "=1+1", "required": True}])
    from events.feedback import sending

    await sending.send_feedback_requests()
    token = (await tokens_by_recipient())["label@example.jp"]
    page = await client.get(f"/feedback/{token}")
    await client.post("/feedback", data=_answer_form(page.text, text="=SUM(A1)"))
    client.cookies.clear()
    await make_person("coordinator", "csv@example.jp")
    await login(client, "csv@example.jp")
    xlsx = await client.get(f"/coordinator/feedback/{survey_id}/answers.xlsx")
    sheet = _read_back(xlsx.content)
    labels = {c.value: c for c in sheet[1]}
    assert "=1+1" in labels and labels["=1+1"].data_type == "s"
    assert [c.value for c in sheet[2]][-1] == "=SUM(A1)" and sheet[2][-1].data_type == "s"
    csv = await client.get(f"/coordinator/feedback/{survey_id}/answers.csv")
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert "'=1+1" in csv.content.decode("utf-8-sig").splitlines()[0]
    token = await auth.create_api_token(await make_person("admin", "csvadmin@example.jp"), "csv")
    for url in ("/admin/audit.csv", "/api/v1/events/1/registrations.csv"):
        response = await client.get(url, headers={"authorization": f"Bearer {token}"})
        assert response.headers["content-type"] in ("text/csv; charset=utf-8", "application/json"), url
        if response.status_code == 200:
            assert response.headers["content-type"] == "text/csv; charset=utf-8", url
