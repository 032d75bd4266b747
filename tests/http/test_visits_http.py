"""Home visits through HTTP: sign-up to a confirmed visit (pages and API), a decline and re-match, the address
hidden before confirmation, and the guards between students, families and coordinators."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from litestar.testing import AsyncTestClient

from events.core.tables import AuditEntry, Person
from events.db import utcnow
from events.seminars.tables import Event
from tests.conftest import csrf_from, links_in, login, mail_text, make_person, outbox_mails

TOKYO = ZoneInfo("Asia/Tokyo")


def visit_day(offset: int = 12):
    return (utcnow() + timedelta(days=offset)).astimezone(TOKYO).date()


@pytest.fixture
def browser(app):
    """A separate cookie jar per person."""

    @asynccontextmanager
    async def open_client() -> AsyncIterator[AsyncTestClient]:
        async with AsyncTestClient(app=app, base_url="http://127.0.0.1:8000") as client:
            yield client

    return open_client


def calendar_method(message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            return part.get_param("method") or ""
    return ""


async def csrf(client, path: str = "/profile") -> str:
    return csrf_from((await client.get(path)).text)


async def signup(client, role: str, email: str, **fields) -> None:
    token = await csrf(client, "/signup")
    response = await client.post("/signup", data={"_csrf": token, "role": role, "email": email, "name": fields.pop(
        "name", "テスト 利用者"), **fields})
    assert response.status_code == 200, response.text
    await login(client, email)


async def api(client, method: str, path: str, token: str, **kwargs):
    return await client.request(method, path, headers={"x-csrf-token": token}, **kwargs)


async def test_signup_to_confirmed_visit_with_decline_and_rematch(browser, db):
    day = visit_day()
    coordinator_id = await make_person("coordinator", "coord@kanazawa.example.jp")
    async with browser() as coord, browser() as family, browser() as minor, browser() as adult_b, \
            browser() as adult_c, browser() as guardian:
        await login(coord, "coord@kanazawa.example.jp")
        coord_token = await csrf(coord)
        created = await api(coord, "POST", "/api/v1/visits/rounds", coord_token, json={
            "name": "2026年 夏の家庭訪問", "requests_open_at": (utcnow() - timedelta(hours=1)).isoformat(),
            "requests_close_at": (utcnow() + timedelta(days=5)).isoformat(), "seed": 42})
        assert created.status_code == 201, created.text
        round_id = created.json()["id"]

        # a host family signs up, describes the household, gives the address and offers a slot (pages)
        await signup(family, "host_family", "yamada@example.jp", name="山田 真理子")
        token = await csrf(family, "/visits/household")
        saved = await family.post("/visits/household", data={
            "_csrf": token, "display_name": "山田家", "district": "能見台", "children_ages": "1,4",
            "tags": ["dual_income", "infant"], "languages": ["ja"]}, follow_redirects=False)
        assert saved.status_code == 303
        saved = await family.post("/visits/household/address", data={
            "_csrf": token, "postal_code": "236-0053", "address": "横浜市金沢区能見台通9-9-9", "phone": "045-111-2222"},
            follow_redirects=False)
        assert saved.status_code == 303
        page = await family.get("/visits/household")
        assert "能見台通9-9-9" in page.text and "まだです" in page.text  # not vetted yet
        added = await family.post("/visits/slots", data={
            "_csrf": token, "round": str(round_id), "date": day.isoformat(), "start": "10:00", "end": "13:00",
            "capacity": "2"}, follow_redirects=False)
        assert added.status_code == 303
        bad = await family.post("/visits/slots", data={
            "_csrf": token, "round": str(round_id), "date": day.isoformat(), "start": "14:00", "end": "15:00",
            "capacity": "9"})
        assert bad.status_code == 422 and "1〜4" in bad.text

        # the coordinator vets the household (page); the household page shows the address and is audited
        households = (await coord.get("/api/v1/visits/households")).json()
        household_id = households[0]["id"]
        assert "address" not in households[0]
        vet = await coord.post(f"/visits/admin/households/{household_id}/vetting", data={
            "_csrf": coord_token, "interviewed_on": utcnow().date().isoformat(),
            "valid_until": (utcnow().date() + timedelta(days=365)).isoformat()}, follow_redirects=False)
        assert vet.status_code == 303
        admin_page = await coord.get(f"/visits/admin/households/{household_id}")
        assert "能見台通9-9-9" in admin_page.text

        # a minor signs up and asks through the page; two adults through the API
        born = utcnow().date().replace(year=utcnow().year - 16)
        await signup(minor, "student", "yui@example.jp", name="佐藤 結衣", birth_date=born.isoformat(),
                     school_level="high_school", school_name="金沢高校", grade="2", guardian_email="mother@example.jp",
                     guardian_name="佐藤 恵")
        minor_token = await csrf(minor, f"/visits/rounds/{round_id}/request")
        asked = await minor.post(f"/visits/rounds/{round_id}/request", data={
            "_csrf": minor_token, "window_date": [day.isoformat(), ""], "window_start": ["09:00", "09:00"],
            "window_end": ["17:00", "18:00"], "district": ["能見台"], "wanted": ["infant"]}, follow_redirects=False)
        assert asked.status_code == 303, asked.text
        prefilled = await minor.get(f"/visits/rounds/{round_id}/request")
        assert f'value="{day.isoformat()}"' in prefilled.text and 'value="17:00"' in prefilled.text
        window = {"starts_at": f"{day.isoformat()}T09:00:00+09:00", "ends_at": f"{day.isoformat()}T17:00:00+09:00"}
        for client, email in ((adult_b, "b@univ.example.jp"), (adult_c, "c@univ.example.jp")):
            await make_person("student", email)
            await login(client, email)
            response = await api(client, "POST", f"/api/v1/visits/rounds/{round_id}/requests", await csrf(client),
                                 json={"windows": [window], "districts": ["六浦"]})
            assert response.status_code == 201, response.text
        b_id = (await Person.select(Person.id).where(Person.email == "b@univ.example.jp").first())["id"]
        c_id = (await Person.select(Person.id).where(Person.email == "c@univ.example.jp").first())["id"]
        minor_id = (await Person.select(Person.id).where(Person.email == "yui@example.jp").first())["id"]

        # the guardian consents on the public page (no account; the button POSTs with CSRF)
        mail = (await outbox_mails("consent_request", "mother@example.jp"))[0]
        consent_path = urlsplit([u for u in links_in(mail) if "/consent/" in u][0]).path
        assert consent_path.startswith("/consent/")  # the one consent page, for seminars and visits alike
        consent_page = await guardian.get(consent_path)
        assert consent_page.status_code == 200 and "能見台" in consent_page.text
        assert "能見台通" not in consent_page.text and consent_page.headers["cache-control"] == "no-store"
        no_csrf = await guardian.post(consent_path, data={"decision": "give"})
        assert no_csrf.status_code == 403
        given = await guardian.post(consent_path, data={"_csrf": csrf_from(consent_page.text), "decision": "give"})
        assert given.status_code == 200 and "同意いただき、ありがとうございました" in given.text
        old_link = await guardian.get("/visits/consent/" + consent_path.rsplit("/", 1)[1], follow_redirects=False)
        assert old_link.status_code == 301 and old_link.headers["location"] == consent_path

        # the coordinator runs the matching and confirms; a minor never goes alone, so capacity 2 = minor + one adult
        run = await api(coord, "POST", f"/api/v1/visits/rounds/{round_id}/matching", coord_token, json={})
        assert run.status_code == 201, run.text
        proposal = run.json()
        assert proposal["proposal"]["optimal"] and proposal["proposal"]["matched_count"] == 2
        matched = {m["student"] for m in proposal["matches"]}
        assert minor_id in matched
        unmatched = proposal["unmatched"]
        assert len(unmatched) == 1 and unmatched[0]["reason_label"] == "条件に合う枠がすべて埋まっています"
        review = await coord.get(f"/visits/admin/rounds/{round_id}")
        assert "条件に合う枠がすべて埋まっています" in review.text and "佐藤 結衣" in review.text
        confirmed = await api(coord, "POST", f"/api/v1/visits/proposals/{proposal['proposal']['id']}/confirm",
                              coord_token)
        assert confirmed.json() == {"offered": 2, "cancelled": 0, "kept": 0}
        companion_id = next(s for s in matched if s != minor_id)
        companion, waiting = (adult_b, adult_c) if companion_id == b_id else (adult_c, adult_b)
        waiting_id = c_id if companion_id == b_id else b_id

        # before both sides confirm: the district only, no address (page and API)
        minor_match = (await minor.get("/api/v1/visits/matches")).json()[0]
        assert minor_match["district"] == "能見台" and "address" not in minor_match
        hidden = await minor.get(f"/api/v1/visits/matches/{minor_match['id']}/address")
        assert hidden.status_code == 403 and hidden.json()["code"] == "address_hidden"
        assert "能見台通9-9-9" not in (await minor.get("/visits/my")).text
        # nobody else's visit: the waiting student sees nothing, the family sees only matched students
        assert (await waiting.get("/api/v1/visits/matches")).json() == []
        family_view = (await family.get("/api/v1/visits/matches")).json()
        assert {v["student"] for v in family_view} == matched

        # both sides confirm: the family on the page (once for the slot, after a confirmation step), the students
        # through the API
        step = await family.post(f"/visits/matches/{family_view[0]['id']}/answer",
                                 data={"_csrf": token, "decision": "accept"}, follow_redirects=False)
        assert step.status_code == 200 and "この日の受け入れを確定しますか" in step.text
        assert (await Event.count()) == 0 and "佐藤 結衣" in step.text  # nothing changed yet
        answered = await family.post(f"/visits/slots/{family_view[0]['slot']}/answer",
                                     data={"_csrf": token, "decision": "accept", "confirmed": "1"},
                                     follow_redirects=False)
        assert answered.status_code == 303
        assert all(v["family_response"] == "accepted" for v in (await family.get("/api/v1/visits/matches")).json())
        await api(minor, "POST", f"/api/v1/visits/matches/{minor_match['id']}/confirm", minor_token)
        companion_match = (await companion.get("/api/v1/visits/matches")).json()[0]
        companion_token = await csrf(companion)
        ok = await api(companion, "POST", f"/api/v1/visits/matches/{companion_match['id']}/confirm", companion_token)
        assert ok.json()["status"] == "accepted"
        event = await Event.select().first()
        assert (event["kind"], event["visibility"], event["taken"]) == ("home_visit", "private", 2)

        shown = await minor.get(f"/api/v1/visits/matches/{minor_match['id']}/address")
        assert shown.status_code == 200 and shown.json()["address"] == "横浜市金沢区能見台通9-9-9"
        assert "能見台通9-9-9" in (await minor.get("/visits/my")).text
        contact = await family.get(f"/api/v1/visits/matches/{family_view[0]['id']}/contact")
        assert contact.status_code == 200 and "@" in contact.json()["email"]
        views = await AuditEntry.count().where((AuditEntry.action == "viewed_address") & (AuditEntry.actor == minor_id))
        assert views == 2  # the API view and the page view
        assert await AuditEntry.count().where(AuditEntry.action == "viewed_student_contact") >= 1
        assert await AuditEntry.count().where((AuditEntry.action == "viewed_address")
                                              & (AuditEntry.actor == coordinator_id)) == 1

        # the companion declines on the page: the minor's visit is on hold and the address hidden again
        step = await companion.post(f"/visits/matches/{companion_match['id']}/answer",
                                    data={"_csrf": companion_token, "decision": "decline"}, follow_redirects=False)
        assert step.status_code == 200 and "この訪問を辞退しますか" in step.text and "辞退の理由" in step.text
        no_reason = await companion.post(f"/visits/matches/{companion_match['id']}/answer", follow_redirects=False,
                                         data={"_csrf": companion_token, "decision": "decline", "confirmed": "1"})
        assert no_reason.status_code == 422 and 'aria-invalid="true"' in no_reason.text
        assert (await Event.select(Event.taken).first())["taken"] == 2  # still confirmed
        declined = await companion.post(f"/visits/matches/{companion_match['id']}/answer", follow_redirects=False,
                                        data={"_csrf": companion_token, "decision": "decline", "confirmed": "1",
                                              "reason": "部活の試合と重なったため"})
        assert declined.status_code == 303
        assert (await minor.get(f"/api/v1/visits/matches/{minor_match['id']}/address")).status_code == 403
        assert (await Event.select(Event.taken).first())["taken"] == 0

        # the round page flags the held visit with its one action, a re-match
        held = await coord.get(f"/visits/admin/rounds/{round_id}")
        assert "対応が必要な訪問" in held.text and "佐藤 結衣" in held.text
        assert held.text.count(f'action="/visits/admin/rounds/{round_id}/run"') >= 2
        assert len(await outbox_mails("safeguarding_hold", "mother@example.jp")) == 1

        # re-match: the minor and the waiting student go together; confirm, everyone answers again
        rerun = (await api(coord, "POST", f"/api/v1/visits/rounds/{round_id}/matching", coord_token,
                           json={"seed": 7})).json()
        assert {m["student"] for m in rerun["matches"]} == {minor_id, waiting_id}
        step = await coord.post(f"/visits/admin/proposals/{rerun['proposal']['id']}/confirm",
                                data={"_csrf": coord_token, "round": str(round_id)}, follow_redirects=False)
        assert step.status_code == 200 and "2名の学生に組み合わせを知らせ" in step.text
        assert "保護者の方にも" in step.text and "名の方にメールでお知らせします" in step.text
        confirm_page = await coord.post(f"/visits/admin/proposals/{rerun['proposal']['id']}/confirm",
                                        data={"_csrf": coord_token, "round": str(round_id), "confirmed": "1"},
                                        follow_redirects=False)
        assert confirm_page.status_code == 303
        for client_ in (waiting, minor):
            offered = [m for m in (await client_.get("/api/v1/visits/matches")).json()
                       if m["status"] == "confirmed_by_coordinator"]
            assert len(offered) == 1
            await api(client_, "POST", f"/api/v1/visits/matches/{offered[0]['id']}/confirm", await csrf(client_))
            await api(family, "POST", f"/api/v1/visits/matches/{offered[0]['id']}/confirm", token)
            if client_ is minor:
                minor_match = offered[0]
        assert (await Event.select(Event.taken).first())["taken"] == 2
        assert (await minor.get(f"/api/v1/visits/matches/{minor_match['id']}/address")).status_code == 200
        after = await coord.get(f"/visits/admin/rounds/{round_id}")
        assert after.status_code == 200 and "対応が必要な訪問" not in after.text
        family_page = await family.get("/visits/my")
        assert "c@univ.example.jp" in family_page.text or "b@univ.example.jp" in family_page.text
        # mails: offers, confirmations, the decline notice to the family and the coordinator
        assert len(await outbox_mails("visit_declined")) == 2
        # the reason reaches the coordinator only
        assert "部活の試合と重なったため" in mail_text((await outbox_mails("visit_declined", "coord@kanazawa.example.jp"))[0])
        assert "部活の試合" not in mail_text((await outbox_mails("visit_declined", "yamada@example.jp"))[0])
        # each confirmation carries a calendar invite: the students' and the host family's
        for address in ("yui@example.jp", "yamada@example.jp"):
            confirmations = await outbox_mails("visit_confirmed", address)
            assert confirmations and all(calendar_method(m) == "REQUEST" for m in confirmations)
        # while the minor's visit was off, the family's invite was cancelled (by the invites area)
        assert [calendar_method(m) for m in await outbox_mails("invite_cancel", "yamada@example.jp")] == ["CANCEL"]


async def test_guards(browser, db):
    day = visit_day(5)
    await make_person("coordinator", "coord2@kanazawa.example.jp")
    async with browser() as coord, browser() as student, browser() as other, browser() as family, \
            browser() as anonymous:
        await login(coord, "coord2@kanazawa.example.jp")
        coord_token = await csrf(coord)
        round_id = (await api(coord, "POST", "/api/v1/visits/rounds", coord_token, json={
            "name": "ガード確認", "requests_open_at": (utcnow() - timedelta(hours=1)).isoformat(),
            "requests_close_at": (utcnow() + timedelta(days=2)).isoformat()})).json()["id"]
        await make_person("student", "s1@example.jp")
        await make_person("student", "s2@example.jp")
        await make_person("host_family", "f1@example.jp")
        await login(student, "s1@example.jp")
        await login(other, "s2@example.jp")
        await login(family, "f1@example.jp")
        window = {"starts_at": f"{day.isoformat()}T09:00:00+09:00", "ends_at": f"{day.isoformat()}T12:00:00+09:00"}
        mine = await api(student, "POST", f"/api/v1/visits/rounds/{round_id}/requests", await csrf(student),
                         json={"windows": [window]})
        request_id = mine.json()["id"]

        # a student cannot see another student's request, nor the round's list
        assert (await other.get(f"/api/v1/visits/requests/{request_id}")).status_code == 404
        assert (await student.get(f"/api/v1/visits/requests/{request_id}")).status_code == 200
        assert (await other.get(f"/api/v1/visits/rounds/{round_id}/requests")).status_code == 403
        # a family sees no requests (unmatched students) and cannot run the matching
        assert (await family.get(f"/api/v1/visits/rounds/{round_id}/requests")).status_code == 403
        assert (await family.get(f"/api/v1/visits/requests/{request_id}")).status_code == 403
        refused = await api(family, "POST", f"/api/v1/visits/rounds/{round_id}/matching", await csrf(family), json={})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        # students cannot offer slots nor read household addresses; pages for coordinators are closed
        assert (await api(student, "POST", f"/api/v1/visits/rounds/{round_id}/slots", await csrf(student),
                          json={"starts_at": window["starts_at"], "ends_at": window["ends_at"]})).status_code == 403
        assert (await student.get("/api/v1/visits/households/1/address")).status_code == 403
        assert (await student.get("/visits/admin")).status_code == 403
        assert (await family.get(f"/visits/admin/rounds/{round_id}")).status_code == 403
        # anonymous: 401 on the API, a redirect to the login page for pages
        assert (await anonymous.get("/api/v1/visits/rounds")).status_code == 401
        login_redirect = await anonymous.get("/visits/my", follow_redirects=False)
        assert login_redirect.status_code == 303 and "/login" in login_redirect.headers["location"]
        # an unknown consent token is a plain 404 page, no stack trace
        unknown = await anonymous.get("/consent/not-a-token")
        assert unknown.status_code == 404 and "このリンクは無効です" in unknown.text
        # bad input is a clear JSON error and nothing is saved
        bad = await api(student, "POST", f"/api/v1/visits/rounds/{round_id}/requests", await csrf(student),
                        json={"windows": [{"starts_at": "2026-01-01T10:00:00", "ends_at": "2026-01-01T12:00:00"}]})
        assert bad.status_code == 422 and bad.json()["code"] == "naive_datetime"
        # a family answers only its own matches
        assert (await api(family, "POST", "/api/v1/visits/matches/999/confirm", await csrf(family))).status_code == 404
        # a family's own slots only
        assert (await family.get(f"/api/v1/visits/rounds/{round_id}/slots")).json() == []
        assert re.search(r"家庭訪問の管理", (await coord.get("/visits/admin")).text)
        # English on request, from the area's catalog
        english = await student.get("/visits/my?lang=en")
        assert '<html lang="en">' in english.text and "My visits" in english.text and "訪問予定" not in english.text
        english_admin = await coord.get(f"/visits/admin/rounds/{round_id}?lang=en")
        assert "Run the matching" in english_admin.text


async def test_demo_loader_is_idempotent(db):
    from events import people
    from events.visits.tables import Household, VisitRequest, VisitRound, VisitSlot
    from lifedesign.areas.visits import demo
    from lifedesign.demo import PEOPLE

    await make_person("coordinator", demo.COORDINATOR)
    for email, name, _kana, roles, student, _facility in PEOPLE:
        if "student" in roles:
            await people.create_person(email, name, roles=roles, student=student)
    first = await demo.load(lambda message: None)
    assert first["visit_slots_created"] >= 7 and first["visit_requests"] == 4
    again = await demo.load(lambda message: None)
    assert again["visit_slots_created"] == 0
    assert await VisitRound.count() == 1 and await Household.count() == 5
    assert await VisitRequest.count().where(VisitRequest.status == "active") == 4
    districts = {h["district"] for h in await Household.select(Household.district)}
    assert {"能見台", "六浦", "金沢文庫"} <= districts
    assert await VisitSlot.count() == first["visit_slots_created"]
