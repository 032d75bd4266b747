"""Home-visit journeys through HTTP: a confirmation step (no JavaScript) before every irreversible visit action,
saying what happens and who gets mail, with the reason required where people are told it; the guardian's
status page; the request form with the slots families offered; a visit's own page (its calendar link) in visit
wording; and an English entry for every string the visit pages show."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from litestar.testing import AsyncTestClient

from events import clock
from events.core.tables import AuditEntry, Person
from events.seminars.tables import Event
from events.timefmt import TOKYO
from events.visits import households, proposals, requests, rounds
from events.visits.tables import VisitMatch, VisitRequest, VisitSlot
from tests.conftest import as_staff, csrf_from, links_in, login, make_person, outbox_mails
from tests.service.test_visits_journeys import GUARDIAN, everyone_accepts, offered_visit, young_student
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
        assert "(in charge: 区 担当)" in english.text and "（担当" not in english.text
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
        # a draft proposal and a confirmed one both say their state (it was 「提案 #1（）」)
        await proposals.run_matching(visit["round"], as_staff(visit["coordinator"]))
        draft = (await coord.get(f"/visits/admin/rounds/{visit['round']}")).text
        heading = re.search(r'<h2 id="proposal">(.*?)</h2>', draft).group(1)
        assert re.fullmatch(r"提案 \d+：確定前（確認してください）", heading), heading
        await proposals.confirm_proposal(await proposals.latest_proposal_id(visit["round"]),
                                         as_staff(visit["coordinator"]))
        page = (await coord.get(f"/visits/admin/rounds/{visit['round']}")).text
        heading = re.search(r'<h2 id="proposal">(.*?)</h2>', page).group(1)
        assert re.fullmatch(r"提案 \d+：確定済み", heading), heading
        assert "（）" not in page and "#" not in heading
        details = page.split("<details", 1)[1]
        assert "乱数の種" in details and "計算にかかった時間" in details
        assert "シード" not in page and "理論上" not in page and "sha256" not in page
        assert f'action="/visits/admin/matches/{visit["matches"][visit["young"]]}/cancel"' in page


async def test_the_interview_date_defaults_to_today_in_tokyo(db, person):
    """Just after midnight in Tokyo (still the day before in UTC) the 面談日 field offers Tokyo's date."""
    coordinator = await make_person("coordinator", "coord@kanazawa.example.jp")
    _, household = await family("六浦", vetted=False)
    tokyo_morning = datetime(2026, 12, 3, 0, 30, tzinfo=TOKYO)  # 2 December, 15:30 in UTC
    assert tokyo_morning.astimezone(UTC).date() != tokyo_morning.date()  # the two dates differ: the check bites
    with clock.travel(tokyo_morning):
        async with person("coord@kanazawa.example.jp") as coord:
            page = (await coord.get(f"/visits/admin/households/{household}")).text
            assert re.search(r'id="interviewed_on" name="interviewed_on" required value="2026-12-03"', page)
            # recording the offered date works, and the household page reads it back in Tokyo's words
            saved = await post(coord, f"/visits/admin/households/{household}/vetting", interviewed_on="2026-12-03",
                               valid_until="2027-12-02")
            assert saved.status_code == 303
            assert (await households.get_household(household))["vetted_on"] == date(2026, 12, 3)
            assert "2026年12月3日（木）" in (await coord.get(saved.headers["location"])).text
    assert coordinator


async def test_the_visit_consent_page_is_as_complete_as_the_seminar_one(db, person):
    """The one consent page for both subjects: every label, heading and answer the seminar's page has, the visit's
    page has too (its own facts in place of 日時 / 会場), and it links to the visit-status page."""
    from events import consent
    from events.seminars import registration
    from tests.service.seminars_helpers import minor, new_event

    event_id = await new_event(capacity=2, title="高校生のためのライフデザイン講座")
    await registration.register(event_id, await minor("田中 陽", guardian="seminar-parent@example.jp"))
    coordinator = await make_person("coordinator", name="区 担当")
    round_id = await open_round(coordinator)
    young = await young_student()
    await requests.submit_request(young, round_id, requests.RequestInput(windows=[], any_time=True))

    def path_of(mail) -> str:
        return urlsplit([u for u in links_in(mail) if "/consent/" in u][0]).path

    def parts(html: str) -> dict[str, set[str]]:
        main = html.split('<main id="main">', 1)[1].split("</main>", 1)[0]
        return {"dt": set(re.findall(r"<dt>(.*?)</dt>", main)), "h": set(re.findall(r"<h[12][^>]*>(.*?)</h[12]>", main)),
                "button": set(re.findall(r"<button[^>]*>(.*?)</button>", main)),
                "li": set(re.findall(r"<li>(.*?)</li>", main))}

    seminar_path = path_of((await outbox_mails("consent_request", "seminar-parent@example.jp"))[0])
    visit_path = path_of((await outbox_mails("consent_request", GUARDIAN))[0])
    async with person() as guardian:
        seminar, visit = (await guardian.get(seminar_path)).text, (await guardian.get(visit_path)).text
        s, v = parts(seminar), parts(visit)
        assert s["h"] <= v["h"] and s["button"] <= v["button"]
        assert s["dt"] - {"イベント", "日時", "会場"} <= v["dt"]
        assert {"内容", "場所", "訪問できる日時（ご本人の希望）", "一緒に訪問する学生", "受け入れ家庭に伝わる情報",
                "お問い合わせ", "回答の期限", "参加する方"} <= v["dt"]
        assert len(v["li"]) > len(s["li"])  # the safeguarding promises and what the guardian hears, on top
        assert "18歳未満の方が一人で訪問することはありません" in visit and "同意文の版" in visit
        assert f'href="/visits/guardian/{visit_path.rsplit("/", 1)[1]}"' in visit
        # after consenting: the same revoke disclosure the seminar page has, and the confirmation mail's link
        answered = await post(guardian, visit_path, decision="give")
        assert answered.status_code == 200 and "同意を取り消したい場合" in answered.text
        outcome = (await outbox_mails("consent_outcome", GUARDIAN))[-1]
        status = [u for u in links_in(outcome) if "/visits/guardian/" in u]
        assert status and (await guardian.get(urlsplit(status[0]).path)).status_code == 200
        assert (await consent.state_of(consent.Subject("visit_request", (await requests.requests_of_student(
            young))[0]["id"]))) == "given"


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
