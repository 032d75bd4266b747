"""Phone numbers of students, guardians and host families: optional, validated by events.phones, stored in one
hyphenated form, on the sign-up and profile forms, the API and the registration exports — and shown only where
the e-mail address is (staff views, audited)."""

from __future__ import annotations

import io
import re
import secrets
from datetime import date
from urllib.parse import urlsplit

from openpyxl import load_workbook

from events import auth, people
from events.core.tables import AuditEntry, Person, StudentProfile
from events.seminars import registration
from events.visits.tables import Household, HouseholdAddress
from tests.conftest import csrf_from, links_in, login, make_person, outbox_mails
from tests.http.test_seminar_pages import new_event


async def _token(role: str) -> dict[str, str]:
    person = await make_person(role, f"{role}-{secrets.token_hex(3)}@ward.example.jp")
    return {"authorization": f"Bearer {await auth.create_api_token(person, 'phones')}", "accept": "application/json"}


async def test_signup_and_profile_store_phones_normalised_and_refuse_bad_ones(client):
    page = await client.get("/signup?role=student")
    assert 'id="phone"' in page.text and 'type="tel"' in page.text and 'id="guardian_phone"' in page.text
    birth = date.today().replace(year=date.today().year - 16).isoformat()
    done = await client.post("/signup", data={
        "_csrf": csrf_from(page.text), "role": "student", "name": "佐藤 結衣", "kana": "さとう ゆい",
        "email": "phone-yui@example.jp", "phone": "０９０－１２３４－５６７８", "school_level": "high_school",
        "school_name": "金沢高校", "grade": "2", "birth_date": birth, "guardian_name": "佐藤 恵",
        "guardian_email": "phone-mother@example.jp", "guardian_phone": "0457887777"})
    assert done.status_code == 200, done.text
    person = await people.find_by_email("phone-yui@example.jp")
    assert person["phone"] == "090-1234-5678"
    assert (await people.student_profile(person["id"]))["guardian_phone"] == "045-788-7777"

    await login(client, "phone-yui@example.jp")
    profile = await client.get("/profile")
    assert 'value="090-1234-5678"' in profile.text and 'value="045-788-7777"' in profile.text
    token = csrf_from(profile.text)
    bad = await client.post("/profile", data={"_csrf": token, "name": "佐藤 結衣", "kana": "さとう ゆい",
                                              "phone": "090-1234", "guardian_phone": "045-788-7777"})
    assert bad.status_code == 422 and "090-1234-5678" in bad.text
    assert 'id="phone" name="phone" type="tel" autocomplete="tel" value="090-1234" aria-invalid="true"' in bad.text
    assert (await people.get_person(person["id"]))["phone"] == "090-1234-5678"  # nothing saved
    saved = await client.post("/profile", data={"_csrf": token, "name": "佐藤 結衣", "kana": "さとう ゆい",
                                                "phone": "", "guardian_phone": "080 9999 0000"})
    assert saved.status_code == 200
    assert (await people.get_person(person["id"]))["phone"] == ""  # optional: it can be removed
    assert (await people.student_profile(person["id"]))["guardian_phone"] == "080-9999-0000"


async def test_the_api_takes_and_returns_phones_and_shows_them_only_with_the_email(client):
    admin = await _token("admin")
    created = await client.post("/api/v1/people", headers=admin, json={
        "email": "api-phone@example.jp", "name": "鈴木 葵", "role": "student", "phone": "080-1111-2222",
        "student": {"school_level": "university", "school_name": "横浜市立大学", "grade": 2,
                    "birth_date": "2004-05-01", "guardian_phone": "03 1234 5678"}})
    assert created.status_code == 201, created.text
    assert created.json()["phone"] == "080-1111-2222"
    person_id = created.json()["id"]
    assert (await people.student_profile(person_id))["guardian_phone"] == "03-1234-5678"
    refused = await client.post("/api/v1/people", headers=admin, json={
        "email": "api-bad@example.jp", "name": "X", "role": "host_family", "phone": "12345"})
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_phone"
    assert await people.find_by_email("api-bad@example.jp") is None

    # one's own: PATCH /api/v1/me (and GET /api/v1/me shows it)
    own = {"authorization": f"Bearer {await auth.create_api_token(person_id, 'me')}"}
    changed = await client.patch("/api/v1/me", headers=own, json={"phone": "０７０９８７６５４３２"})
    assert changed.status_code == 200 and changed.json()["phone"] == "070-9876-5432"
    assert changed.json()["name"] == "鈴木 葵"  # left out, left alone
    assert (await client.patch("/api/v1/me", headers=own, json={"guardian_phone": "x"})).json()["code"] == "invalid_phone"
    assert (await client.get("/api/v1/me", headers=own)).json()["phone"] == "070-9876-5432"

    # others' phones: where staff see e-mails (audited), nowhere else
    listed = await client.get("/api/v1/people", headers=await _token("coordinator"), params={"q": "api-phone"})
    assert [p["phone"] for p in listed.json()] == ["070-9876-5432"]
    assert await AuditEntry.count().where(AuditEntry.action == "staff_viewed_people") == 1
    assert (await client.get("/api/v1/people", headers=own)).status_code == 403


