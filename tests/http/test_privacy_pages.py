"""Personal-data rights over HTTP: my data (page, JSON, API), correction, deletion (logged out afterwards), the
guardian's token pages, the coordinators' requests, the admin's audit page (labels, filters, paging, CSV) and
its cursor API, and the privacy notice printed from the retention settings (Japanese and English)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from urllib.parse import urlsplit

from events import audit, auth, privacy, timefmt
from events.config import config, configure
from events.core.tables import AuditEntry, Person
from events.db import utcnow, write_transaction
from tests.conftest import as_staff, csrf_from, links_in, login, make_person, outbox_mails
from tests.service.privacy_helpers import adult, minor, seminar


async def _page_csrf(client, path: str = "/profile") -> str:
    return csrf_from((await client.get(path)).text)


async def test_my_data_page_download_and_api_hold_every_section(client):
    student = await adult()
    email = (await Person.select(Person.email).where(Person.id == student).first())["email"]
    await login(client, email)
    page = await client.get("/my/data")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "イベントへの申込" in page.text and "無記名" in page.text and "/my/data.json" in page.text
    download = await client.get("/my/data.json")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    data = download.json()
    assert data["format"] == privacy.EXPORT_FORMAT and set(data["tables"]) == set(privacy.covered_tables())
    assert data["tables"]["person"][0]["email"] == email
    token = await auth.create_api_token(student)
    api = await client.get("/api/v1/me/data", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200 and set(api.json()["tables"]) == set(data["tables"])
    english = await client.get("/my/data?lang=en")
    assert "Your data" in english.text and "Registrations for events" in english.text


async def test_corrections_from_the_profile_and_by_request_never_a_500(client):
    coordinator = await make_person("coordinator", "coord@ward.example.jp")
    young = await minor("old@example.jp")
    event_id = await seminar(coordinator, capacity=3)
    from events.seminars import registration

    await registration.register(event_id, young)
    email = (await Person.select(Person.email).where(Person.id == young).first())["email"]
    await login(client, email)
    profile = await client.get("/profile")
    assert "/profile/student" in profile.text and "/my/data" in profile.text
    form = await client.get("/profile/student")
    birth = re.search(r'name="birth_date" type="date" value="([^"]+)"', form.text).group(1)
    values = {"_csrf": csrf_from(form.text), "school_level": "high_school", "school_name": "金沢高校", "grade": "2",
              "birth_date": birth, "guardian_name": "新 保護者", "guardian_email": "new@example.jp"}
    saved = await client.post("/profile/student", data=values, follow_redirects=False)
    assert saved.status_code == 303 and "consent=1" in saved.headers["location"]
    assert len(await outbox_mails("consent_request", "new@example.jp")) == 1
    shown = await client.get(saved.headers["location"])
    assert "改めて同意をお願いするメール" in shown.text
    bad = await client.post("/profile/student", data={**values, "birth_date": "2099-13-45"})
    assert bad.status_code == 422 and "生年月日" in bad.text
    adult_now = await client.post("/profile/student", data={**values, "birth_date": "1990-01-01"})
    assert adult_now.status_code == 422 and "訂正の依頼" in adult_now.text

    csrf = await _page_csrf(client, "/my/data")
    asked = await client.post("/my/data/correction", data={"_csrf": csrf, "field": "birth_date", "value": "1990-01-01",
                                                          "note": "誤って登録しました"})
    assert asked.status_code == 200 and "受け付けました" in asked.text
    unknown = await client.post("/my/data/correction", data={"_csrf": csrf, "field": "shoe_size", "value": "27"})
    assert unknown.status_code == 422
    empty = await client.post("/my/data/correction", data={"_csrf": csrf})
    assert empty.status_code == 422


async def test_deleting_ones_account_logs_out_and_the_page_is_gone(client):
    student = await adult()
    email = (await Person.select(Person.email).where(Person.id == student).first())["email"]
    await login(client, email)
    form = await client.get("/my/data/delete")
    assert form.status_code == 200 and "アカウントを削除する" in form.text
    unconfirmed = await client.post("/my/data/delete", data={"_csrf": csrf_from(form.text)})
    assert unconfirmed.status_code == 422
    done = await client.post("/my/data/delete", data={"_csrf": csrf_from(form.text), "confirm": "1"})
    assert done.status_code == 200 and "アカウントを削除しました" in done.text
    assert (await client.get("/my/data", follow_redirects=False)).status_code == 303  # to the login page
    assert (await Person.select(Person.active).where(Person.id == student).first())["active"] is False
    bearer = await client.post("/api/v1/me/deletion", json={"confirm": False},
                               headers={"Authorization": "Bearer ld_nothing"})
    assert bearer.status_code == 401


async def test_the_guardian_pages_by_token(client):
    young = await minor("mother@example.jp", name="佐藤 結衣")
    form = await client.get("/privacy/guardian")
    asked = await client.post("/privacy/guardian", data={"_csrf": csrf_from(form.text), "email": "mother@example.jp"})
    assert asked.status_code == 200 and "メールを確認してください" in asked.text
    unknown = await client.post("/privacy/guardian", data={"_csrf": csrf_from(form.text), "email": "no@example.jp"})
    assert unknown.text == asked.text  # no hint of who is registered
    bad = await client.post("/privacy/guardian", data={"_csrf": csrf_from(form.text), "email": "x"})
    assert bad.status_code == 422
    link = [u for u in links_in((await outbox_mails("privacy_guardian_link"))[0]) if "/privacy/guardian/" in u][0]
    path = urlsplit(link).path
    page = await client.get(path)
    assert page.status_code == 200 and "佐藤 結衣" in page.text and page.headers["cache-control"] == "no-store"
    download = await client.get(f"{path}/data.json?student={young}")
    assert download.json()["children"][0]["person_id"] == young
    assert (await client.get("/privacy/guardian/not-a-token")).status_code == 404
    missing = await client.post(f"{path}/delete", data={"_csrf": csrf_from(page.text), "student_id": str(young)})
    assert missing.status_code == 422
    done = await client.post(f"{path}/delete", data={"_csrf": csrf_from(page.text), "student_id": str(young),
                                                     "confirm": "1"})
    assert done.status_code == 200 and "削除しました" in done.text
    assert (await Person.select(Person.erased_at).where(Person.id == young).first())["erased_at"] is not None


async def test_coordinators_decide_requests_and_an_admin_handles_a_paper_request(client):
    admin = await make_person("admin", "admin@ward.example.jp")
    student = await adult()
    request_id = await privacy.request_correction(privacy.Actor(student, frozenset({"student"})), student,
                                                  {"name": "鈴木 あおい"})
    await login(client, "admin@ward.example.jp")
    listing = await client.get("/coordinator/privacy")
    assert listing.status_code == 200 and "鈴木 あおい" in listing.text
    decided = await client.post(f"/coordinator/privacy/requests/{request_id}",
                                data={"_csrf": csrf_from(listing.text), "action": "apply"})
    assert decided.status_code == 200 and "処理しました" in decided.text
    assert (await Person.select(Person.name).where(Person.id == student).first())["name"] == "鈴木 あおい"
    wrong = await client.post(f"/coordinator/privacy/requests/{request_id}",
                              data={"_csrf": csrf_from(listing.text), "action": "apply"})
    assert wrong.status_code == 409
    email = (await Person.select(Person.email).where(Person.id == student).first())["email"]
    person_page = await client.get(f"/coordinator/privacy/lookup?email={email}")
    assert person_page.status_code == 200 and "利用者の情報（開示）" in person_page.text
    paper = await client.post("/admin/privacy/deletion", data={"_csrf": csrf_from(listing.text), "email": email,
                                                               "note": "書面 2026-001", "confirm": "1"})
    assert paper.status_code == 200
    assert (await Person.select(Person.erased_at).where(Person.id == student).first())["erased_at"] is not None
    entry = await AuditEntry.select(AuditEntry.actor).where(AuditEntry.action == "privacy_erased").first()
    assert entry["actor"] == admin
    nobody = await client.post("/admin/privacy/deletion", data={"_csrf": csrf_from(listing.text),
                                                                "email": "ghost@example.jp", "confirm": "1"})
    assert nobody.status_code == 404


async def test_the_audit_page_filters_pages_exports_and_its_api_pages_by_cursor(client):
    admin = await make_person("admin", "admin@ward.example.jp")
    coordinator = await make_person("coordinator", "coord@ward.example.jp")
    for _ in range(7):
        await privacy.view_person_data(as_staff(coordinator), admin)
    await login(client, "admin@ward.example.jp")
    page = await client.get("/admin/audit?action=staff_viewed_person_data&actor=coord@")
    assert page.status_code == 200
    assert page.text.count("利用者の個人情報を表示（開示）") >= 7 and "staff_viewed_person_data" in page.text
    today = timefmt.tokyo_date(utcnow())  # the filter's days are Tokyo days
    empty = await client.get(f"/admin/audit?since={today + timedelta(days=1)}")
    assert "記録はありません" in empty.text
    for bad in ("since=yesterday", f"since={today}&until={today - timedelta(days=1)}", "cursor=abc"):
        response = await client.get(f"/admin/audit?{bad}")
        assert response.status_code == 422, bad
    await privacy.view_person_data(as_staff(coordinator), coordinator)  # another subject
    subject = await client.get(f"/admin/audit?subject_type=person&subject_id={coordinator}")
    assert subject.text.count("<tr><td>") == 1 and "利用者の個人情報を表示（開示）<details>" in subject.text
    async with write_transaction():  # more than a page of one action
        for _ in range(audit.PAGE_SIZE + 5):
            await audit.record(as_staff(coordinator), "staff_viewed_people")
    first = await client.get("/admin/audit?action=staff_viewed_people")
    assert first.text.count("<tr><td>") == audit.PAGE_SIZE
    following = re.search(r'href="(/admin/audit\?action=staff_viewed_people&amp;cursor=\d+)"', first.text).group(1)
    second = await client.get(following.replace("&amp;", "&"))
    assert second.text.count("<tr><td>") == 5 and "次のページ" not in second.text and "最新のページへ" in second.text
    exported = await client.get("/admin/audit.csv?action=staff_viewed_person_data")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["番号", "日時（日本時間）", "操作"] and len(rows) == 9
    assert await AuditEntry.count().where(AuditEntry.action == "staff_exported_audit") == 1

    token = await auth.create_api_token(admin)
    headers = {"Authorization": f"Bearer {token}"}
    seen, cursor, pages = [], "", 0
    while True:
        answer = await client.get(f"/api/v1/audit?action=staff_viewed_person_data&limit=3&cursor={cursor}",
                                  headers=headers)
        assert answer.status_code == 200
        body = answer.json()
        seen += [e["id"] for e in body["entries"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    assert pages == 3 and len(seen) == 8 and seen == sorted(seen, reverse=True)
    assert body["entries"][0]["label"] == "利用者の個人情報を表示（開示）"


async def test_the_privacy_notice_is_printed_from_the_retention_settings_and_linked_everywhere(client):
    page = await client.get("/privacy")
    assert page.status_code == 200
    assert f"{config().retention_outbox_months}か月" in page.text and f"{config().retention_token_days}日" in page.text
    before = config().retention_outbox_months
    configure(retention_outbox_months=9)
    try:
        assert "9か月" in (await client.get("/privacy")).text
        english = await client.get("/privacy?lang=en")
        assert "9 months" in english.text and "Retention" in english.text and "Sent e-mail" in english.text
    finally:
        configure(retention_outbox_months=before)
    assert 'href="/privacy"' in (await client.get("/signup")).text  # sign-up …
    assert 'href="/privacy"' in (await client.get("/events")).text  # … every page's footer …
    young = await minor("mother@example.jp")
    coordinator = await make_person("coordinator")
    from events.seminars import registration

    await registration.register(await seminar(coordinator, capacity=3), young)
    link = [u for u in links_in((await outbox_mails("consent_request"))[0]) if "/consent/" in u][0]
    consent_page = await client.get(urlsplit(link).path)
    assert 'href="/privacy"' in consent_page.text and 'href="/privacy/guardian"' in consent_page.text  # … consent
