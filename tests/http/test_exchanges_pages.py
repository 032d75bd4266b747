"""Exchange sessions over HTTP: coordinator pages and API, guards, the phone page, uploads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from events.audit import recent
from events.auth import create_api_token
from events.core.tables import Facility
from events.db import write_transaction
from events.exchanges import sessions
from events.exchanges.tables import TableSeat
from tests.conftest import csrf_from, login, make_person
from tests.service.test_exchanges_planning import (
    ACTOR,
    audit_ids,
    audit_since,
    exchange_event,
    register,
    session_with,
)


async def coordinator(client) -> int:
    person_id = await make_person("coordinator", "coord@kanazawa.example.jp")
    await login(client, "coord@kanazawa.example.jp")
    return person_id


async def test_guards_anonymous_staff_and_coordinator(client):
    session_id, staff = await session_with([2, 2, 2], rounds=2, table_size=3)
    anon = await client.get("/exchanges", follow_redirects=False)
    assert anon.status_code == 303 and anon.headers["location"].startswith("/login")
    api = await client.get(f"/api/v1/exchanges/{session_id}/seats")
    assert api.status_code == 401 and api.json()["code"] == "not_authenticated"
    outsider = await make_person("facility_staff", "outsider@example.jp")
    assert outsider
    await login(client, "outsider@example.jp")
    for path in ("/exchanges", f"/exchanges/{session_id}", f"/exchanges/{session_id}/chart", "/exchanges/staff",
                 "/exchanges/met", "/exchanges/import"):
        assert (await client.get(path)).status_code == 403, path
    csrf = csrf_from((await client.get("/profile")).text)
    refused = await client.post(f"/api/v1/exchanges/{session_id}/plan", json={}, headers={"x-csrf-token": csrf})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    # Staff see only their own seats: someone not registered for this session gets 403 on both.
    assert (await client.get(f"/exchanges/{session_id}/my-table")).status_code == 403
    mine = await client.get(f"/api/v1/exchanges/{session_id}/my-seats")
    assert mine.status_code == 403 and mine.json()["code"] == "not_a_participant"
    assert await TableSeat.count() == 0


async def test_coordinator_creates_plans_prints_and_mails(client):
    await coordinator(client)
    event_id = await exchange_event("第2回 保育士交流会")
    index = await client.get("/exchanges")
    assert index.status_code == 200 and "第2回 保育士交流会" in index.text
    created = await client.post("/exchanges", data={
        "_csrf": csrf_from(index.text), "event": str(event_id), "rounds": "3", "size_mode": "table_size",
        "table_size": "3", "round_minutes": "20", "theme": ["保育の楽しさ", "保護者対応", "若手の育成"],
        "theme_en": ["", "", ""]}, follow_redirects=False)
    assert created.status_code == 303, created.text
    session_id = int(created.headers["location"].rsplit("/", 1)[1])
    from tests.service.test_exchanges_planning import staff_of

    staff = await staff_of([2, 2, 2, 1, 1, 1])
    async with write_transaction():
        for ids in staff.values():
            for person_id in ids:
                await register(event_id, person_id)
    page = await client.get(f"/exchanges/{session_id}")
    assert page.status_code == 200 and "若手の育成" in page.text and "まだ席を決めていません" in page.text
    planned = await client.post(f"/exchanges/{session_id}/plan", data={"_csrf": csrf_from(page.text), "seed": "42"})
    assert planned.status_code == 200 and "席を決めました" in planned.text
    assert "同じ方と2度同じテーブルになることはありません" in planned.text
    assert (await sessions.get_session(session_id))["seed"] == 42
    chart = await client.get(f"/exchanges/{session_id}/chart")
    assert chart.status_code == 200 and "/static/print.css" in chart.text
    assert chart.text.count('class="print-page chart"') == 3 and "テーブル 3" in chart.text
    cards = await client.get(f"/exchanges/{session_id}/cards")
    assert cards.text.count('class="name-card"') == 9
    css = await client.get("/static/print.css")
    assert css.status_code == 200 and "size: A4" in css.text
    mailed = await client.post(f"/exchanges/{session_id}/mail", data={"_csrf": csrf_from(page.text)})
    assert "9人に席のご案内メール" in mailed.text
    met = await client.get("/exchanges/met")
    assert met.status_code == 200 and "f保育園0" in met.text
    by_person = await client.get("/exchanges/met?by=person")
    assert by_person.status_code == 200 and "職員 f0-0" in by_person.text
    english = await client.get(f"/exchanges/{session_id}?lang=en")
    assert '<html lang="en">' in english.text and "Seat assignment" in english.text


async def test_phone_page_shows_current_and_next_round(client):
    session_id, staff = await session_with([2, 2, 2, 2], rounds=3, table_size=2)
    await sessions.assign_tables(session_id, seed=8, actor=ACTOR)
    person_id = staff[next(iter(staff))][0]
    seats = await sessions.seats_of(session_id, person_id)
    from events.core.tables import Person

    email = (await Person.select(Person.email).where(Person.id == person_id).first())["email"]
    await login(client, email)
    before = await client.get(f"/exchanges/{session_id}/my-table")
    assert before.status_code == 200 and before.headers["cache-control"] == "no-store"
    assert 'name="viewport"' in before.text and "次のラウンド — 第1ラウンド" in before.text
    assert f"<strong>{seats[0]['table']}</strong>" in before.text and "いまのラウンド" not in before.text
    await sessions.set_current_round(session_id, 2, actor=ACTOR)
    during = await client.get(f"/exchanges/{session_id}/my-table")
    now_part = during.text.split("いまのラウンド — 第2ラウンド")[1]
    assert re.search(rf"<strong>{seats[1]['table']}</strong>", now_part.split("次のラウンド")[0])
    assert "次のラウンド — 第3ラウンド" in during.text and "保護者対応" in during.text
    api = await client.get(f"/api/v1/exchanges/{session_id}/my-seats")
    assert api.status_code == 200
    assert [s["table"] for s in api.json()["seats"]] == [s["table"] for s in seats]
    assert api.json()["current_round"] == 2
    # A staff member may not read the full seating or plan.
    assert (await client.get(f"/api/v1/exchanges/{session_id}/seats")).status_code == 403


async def test_api_plan_replan_and_seats(client):
    coordinator_id = await coordinator(client)
    token_page = await client.get("/profile")
    assert token_page.status_code == 200
    session_id, staff = await session_with([3, 3, 2, 2, 2, 1, 1, 1, 1], rounds=4, table_size=4)
    plan = await client.post(f"/api/v1/exchanges/{session_id}/plan", json={"seed": 5},
                             headers={"x-csrf-token": csrf_from(token_page.text)})
    assert plan.status_code == 201, plan.text
    body = plan.json()
    assert body["repeat_pairs"] == 0 and body["same_facility_pairs"] == 0 and body["bound"] >= 4
    assert body["clash_free_rounds"] == body["target"] == 4
    seats_before = (await client.get(f"/api/v1/exchanges/{session_id}/seats")).json()
    headers = {"x-csrf-token": csrf_from(token_page.text)}
    assert (await client.post(f"/api/v1/exchanges/{session_id}/round", json={"current_round": 1},
                              headers=headers)).status_code == 201
    leaver = staff[next(iter(staff))][0]
    replan = await client.post(f"/api/v1/exchanges/{session_id}/replan", json={"absent": [leaver], "seed": 6},
                               headers=headers)
    assert replan.status_code == 201 and replan.json()["fixed_rounds"] == 1
    seats_after = (await client.get(f"/api/v1/exchanges/{session_id}/seats")).json()
    assert seats_after[0] == seats_before[0]
    assert all(leaver not in [p["id"] for t in r["tables"] for p in t["people"]] for r in seats_after[1:])
    listed = (await client.get(f"/api/v1/exchanges?event_id={seats_after and (await sessions.get_session(session_id))['event']}")).json()
    assert [s["id"] for s in listed] == [session_id] and listed[0]["plan"]["fixed_rounds"] == 1
    bad = await client.post(f"/api/v1/exchanges/{session_id}/round", json={"current_round": 0}, headers=headers)
    assert bad.status_code == 409 and bad.json()["code"] == "round_already_held"
    wrong = await client.post("/api/v1/exchanges", json={"event_id": 999999, "rounds": 3, "table_size": 4},
                              headers=headers)
    assert wrong.status_code == 404 and wrong.json()["code"] == "event_not_found"
    assert any(e["action"] == "exchange_replanned" and e["actor"] == coordinator_id for e in await recent())


async def test_upload_page_reports_bad_rows_and_imports_nothing(client):
    await coordinator(client)
    form = await client.get("/exchanges/import")
    broken = "施設名,種別,地区\n金沢さくら保育園,保育園,金沢文庫\n並木保育園,病院,並木\n".encode("cp932")
    response = await client.post("/exchanges/import", data={"_csrf": csrf_from(form.text), "what": "facilities",
                                                            "action": "import"},
                                 files={"file": ("施設一覧.csv", broken, "text/csv")})
    assert response.status_code == 422
    assert "3行目" in response.text and "病院" in response.text and "何も取り込んでいません" in response.text
    assert await Facility.count() == 0
    good = "施設名,種別,地区\n金沢さくら保育園,保育園,金沢文庫\n並木保育園,保育園,並木\n".encode("cp932")
    checked = await client.post("/exchanges/import", data={"_csrf": csrf_from(form.text), "what": "facilities",
                                                           "action": "check"},
                                files={"file": ("施設一覧.csv", good, "text/csv")})
    assert checked.status_code == 200 and "新規 2件" in checked.text and await Facility.count() == 0
    done = await client.post("/exchanges/import", data={"_csrf": csrf_from(form.text), "what": "facilities",
                                                        "action": "import"},
                             files={"file": ("施設一覧.csv", good, "text/csv")})
    assert done.status_code == 200 and "取り込みました" in done.text and await Facility.count() == 2
    staff_csv = "氏名,メールアドレス,施設名\n小林 由美,kobayashi@example.jp,金沢さくら保育園\n吉田 智子,bad,並木保育園\n"
    api = await client.post("/api/v1/exchanges/import/staff", content=staff_csv.encode(),
                            headers={"x-csrf-token": csrf_from(form.text), "content-type": "text/csv"})
    assert api.status_code == 422 and api.json()["code"] == "import_rejected"
    assert [(e["line"], e["code"]) for e in api.json()["errors"]] == [(3, "bad_email")]
    listing = await client.get("/exchanges/staff")
    assert "kobayashi@example.jp" not in listing.text
    assert any(e["action"] == "staff_viewed_staff_list" for e in await recent())


async def test_facility_and_staff_edit_pages(client):
    await coordinator(client)
    staff_id = await make_person("facility_staff", "edit-me@example.jp", name="編集 前")
    facility = await Facility.select().first()
    page = await client.get(f"/exchanges/staff/{staff_id}")
    assert page.status_code == 200 and "編集 前" in page.text
    other = await Facility.insert(Facility(name="並木保育園", kind="nursery", area="並木")).returning(Facility.id)
    saved = await client.post(f"/exchanges/staff/{staff_id}", data={
        "_csrf": csrf_from(page.text), "name": "編集 後", "kana": "へんしゅう あと", "facility": str(other[0]["id"]),
        "job_title": "主任保育士"}, follow_redirects=False)
    assert saved.status_code == 303
    listing = await client.get(f"/exchanges/staff?facility={other[0]['id']}")
    assert "編集 後" in listing.text and "主任保育士" in listing.text
    edit = await client.get(f"/exchanges/facilities/{facility['id']}")
    clash = await client.post(f"/exchanges/facilities/{facility['id']}", data={
        "_csrf": csrf_from(edit.text), "name": "並木保育園", "kind": "nursery", "area": ""})
    assert clash.status_code == 409 and "同じ名前の施設" in clash.text
    ok = await client.post(f"/exchanges/facilities/{facility['id']}", data={
        "_csrf": csrf_from(edit.text), "name": "六浦こども園", "kind": "certified_childcare", "area": "六浦"},
        follow_redirects=False)
    assert ok.status_code == 303
    assert (await Facility.select().where(Facility.id == facility["id"]).first())["kind"] == "certified_childcare"
    assert 'name="kana"' in edit.text  # the reading that orders facilities in 五十音順 (sign-up lists them so)
    kanji = await client.post(f"/exchanges/facilities/{facility['id']}", data={
        "_csrf": csrf_from(edit.text), "name": "六浦こども園", "kind": "certified_childcare", "area": "六浦",
        "kana": "六浦"})
    assert kanji.status_code == 422 and "ひらがなかカタカナ" in kanji.text
    read = await client.post(f"/exchanges/facilities/{facility['id']}", data={
        "_csrf": csrf_from(edit.text), "name": "六浦こども園", "kind": "certified_childcare", "area": "六浦",
        "kana": "むつうらこどもえん"}, follow_redirects=False)
    assert read.status_code == 303
    assert (await Facility.select().where(Facility.id == facility["id"]).first())["kana"] == "むつうらこどもえん"


async def test_home_page_links_staff_to_their_table(client):
    session_id, staff = await session_with([1, 1], rounds=1, table_size=2)
    from events.core.tables import Person

    person_id = staff[next(iter(staff))][0]
    email = (await Person.select(Person.email).where(Person.id == person_id).first())["email"]
    await login(client, email)
    home = await client.get("/")
    assert f"/exchanges/{session_id}/my-table" in home.text


async def test_openapi_lists_the_exchange_api(client):
    schema = (await client.get("/schema/openapi.json")).json()
    for path in ("/api/v1/exchanges", "/api/v1/exchanges/{session_id}/plan", "/api/v1/exchanges/{session_id}/replan",
                 "/api/v1/exchanges/{session_id}/seats", "/api/v1/exchanges/{session_id}/my-seats",
                 "/api/v1/exchanges/import/{what}", "/api/v1/exchanges/met"):
        assert path in schema["paths"], path


async def test_session_page_asks_for_a_replan_when_participants_change(client):
    await coordinator(client)
    session_id, staff = await session_with([2, 2, 2], rounds=2, table_size=3)
    await sessions.assign_tables(session_id, seed=1, actor=ACTOR)
    page = await client.get(f"/exchanges/{session_id}")
    assert "決め直してください" not in page.text
    leaver = staff[next(iter(staff))][0]
    await sessions.set_presence(session_id, leaver, "absent", actor=ACTOR)
    newcomer = await make_person("facility_staff", "newcomer@example.jp", name="新人 さん")
    await register((await sessions.get_session(session_id))["event"], newcomer)
    page = await client.get(f"/exchanges/{session_id}")
    assert "決め直してください" in page.text and "新人 さん" in page.text.split("席のない方")[1]
    await client.post(f"/exchanges/{session_id}/plan", data={"_csrf": csrf_from(page.text)})
    page = await client.get(f"/exchanges/{session_id}")
    assert "決め直してください" not in page.text


# ---------------------------------------------------------------- audit of staff views


async def one_audit_entry(before: int, action: str, actor: int) -> dict:
    entries = await audit_since(before)
    assert [(e["action"], e["actor"]) for e in entries] == [(action, actor)], entries
    assert entries[0]["client"], "the client address is recorded"
    return entries[0]


async def test_each_staff_view_writes_one_audit_entry(client):
    session_id, staff = await session_with([2, 2, 2], rounds=2, table_size=3)
    await sessions.assign_tables(session_id, seed=1, actor=ACTOR)
    coordinator_id = await coordinator(client)
    member = staff[next(iter(staff))][0]
    views = [
        (f"/exchanges/{session_id}", "staff_viewed_exchange", str(session_id)),
        (f"/exchanges/{session_id}/cards", "staff_viewed_exchange_cards", str(session_id)),
        (f"/exchanges/{session_id}/chart", "staff_viewed_exchange_chart", str(session_id)),
        (f"/exchanges/{session_id}/chart?round=2", "staff_viewed_exchange_chart", str(session_id)),
        (f"/api/v1/exchanges/{session_id}/seats", "staff_viewed_exchange_seats", str(session_id)),
        ("/exchanges/met", "staff_viewed_met", ""),
        ("/exchanges/met?by=person", "staff_viewed_met", ""),
        ("/api/v1/exchanges/met", "staff_viewed_met", ""),
        ("/exchanges/staff", "staff_viewed_staff_list", ""),
        (f"/exchanges/staff/{member}", "staff_viewed_person", str(member)),
    ]
    for path, action, subject in views:
        before = await audit_ids()
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text)
        entry = await one_audit_entry(before, action, coordinator_id)
        assert entry["subject_id"] == subject, path
    chart = await audit_since(0)
    assert any(e["detail"].get("round") == 2 for e in chart if e["action"] == "staff_viewed_exchange_chart")
    # A session that does not exist is not a view: 404 and no entry.
    before = await audit_ids()
    assert (await client.get(f"/exchanges/{session_id + 99}")).status_code == 404
    assert await audit_since(before) == []


async def test_staff_views_through_the_api_token_are_audited(client):
    session_id, _ = await session_with([2, 2], rounds=1, table_size=2)
    await sessions.assign_tables(session_id, seed=1, actor=ACTOR)
    coordinator_id = await make_person("coordinator", "api-coord@kanazawa.example.jp")
    headers = {"authorization": f"Bearer {await create_api_token(coordinator_id, 'test')}"}
    for path, action in ((f"/api/v1/exchanges/{session_id}/seats", "staff_viewed_exchange_seats"),
                         ("/api/v1/exchanges/met", "staff_viewed_met")):
        before = await audit_ids()
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        await one_audit_entry(before, action, coordinator_id)
    before = await audit_ids()
    planned = await client.post(f"/api/v1/exchanges/{session_id}/plan", json={"seed": 3}, headers=headers)
    assert planned.status_code == 201, planned.text
    entry = await one_audit_entry(before, "exchange_planned", coordinator_id)
    assert entry["detail"]["seed"] == 3 and entry["subject_id"] == str(session_id)
    before = await audit_ids()
    mailed = await client.post(f"/api/v1/exchanges/{session_id}/mail", headers=headers)
    assert mailed.status_code == 202
    await one_audit_entry(before, "exchange_tables_mailed", coordinator_id)


async def test_page_changes_are_audited_by_the_services(client):
    coordinator_id = await coordinator(client)
    session_id, _ = await session_with([2, 2, 2], rounds=2, table_size=3)
    page = await client.get(f"/exchanges/{session_id}")
    before = await audit_ids()
    planned = await client.post(f"/exchanges/{session_id}/plan", data={"_csrf": csrf_from(page.text), "seed": "4"})
    assert planned.status_code == 200
    # the plan, then the session page it shows (a staff view of its own)
    assert [(e["action"], e["actor"]) for e in await audit_since(before)] == [
        ("exchange_planned", coordinator_id), ("staff_viewed_exchange", coordinator_id)]
    form = await client.get("/exchanges/import")
    good = "施設名,種別,地区\n金沢さくら保育園,保育園,金沢文庫\n".encode()
    before = await audit_ids()
    checked = await client.post("/exchanges/import", data={"_csrf": csrf_from(form.text), "what": "facilities",
                                                           "action": "check"},
                                files={"file": ("施設.csv", good, "text/csv")})
    assert checked.status_code == 200 and await audit_since(before) == []  # a check writes nothing
    done = await client.post("/exchanges/import", data={"_csrf": csrf_from(form.text), "what": "facilities",
                                                        "action": "import"},
                             files={"file": ("施設.csv", good, "text/csv")})
    assert done.status_code == 200
    entry = await one_audit_entry(before, "imported_facilities", coordinator_id)
    assert entry["detail"]["created"] == 1 and entry["detail"]["file"] == "施設.csv"
    facility = await Facility.select().where(Facility.name == "金沢さくら保育園").first()
    before = await audit_ids()
    saved = await client.post(f"/exchanges/facilities/{facility['id']}", data={
        "_csrf": csrf_from(form.text), "name": "金沢さくら保育園", "kind": "nursery", "area": "釜利谷"},
        follow_redirects=False)
    assert saved.status_code == 303
    entry = await one_audit_entry(before, "exchange_facility_updated", coordinator_id)
    assert entry["detail"]["changed"] == ["area"]
    staff_id = await make_person("facility_staff", "audited@example.jp", name="監査 太郎")
    before = await audit_ids()
    saved = await client.post(f"/exchanges/staff/{staff_id}", data={
        "_csrf": csrf_from(form.text), "name": "監査 次郎", "kana": "", "facility": str(facility["id"]),
        "job_title": ""}, follow_redirects=False)
    assert saved.status_code == 303
    entry = await one_audit_entry(before, "exchange_staff_updated", coordinator_id)
    assert "name" in entry["detail"]["changed"]


@pytest.mark.parametrize("module", sorted(
    (Path(__file__).resolve().parents[2] / "lifedesign" / "areas" / "exchanges").glob("*.py")), ids=lambda p: p.name)
def test_exchange_handlers_write_no_audit_rows(module: Path):
    """Handlers stay thin: the services write the audit entries, in their own transactions."""
    text = module.read_text(encoding="utf-8")
    assert "audit.record" not in text and "audit.viewed" not in text
    assert not re.search(r"^\s*(from events import .*\baudit\b|import events\.audit|from events\.audit import)",
                         text, re.MULTILINE)
