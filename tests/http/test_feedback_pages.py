"""Feedback over HTTP: the answering page, coordinators' pages, exports and the API."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from openpyxl import load_workbook

from events.db import utcnow
from events.feedback import sending, surveys
from events.feedback.tables import FeedbackAnswer
from tests.conftest import csrf_from, login, make_person
from tests.service.test_feedback_service import STAFF, make_event, register, students, tokens_by_recipient


async def _asked(n: int, *, anonymous: bool = True, locale_en: set[int] = frozenset()) -> tuple[int, dict[str, str]]:
    event = await make_event(series="2026ライフデザイン講座")
    people = []
    for i in range(n):
        people.append(await make_person("student", f"s{i}@example.jp", name=f"学生{i}号",
                                         locale="en" if i in locale_en else "ja"))
    for person in people:
        await register(event, person, "confirmed")
    survey_id = await surveys.create_survey(audience="seminar_student", template="seminar_student",
                                            series="2026ライフデザイン講座", anonymous=anonymous)
    await sending.run_feedback_jobs()
    return survey_id, await tokens_by_recipient()


def _answer_form(html: str, scale: int = 3, text: str = "参考になりました") -> dict[str, object]:
    assert 'name="token"' not in html  # the link's token is in a cookie, not in the page
    data: dict[str, object] = {"_csrf": csrf_from(html)}
    for name in dict.fromkeys(re.findall(r'<input type="radio" name="(q\d+)"', html)):
        data[name] = str(scale) if html.count(f'name="{name}"') == 5 else "0"
    for name in dict.fromkeys(re.findall(r'<input type="checkbox" name="(q\d+)"', html)):
        data[name] = ["0", "2"]
    for name in re.findall(r'<textarea id="[^"]+" name="(q\d+)"', html):
        data[name] = text
    return data


async def test_answer_page_is_accessible_and_says_it_is_anonymous(client, db):
    survey_id, tokens = await _asked(1)
    link = await client.get(f"/feedback/{tokens['s0@example.jp']}", follow_redirects=False)
    # The link's token moves into a short-lived cookie, limited to /feedback, and the browser to a token-free URL.
    assert link.status_code == 303 and link.headers["location"] == "/feedback"
    cookie = link.headers["set-cookie"]
    assert cookie.startswith(f"ld_survey={tokens['s0@example.jp']};") and "Path=/feedback" in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=7200" in cookie
    page = await client.get("/feedback")
    assert page.status_code == 200 and str(page.url).endswith("/feedback")
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<html lang="ja">' in html
    assert "このアンケートは無記名です。" in html
    assert html.count("<fieldset") == 5 and html.count("<legend>") == 5  # 3 scales, 1 single, 1 multi
    assert "この講座は、仕事と家庭の両立について考えるきっかけになりましたか" in html
    assert "（必須）" in html and "（任意）" in html  # required is said in words, not by colour
    # Every input has a label: radios/checkboxes are wrapped in <label>, the textarea has label[for].
    textarea_id = re.search(r'<textarea id="([^"]+)"', html).group(1)
    assert f'<label for="{textarea_id}">' in html
    assert re.search(r'<label class="choice">\s*<input type="radio"', html)


async def test_answer_edit_and_validation_keep_what_was_typed(client, db):
    survey_id, tokens = await _asked(1, anonymous=False)
    token = tokens["s0@example.jp"]
    html = (await client.get(f"/feedback/{token}")).text
    assert "このアンケートは記名式です。" in html
    data = _answer_form(html)
    first_scale = re.search(r'<input type="radio" name="(q\d+)"', html).group(1)
    incomplete = {**data, first_scale: ""}
    incomplete["q_missing"] = ""
    refused = await client.post("/feedback", data=incomplete)
    assert refused.status_code == 422
    assert 'role="alert"' in refused.text and "この質問は必須です。" in refused.text
    assert "参考になりました" in refused.text  # the free text survives the error
    assert await FeedbackAnswer.count() == 0
    done = await client.post("/feedback", data=data)
    assert done.status_code == 200 and "ご回答ありがとうございました" in done.text
    assert 'href="/feedback"' in done.text and token not in done.text
    again = await client.get("/feedback")
    assert "回答済みです" in again.text and "回答を更新する" in again.text
    assert re.search(rf'name="{first_scale}" value="3" id="[^"]+" checked', again.text)
    changed = await client.post("/feedback", data={**_answer_form(again.text, scale=1), "_csrf": csrf_from(again.text)})
    assert changed.status_code == 200 and "回答を更新しました。" in changed.text
    assert await FeedbackAnswer.count() == 1


async def test_english_page_for_english_speakers(client, db):
    survey_id, tokens = await _asked(1, locale_en={0})
    html = (await client.get(f"/feedback/{tokens['s0@example.jp']}")).text
    assert '<html lang="en">' in html
    assert "Did this seminar make you think about balancing work and family life?" in html
    assert "This survey is anonymous." in html
    assert "Strongly agree" in html


async def test_closed_survey_and_unknown_link_get_friendly_pages(client, db):
    survey_id, tokens = await _asked(1)
    token = tokens["s0@example.jp"]
    html = (await client.get(f"/feedback/{token}")).text
    await surveys.close_survey(survey_id, actor=STAFF)
    closed = await client.get(f"/feedback/{token}")
    assert closed.status_code == 410 and "受付は終了しました" in closed.text and "Traceback" not in closed.text
    late = await client.post("/feedback", data=_answer_form(html))
    assert late.status_code == 410
    assert await FeedbackAnswer.count() == 0
    unknown = await client.get("/feedback/nope", follow_redirects=False)
    assert unknown.status_code == 404 and "アンケートが見つかりません" in unknown.text
    assert "set-cookie" not in unknown.headers or "ld_survey" not in unknown.headers["set-cookie"]
    client.cookies.clear()
    expired = await client.get("/feedback")  # no cookie (expired, or another browser): a friendly page
    assert expired.status_code == 404 and "有効時間が過ぎました" in expired.text
    english = await client.get("/feedback/nope?lang=en")
    assert english.status_code == 404 and "This survey link was not found." in english.text


async def test_coordinator_builds_a_survey_and_reads_results(client, db):
    await make_person("coordinator", "coord@example.jp")
    await login(client, "coord@example.jp")
    event = await make_event(title="ワークライフ講座 第1回")
    listing = await client.get("/coordinator/feedback")
    assert listing.status_code == 200
    created = await client.post("/coordinator/feedback", data={
        "_csrf": csrf_from(listing.text), "template": "seminar_student", "event": str(event), "anonymous": "0",
        "closes_at": (utcnow() + timedelta(days=14)).date().isoformat(), "reminder_days": "3"}, follow_redirects=False)
    assert created.status_code == 303
    detail_path = created.headers["location"]
    detail = await client.get(detail_path)
    assert "この講座は、仕事と家庭の両立について考えるきっかけになりましたか" in detail.text
    bad = await client.post(f"{detail_path}/questions", data={"_csrf": csrf_from(detail.text), "kind": "scale",
                                                              "text": "満足度", "options": "良い\n悪い"})
    assert bad.status_code == 422 and "5つ" in bad.text and "満足度" in bad.text
    added = await client.post(f"{detail_path}/questions", data={
        "_csrf": csrf_from(detail.text), "kind": "single", "text": "会場への交通手段", "options": "徒歩\nバス\n電車",
        "options_en": "Walk\nBus\nTrain", "required": "1"}, follow_redirects=False)
    assert added.status_code == 303
    survey_id = int(detail_path.rsplit("/", 1)[1])
    assert (await surveys.get_survey(survey_id))["questions"][-1]["text"] == "会場への交通手段"
    people = await students(6)
    for person in people:
        await register(event, person, "confirmed")
    await sending.run_feedback_jobs()
    tokens = await tokens_by_recipient()
    answer_client_html = {}
    for address in sorted(tokens)[:5]:
        page = await client.get(f"/feedback/{tokens[address]}")
        answer_client_html[address] = page.text
        assert (await client.post("/feedback", data=_answer_form(page.text, scale=4))).status_code == 200
    result = await client.get(f"/coordinator/feedback/{survey_id}/results")
    assert result.status_code == 200
    assert "<svg" in result.text and 'role="img"' in result.text and "<table" in result.text
    assert "回答率 5/6（83 %）" in result.text  # the count with its share
    assert "未回答の方（1人）" in result.text and "学生 s5" in result.text
    printed = await client.get(f"/coordinator/feedback/{survey_id}/print")
    assert printed.status_code == 200 and "size: A4" in printed.text and "回答 5人" in printed.text
    exported = await client.get(f"/coordinator/feedback/{survey_id}/answers.csv")
    assert exported.status_code == 200 and exported.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["回答番号", "イベント", "氏名", "メールアドレス", "最終更新日時"] and len(rows) == 6
    xlsx = await client.get(f"/coordinator/feedback/{survey_id}/answers.xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet.cell(row=1, column=3).value == "氏名" and sheet.max_row == 6


async def test_anonymous_results_and_exports_name_nobody(client, db):
    survey_id, tokens = await _asked(6)
    for address in sorted(tokens)[:5]:
        page = await client.get(f"/feedback/{tokens[address]}")
        sent = await client.post("/feedback", data=_answer_form(page.text, text=f"感想 {address[:2]}"))
        assert sent.status_code == 200 and "ld_survey=" in sent.headers["set-cookie"]  # the cookie is dropped
    again = await client.get(f"/feedback/{tokens[sorted(tokens)[0]]}")
    assert "回答済みです" in again.text and "<form method=\"post\" action=\"/feedback" not in again.text
    twice = await client.post("/feedback", data={"_csrf": csrf_from(again.text), "token": tokens[sorted(tokens)[0]]})
    assert twice.status_code == 409 and "回答済みです" in twice.text
    await make_person("coordinator", "coord@example.jp")
    await login(client, "coord@example.jp")
    bodies = [
        (await client.get(f"/coordinator/feedback/{survey_id}/results")).text,
        (await client.get(f"/coordinator/feedback/{survey_id}/print")).text,
        (await client.get(f"/coordinator/feedback/{survey_id}/answers.csv")).content.decode("utf-8-sig"),
        (await client.get(f"/api/v1/feedback/surveys/{survey_id}/results")).text,
    ]
    workbook = load_workbook(io.BytesIO((await client.get(f"/coordinator/feedback/{survey_id}/answers.xlsx")).content))
    bodies.append(repr([[c.value for c in row] for row in workbook.active.iter_rows()]))
    for body in bodies:
        assert not re.search(r"学生\d号|s\d@example\.jp", body)
    assert "回答 5人" in bodies[0] and "未回答の方" not in bodies[0]
    assert "感想 s0" in bodies[0]  # the free text itself is listed
    api = (await client.get(f"/api/v1/feedback/surveys/{survey_id}/results")).json()
    assert api["not_answered"] is None and api["responded"] == 5


async def test_staff_pages_need_a_coordinator(client, db):
    survey_id, tokens = await _asked(1)
    await make_person("student", "other@example.jp")
    await login(client, "other@example.jp")
    assert (await client.get(f"/coordinator/feedback/{survey_id}/results")).status_code == 403
    refused = await client.get(f"/api/v1/feedback/surveys/{survey_id}/results")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


async def test_api_builds_surveys_and_reports_bad_input_as_json(client, db):
    await make_person("coordinator", "coord@example.jp")
    await login(client, "coord@example.jp")
    csrf = csrf_from((await client.get("/profile")).text)
    headers = {"x-csrf-token": csrf}
    templates = (await client.get("/api/v1/feedback/templates")).json()
    assert set(templates) == {"seminar_student", "home_visit_student", "host_family", "exchange_staff"}
    bad = await client.post("/api/v1/feedback/surveys", json={"audience": "seminar_student", "title": "x"},
                            headers=headers)
    assert bad.status_code == 422 and bad.json()["code"] == "attach_one" and bad.json()["message"]
    made = await client.post("/api/v1/feedback/surveys", headers=headers, json={
        "audience": "exchange_staff", "series": "2026保育交流会", "anonymous": True, "title": "交流会アンケート",
        "questions": [{"kind": "scale", "text": "満足度", "required": True},
                      {"kind": "multi", "text": "テーマ", "options": ["保護者対応", "安全管理"]}]})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["series"] == "2026保育交流会" and body["anonymous"] is True
    question = await client.post(f"/api/v1/feedback/surveys/{body['id']}/questions", headers=headers,
                                 json={"kind": "single", "text": "もう一度", "options": ["はい"]})
    assert question.status_code == 422 and question.json()["code"] == "choice_needs_options"
    closed = await client.post(f"/api/v1/feedback/surveys/{body['id']}/close", headers=headers)
    assert closed.status_code == 201 and closed.json() == {"status": "closed"}
    # The service audits the closing itself, in its own transaction.
    from events.core.tables import AuditEntry

    assert await AuditEntry.exists().where(
        (AuditEntry.action == "feedback_survey_closed") & (AuditEntry.subject_id == str(body["id"])))


async def test_home_page_lists_unanswered_surveys_with_their_link(client, db):
    survey_id, tokens = await _asked(1)
    await login(client, "s0@example.jp")
    home = await client.get("/")
    assert "回答をお待ちしているアンケート" in home.text and f'href="/feedback/{tokens["s0@example.jp"]}"' in home.text
    page = await client.get(f"/feedback/{tokens['s0@example.jp']}")
    await client.post("/feedback", data=_answer_form(page.text))
    assert "回答をお待ちしているアンケート" not in (await client.get("/")).text
