"""Home-visit journeys through HTTP: a confirmation step (no JavaScript) before every irreversible visit action,
saying what happens and who gets mail, with the reason required where people are told it; the guardian's
status page; the request form with the slots families offered; a visit's own page (its calendar link) in visit
wording; and an English entry for every string the visit pages show."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from litestar.testing import AsyncTestClient

from events.core.tables import AuditEntry, Person
from events.seminars.tables import Event
from events.visits import requests, rounds
from events.visits.tables import VisitMatch, VisitRequest, VisitSlot
from tests.conftest import csrf_from, links_in, login, make_person, outbox_mails
from tests.service.test_visits_journeys import GUARDIAN, everyone_accepts, offered_visit
from tests.service.test_visits_services import day, family, open_round


@pytest.fixture
def person(app):
    """A separate cookie jar per person."""

    @asynccontextmanager
    async def open_client(email: str | None = None) -> AsyncIterator[AsyncTestClient]:
        async with AsyncTestClient(app=app, base_url="http://127.0.0.1:8000") as client:
            if email:
                await login(client, email)
            yield client

    return open_client


async def email_of(person_id: int) -> str:
    return (await Person.select(Person.email).where(Person.id == person_id).first())["email"]


async def post(client, path: str, **data):
    token = csrf_from((await client.get("/profile")).text)
    return await client.post(path, data={"_csrf": token, **data}, follow_redirects=False)


async def test_every_irreversible_visit_action_asks_first_and_says_who_is_told(db, person):
    visit = await offered_visit()
    young_match = visit["matches"][visit["young"]]
    async with person(await email_of(visit["coordinator"])) as coord, person(await email_of(visit["young"])) as young, \
            person(await email_of(visit["host"])) as host:
        # the student declines: the step says who is told; the reason is required; nothing changes before
        step = await post(young, f"/visits/matches/{young_match}/answer", decision="decline")
        assert step.status_code == 200 and "この訪問を辞退しますか" in step.text
        assert "保護者の方にも、辞退のお知らせ" in step.text and 'name="confirmed" value="1"' in step.text
        assert "required" in step.text and f'<form method="post" action="/visits/matches/{young_match}/answer"' in step.text
        refused = await post(young, f"/visits/matches/{young_match}/answer", decision="decline", confirmed="1")
        assert refused.status_code == 422 and 'aria-invalid="true"' in refused.text
        assert (await VisitMatch.select(VisitMatch.status).where(VisitMatch.id == young_match).first())["status"] \
            == "confirmed_by_coordinator"
        # accepting is a step too, and says it can still be declined later
        step = await post(young, f"/visits/matches/{young_match}/answer", decision="accept")
        assert "この訪問に参加しますか" in step.text and "この操作は元に戻せません" not in step.text
        done = await post(young, f"/visits/matches/{young_match}/answer", decision="accept", confirmed="1")
        assert done.status_code == 303 and done.headers["location"] == "/visits/my?notice=accepted"
        page = await young.get("/visits/my")
        assert "状況：あなたは「参加する」と回答済みです。ご家庭の回答を待っています" in page.text
        assert "訪問が確定しました" not in page.text and "ご家庭の回答</dt><dd>まだ回答していません" in page.text

        # the family's one answer for the slot: declining names the students and needs a reason
        step = await post(host, f"/visits/slots/{visit['slot']}/answer", decision="decline")
        assert "この日の受け入れを辞退しますか" in step.text and "佐藤 結衣" in step.text and "山田 花子" in step.text
        assert (await post(host, f"/visits/slots/{visit['slot']}/answer", decision="decline",
                           confirmed="1")).status_code == 422

        # the coordinator calls a visit off: reason required, written in the mails
        step = await post(coord, f"/visits/admin/matches/{young_match}/cancel")
        assert "この訪問を取りやめますか" in step.text and "3名の方にメールでお知らせします" in step.text
        assert "保護者の方にも理由" in step.text
        assert (await post(coord, f"/visits/admin/matches/{young_match}/cancel", confirmed="1")).status_code == 422
        done = await post(coord, f"/visits/admin/matches/{young_match}/cancel", confirmed="1", reason="会場の都合")
        assert done.status_code == 303 and "notice=visit_cancelled" in done.headers["location"]
        assert "会場の都合" in (await outbox_mails("visit_guardian", GUARDIAN))[-1].get_body().get_content()
        assert await AuditEntry.count().where(AuditEntry.action == "staff_viewed_visit") >= 1

        # the student withdraws the request: nobody is mailed, and the step says so
        request_id = visit["request"]
        step = await post(young, f"/visits/requests/{request_id}/withdraw")
        assert "家庭訪問の申込を取り下げますか" in step.text and "メールを受け取る方はいません" in step.text
        assert (await post(young, f"/visits/requests/{request_id}/withdraw", confirmed="1")).status_code == 303
        assert (await VisitRequest.select(VisitRequest.status).where(VisitRequest.id == request_id).first())[
            "status"] == "withdrawn"

        # the family withdraws a slot without students
        spare = await rounds.offer_slot(visit["host"], visit["round"], starts_at=day(12, 10), ends_at=day(12, 12),
                                        capacity=2)
        step = await post(host, f"/visits/slots/{spare}/withdraw")
        assert "この受け入れ枠を取り下げますか" in step.text
        assert (await post(host, f"/visits/slots/{spare}/withdraw", confirmed="1")).status_code == 303
        assert (await VisitSlot.select(VisitSlot.status).where(VisitSlot.id == spare).first())["status"] == "withdrawn"
        # another family's slot: no hint that it exists
        assert (await post(host, f"/visits/slots/{visit['slot'] + 999}/withdraw")).status_code == 404


async def test_the_guardian_page_needs_no_account_and_shows_the_address_only_once_released(db, person):
    visit = await offered_visit()
    mail = (await outbox_mails("visit_guardian", GUARDIAN))[0]
    path = urlsplit([u for u in links_in(mail) if "/visits/guardian/" in u][0]).path
    async with person() as guardian:
        page = await guardian.get(path)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert "佐藤 結衣さんの家庭訪問" in page.text and "山田 花子" in page.text and "能見台" in page.text
        assert "能見台1-2-" not in page.text and "訪問が確定した後に表示されます" in page.text
        await everyone_accepts(visit)
        page = await guardian.get(path)
        assert "訪問が確定しました" in page.text and "横浜市金沢区能見台1-2-" in page.text
        english = await guardian.get(path + "?lang=en")
        assert "Adult students going along" in english.text
        # the consent page links to it; unknown links answer a clear page, never a 500
        consent = await guardian.get(f"/consent/{visit['consent_token']}")
        assert f'href="/visits/guardian/{visit["consent_token"]}"' in consent.text
        assert (await guardian.get(f"/visits/guardian/{visit['consent_token']}")).status_code == 200
        bad = await guardian.get("/visits/guardian/nothing-here")
        assert bad.status_code == 404 and "このリンクは無効です" in bad.text


async def test_the_request_form_offers_the_slots_families_offered(db, person):
    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    host, _ = await family("六浦")
    slot = await rounds.offer_slot(host, round_id, starts_at=day(9, 10), ends_at=day(9, 12), capacity=2)
    student = await make_person("student", "ren@example.jp")
    async with person("ren@example.jp") as client:
        form = await client.get(f"/visits/rounds/{round_id}/request")
        weekday = "月火水木金土日"[day(9, 10).weekday()]
        assert f'name="slot" value="{slot}"' in form.text and f"（{weekday}）</legend>" in form.text
        assert "10:00〜12:00（六浦）" in form.text
        assert "どの枠でもよい" in form.text
        nothing = await post(client, f"/visits/rounds/{round_id}/request")
        assert nothing.status_code == 422 and "どの枠でもよい" in nothing.text
        stale = await post(client, f"/visits/rounds/{round_id}/request", slot=str(slot + 99))
        assert stale.status_code == 422
        saved = await post(client, f"/visits/rounds/{round_id}/request", slot=str(slot), any_time="1")
        assert saved.status_code == 303
        row = (await requests.requests_of_student(student))[0]
        assert row["any_time"] and requests.windows_of(row) == [(day(9, 10), day(9, 12))]
        again = await client.get(f"/visits/rounds/{round_id}/request")
        assert re.search(rf'value="{slot}" checked', again.text) and re.search(r'name="any_time" value="1" checked',
                                                                               again.text)
        listing = await client.get("/visits")
        assert "どの枠でもよい" in listing.text and "申込を取り下げる" in listing.text


async def test_a_visit_has_its_own_page_in_visit_wording(db, person):
    visit = await offered_visit()
    await everyone_accepts(visit)
    event_id = (await Event.select(Event.id).first())["id"]
    async with person(await email_of(visit["young"])) as young, person(await email_of(visit["host"])) as host, \
            person(await email_of(visit["coordinator"])) as coord, person(await email_of(visit["adults"][0])) as adult:
        moved = await young.get(f"/events/{event_id}", follow_redirects=False)
        assert moved.status_code == 303 and moved.headers["location"] == f"/visits/events/{event_id}"
        page = await young.get(f"/visits/events/{event_id}")
        assert page.status_code == 200 and "訪問が確定しました" in page.text and "横浜市金沢区能見台" in page.text
        for seminar_word in ("キャンセル待ち", "先着順", "申し込みを取り消す"):
            assert seminar_word not in page.text
        family_page = await host.get(f"/visits/events/{event_id}")
        assert "佐藤 結衣" in family_page.text and "山田 花子" in family_page.text
        assert "この日の受け入れを辞退する" in family_page.text
        # the seminar-style cancel of the place leads to the visit's own page (its own decline step)
        registration = (await young.get("/my/registrations")).text
        reg_id = re.search(r'action="/registrations/(\d+)/cancel"', registration).group(1)
        cancel = await post(young, f"/registrations/{reg_id}/cancel")
        assert cancel.status_code == 303 and cancel.headers["location"] == f"/visits/events/{event_id}"
        assert (await coord.get(f"/visits/events/{event_id}", follow_redirects=False)).headers["location"] == \
            f"/visits/admin/rounds/{visit['round']}"
        stranger = await make_person("student", "stranger@example.jp")
        assert stranger
    async with person("stranger@example.jp") as other:
        assert (await other.get(f"/visits/events/{event_id}")).status_code == 404
    assert adult


async def test_the_round_page_speaks_plainly_and_hides_the_technical_details(db, person):
    visit = await offered_visit()
    async with person(await email_of(visit["coordinator"])) as coord:
        page = (await coord.get(f"/visits/admin/rounds/{visit['round']}")).text
        assert "提案 " in page and "（確定済み）" in page and "（）" not in page
        details = page.split("<details", 1)[1]
        assert "乱数の種" in details and "計算にかかった時間" in details
        assert "シード" not in page and "理論上" not in page and "sha256" not in page
        assert f'action="/visits/admin/matches/{visit["matches"][visit["young"]]}/cancel"' in page


def test_every_string_of_the_visit_pages_has_an_english_entry():
    from babel.messages.pofile import read_po

    from lifedesign.areas.visits import pages
    from lifedesign.i18n import LOCALE_DIR

    known: set[str] = set()
    for path in (LOCALE_DIR / "en" / "LC_MESSAGES").glob("*.po"):
        with path.open("rb") as handle:
            known |= {m.id for m in read_po(handle) if m.id}
    root = Path(__file__).resolve().parents[2]
    texts = [p.read_text(encoding="utf-8") for p in (root / "templates" / "pages" / "visits").glob("*.html")]
    source = (root / "lifedesign" / "areas" / "visits" / "pages.py").read_text(encoding="utf-8")
    texts.append(re.sub(r'"\s*\n\s*"', "", source))  # implicit concatenation inside _( … )
    used = {m for text in texts for m in re.findall(r'_\(\s*"((?:[^"\\]|\\.)*)"', text)}
    used |= {m for text in texts for m in re.findall(r"_\(\s*'((?:[^'\\]|\\.)*)'", text)}
    for table in (pages.NOTICES, pages.STATUS_LABELS, pages.PROPOSAL_LABELS, pages.RESPONSE_LABELS,
                  pages.FAMILY_RESPONSE_LABELS, *pages.STATE_LABELS.values()):
        used |= set(table.values())
    assert sorted(used - known) == []
    # every state a side can be in has words for that side
    from events.visits.states import visit_state

    for side, labels in pages.STATE_LABELS.items():
        for status in ("confirmed_by_coordinator", "accepted", "declined", "cancelled", "on_hold"):
            for answers in (("pending", "pending"), ("accepted", "pending"), ("declined", "accepted"),
                            ("accepted", "declined"), ("accepted", "accepted")):
                for place in (False, True):
                    code = visit_state({"status": status, "student_response": answers[0],
                                        "family_response": answers[1], "place_confirmed": place}, side)
                    assert code in labels, (side, code)