async def test_registration_exports_carry_phone_and_guardian_columns_with_the_consent_time(client):
    event_id = await new_event(title="電話番号のある講座")
    birth = date.today().replace(year=date.today().year - 16)
    info = people.StudentInfo("high_school", "横浜市立金沢高等学校", 2, birth, "export-mother@example.jp", "佐藤 恵",
                              "045-788-7777")
    minor = await make_person("student", "export-minor@example.jp", name="佐藤 結衣", phone="09012345678",
                              student=info)
    await registration.register(event_id, minor)
    (request_mail,) = await outbox_mails("consent_request", "export-mother@example.jp")
    path = urlsplit([u for u in links_in(request_mail) if "/consent/" in u][0]).path
    consent_page = await client.get(path)
    assert (await client.post(path, data={"decision": "give", "_csrf": csrf_from(consent_page.text)})).status_code == 200
    adult = await make_person("student", "export-adult@example.jp", name="鈴木 葵")
    await registration.register(event_id, adult)

    coordinator = await make_person("coordinator", "export-coord@ward.example.jp")
    await login(client, "export-coord@ward.example.jp")
    text = (await client.get(f"/coordinator/events/{event_id}/registrations.csv")).content.decode("utf-8-sig")
    header, *rows = [line.split(",") for line in text.splitlines()]
    for column in ("電話番号", "保護者氏名", "保護者メールアドレス", "保護者電話番号", "保護者の同意日時"):
        assert column in header, header
    by_name = {row[header.index("氏名")]: dict(zip(header, row, strict=False)) for row in rows}
    yui = by_name["佐藤 結衣"]
    assert (yui["電話番号"], yui["保護者氏名"], yui["保護者メールアドレス"], yui["保護者電話番号"]) == (
        "090-1234-5678", "佐藤 恵", "export-mother@example.jp", "045-788-7777")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", yui["保護者の同意日時"])  # when it was given, Asia/Tokyo
    assert by_name["鈴木 葵"]["保護者の同意日時"] == "" and by_name["鈴木 葵"]["電話番号"] == ""
    xlsx = await client.get(f"/coordinator/events/{event_id}/registrations.xlsx")
    values = list(load_workbook(io.BytesIO(xlsx.content)).active.values)
    assert "保護者電話番号" in values[0] and any("045-788-7777" in row for row in values[1:])
    exported = await AuditEntry.select(AuditEntry.actor).where(AuditEntry.action == "staff_exported_registrations")
    assert [e["actor"] for e in exported] == [coordinator, coordinator]
    # The registrations page, where a coordinator looks when someone has to be phoned, says the same.
    listing = await client.get(f"/coordinator/events/{event_id}/registrations")
    assert 'href="tel:090-1234-5678"' in listing.text and 'href="tel:045-788-7777"' in listing.text
    assert "佐藤 恵 export-mother@example.jp" in listing.text


async def test_a_household_phone_goes_through_the_same_validator(client):
    await make_person("host_family", "phone-family@example.jp", name="山田 真理子")
    await login(client, "phone-family@example.jp")
    token = csrf_from((await client.get("/visits/household")).text)
    saved = await client.post("/visits/household", data={
        "_csrf": token, "display_name": "山田家", "district": "能見台", "children_ages": "1,4", "languages": ["ja"]},
        follow_redirects=False)
    assert saved.status_code == 303
    address = {"_csrf": token, "postal_code": "236-0053", "address": "横浜市金沢区能見台通9-9-9"}
    bad = await client.post("/visits/household/address", data={**address, "phone": "045-111"})
    assert bad.status_code == 422 and "090-1234-5678" in bad.text
    good = await client.post("/visits/household/address", data={**address, "phone": "０４５（１１１）２２２２"},
                             follow_redirects=False)
    assert good.status_code == 303
    person = await Person.select(Person.id).where(Person.email == "phone-family@example.jp").first()
    household = await Household.select(Household.id).where(Household.person == person["id"]).first()
    stored = await HouseholdAddress.select(HouseholdAddress.phone).where(
        HouseholdAddress.household == household["id"]).first()
    assert stored["phone"] == "045-111-2222"
    assert await StudentProfile.count() == 0
