"""A script does what a coordinator does in the pages, through the API alone: each endpoint added for it is
guarded and audited like its page."""

from __future__ import annotations

import io
from datetime import timedelta
from urllib.parse import urlsplit

from openpyxl import load_workbook

from events import auth, clock, outbox
from events.core.tables import AuditEntry, OutboxMessage, Person
from events.exchanges import sessions
from tests.conftest import make_person


async def _bearer(role: str, email: str) -> dict[str, str]:
    token = await auth.create_api_token(await make_person(role, email), "script")
    return {"authorization": f"Bearer {token}"}


async def _audited(action: str) -> int:
    return await AuditEntry.count().where(AuditEntry.action == action)


async def test_accounts_students_and_their_switch(client):
    admin = await _bearer("admin", "admin@script.example.jp")
    coordinator = await _bearer("coordinator", "coord@script.example.jp")
    student = {"email": "gakusei@example.jp", "name": "金沢 学", "role": "student",
               "student": {"school_level": "high_school", "school_name": "金沢高校", "grade": 2,
                           "birth_date": "2010-06-01", "guardian_email": "hogosha@example.jp",
                           "guardian_name": "金沢 保護者"}}
    assert (await client.post("/api/v1/people", json=student, headers=coordinator)).status_code == 403
    missing = await client.post("/api/v1/people", json={**student, "student": None, "email": "x@example.jp"},
                                headers=admin)
    assert missing.status_code == 422 and missing.json()["code"] == "student_profile_required"
    made = await client.post("/api/v1/people", json=student, headers=admin)
    assert made.status_code == 201 and made.json()["roles"] == ["student"], made.text
    person_id = made.json()["id"]
    assert await _audited("admin_user_added") == 1
    assert (await client.post(f"/api/v1/people/{person_id}/disable", headers=coordinator)).status_code == 403
    off = await client.post(f"/api/v1/people/{person_id}/disable", headers=admin)
    assert off.status_code == 200 and off.json()["active"] is False and await _audited("admin_user_disabled") == 1
    on = await client.post(f"/api/v1/people/{person_id}/enable", headers=admin)
    assert on.status_code == 200 and on.json()["active"] is True and await _audited("admin_user_enabled") == 1
    assert (await client.post("/api/v1/people/999999/disable", headers=admin)).status_code == 404


async def test_tokens_and_the_calendar_feed_of_oneself(client):
    headers = await _bearer("student", "self@script.example.jp")
    assert (await client.get("/api/v1/me/tokens")).status_code == 401
    made = await client.post("/api/v1/me/tokens", json={"label": "スクリプト"}, headers=headers)
    assert made.status_code == 201 and made.json()["token"].startswith("ld_")
    fresh = {"authorization": f"Bearer {made.json()['token']}"}
    listed = (await client.get("/api/v1/me/tokens", headers=fresh)).json()
    assert [t["label"] for t in listed] == ["script", "スクリプト"] and all("token" not in t for t in listed)
    gone = await client.delete(f"/api/v1/me/tokens/{made.json()['id']}", headers=headers)
    assert gone.status_code == 200 and (await client.get("/api/v1/me", headers=fresh)).status_code == 401
    assert (await client.delete(f"/api/v1/me/tokens/{listed[0]['id'] + 999}", headers=headers)).status_code == 404

    assert (await client.get("/api/v1/me/calendar-feed", headers=headers)).json() == {"feed_url": None,
                                                                                        "webcal_url": None}
    first = await client.post("/api/v1/me/calendar-feed", headers=headers)
    assert first.status_code == 200 and first.json()["webcal_url"].startswith("webcal://")
    old_path = urlsplit(first.json()["feed_url"]).path
    client.headers.pop("authorization", None)
    assert (await client.get(old_path)).status_code == 200
    rotated = await client.post("/api/v1/me/calendar-feed", headers=headers)
    assert rotated.json()["feed_url"] != first.json()["feed_url"]
    assert (await client.get(old_path)).status_code == 404  # the old URL stops working at once
    assert (await client.get("/api/v1/me/calendar-feed", headers=headers)).json() == rotated.json()


async def test_outbox_list_reads_like_the_page_and_is_audited(client):
    coordinator = await _bearer("coordinator", "mail@script.example.jp")
    await auth.request_login("mail@script.example.jp", client="t")
    before = await _audited("staff_viewed_outbox")
    listed = await client.get("/api/v1/outbox/messages?status=queued", headers=coordinator)
    assert listed.status_code == 200 and [m["kind"] for m in listed.json()] == ["login"]
    assert listed.json()[0]["recipient"] == "mail@script.example.jp"
    assert await _audited("staff_viewed_outbox") == before + 1
    assert (await client.get("/api/v1/outbox/messages?status=nonsense", headers=coordinator)).status_code == 422
    student = await _bearer("student", "nosy@script.example.jp")
    assert (await client.get("/api/v1/outbox/messages", headers=student)).status_code == 403


async def test_a_script_releases_or_withdraws_a_stuck_mail(client):
    coordinator = await _bearer("coordinator", "stuck@script.example.jp")
    await make_person("student", "stuck2@script.example.jp")
    for email in ("stuck@script.example.jp", "stuck2@script.example.jp"):  # two login mails
        await auth.request_login(email, client="t")
    released, withdrawn = await outbox.claim_due("gone-worker", limit=50)  # a worker that dies with both
    early = await client.post(f"/api/v1/outbox/{released.id}/release", headers=coordinator)
    assert early.status_code == 409 and early.json()["code"] == "not_stuck"  # its worker may still be sending
    with clock.travel(outbox.LEASE + timedelta(seconds=1)):
        student = await _bearer("student", "stuck-nosy@script.example.jp")
        assert (await client.post(f"/api/v1/outbox/{released.id}/release", headers=student)).status_code == 403
        back = await client.post(f"/api/v1/outbox/{released.id}/release", headers=coordinator)
        assert back.status_code == 202 and back.json() == {"status": "awaiting_retry"}
        gone = await client.post(f"/api/v1/outbox/{withdrawn.id}/withdraw", headers=coordinator)
        assert gone.status_code == 200 and gone.json() == {"status": "withdrawn"}
        again = await client.post(f"/api/v1/outbox/{released.id}/release", headers=coordinator)
        assert again.status_code == 409  # no longer stuck
        assert (await client.post("/api/v1/outbox/999999/withdraw", headers=coordinator)).status_code == 404
    rows = {r["id"]: r["status"] for r in await OutboxMessage.select(OutboxMessage.id, OutboxMessage.status)}
    assert (rows[released.id], rows[withdrawn.id]) == ("awaiting_retry", "withdrawn")
    assert await _audited("outbox_release") == 1 and await _audited("outbox_withdraw") == 1


async def test_facilities_staff_and_seating(client):
    from tests.service.test_exchanges_planning import ACTOR, session_with

    coordinator = await _bearer("coordinator", "seats@script.example.jp")
    session_id, staff = await session_with([2, 2, 2], rounds=2, table_size=3)
    await sessions.assign_tables(session_id, actor=ACTOR)
    facilities = (await client.get("/api/v1/exchanges/facilities", headers=coordinator)).json()
    target = facilities[0]
    renamed = await client.patch(f"/api/v1/exchanges/facilities/{target['id']}", headers=coordinator,
                                 json={"name": "金沢さくら保育園（分園）", "kind": "nursery", "area": "金沢文庫"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "金沢さくら保育園（分園）"
    assert await _audited("exchange_facility_updated") == 1
    listed = await client.get("/api/v1/exchanges/staff", headers=coordinator)
    assert listed.status_code == 200 and len(listed.json()) >= 6 and await _audited("staff_viewed_staff_list") == 1
    member = listed.json()[0]
    one = await client.get(f"/api/v1/exchanges/staff/{member['id']}", headers=coordinator)
    assert one.json()["email"] == member["email"] and await _audited("staff_viewed_person") >= 1
    moved = await client.patch(f"/api/v1/exchanges/staff/{member['id']}", headers=coordinator,
                               json={"name": member["name"], "facility_id": target["id"], "job_title": "主任"})
    assert moved.status_code == 200 and moved.json()["facility_id"] == target["id"]
    assert await _audited("exchange_staff_updated") == 1
    seats = await client.get(f"/api/v1/exchanges/{session_id}/seats?round=2", headers=coordinator)
    assert seats.status_code == 200 and [r["round"] for r in seats.json()] == [2]
    cards = await client.get(f"/api/v1/exchanges/{session_id}/cards", headers=coordinator)
    assert cards.status_code == 200 and len(cards.json()) == 6
    assert all(set(card["tables"]) == {"1", "2"} for card in cards.json())
    assert await _audited("staff_viewed_exchange_cards") == 1
    student = await _bearer("student", "seat-nosy@script.example.jp")
    for url in (f"/api/v1/exchanges/{session_id}/cards", "/api/v1/exchanges/staff"):
        assert (await client.get(url, headers=student)).status_code == 403


async def test_survey_exports_and_series_results(client):
    from events.feedback import sending, surveys
    from tests.http.test_feedback_pages import _answer_form
    from tests.service.test_feedback_service import make_event, register, tokens_by_recipient

    event = await make_event(series="2026講座")
    for i in range(5):
        await register(event, await make_person("student", f"series{i}@example.jp"), "confirmed")
    survey_id = await surveys.create_survey(audience="seminar_student", template="seminar_student", series="2026講座")
    await sending.send_feedback_requests()
    for token in (await tokens_by_recipient()).values():
        page = await client.get(f"/feedback/{token}")
        await client.post("/feedback", data=_answer_form(page.text))
    client.cookies.clear()
    coordinator = await _bearer("coordinator", "survey@script.example.jp")
    csv = await client.get(f"/api/v1/feedback/surveys/{survey_id}/answers.csv", headers=coordinator)
    assert csv.status_code == 200 and csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert len(csv.content.decode("utf-8-sig").splitlines()) == 6
    xlsx = await client.get(f"/api/v1/feedback/surveys/{survey_id}/answers.xlsx", headers=coordinator)
    assert load_workbook(io.BytesIO(xlsx.content)).active.max_row == 6
    assert await _audited("staff_exported_feedback") == 2
    series = await client.get("/api/v1/feedback/series?series=2026講座", headers=coordinator)
    assert series.status_code == 200 and [s["survey_id"] for s in series.json()] == [survey_id]
    assert series.json()[0]["responded"] == 5
    assert (await client.get("/api/v1/feedback/series", headers=coordinator)).status_code == 400
    assert await Person.count() >= 6
