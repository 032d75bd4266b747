"""The home-visit journeys of issue 11 in Debian's Chromium: the guardian of a minor, a student asking for a visit,
the host family (and the coordinator's steps on the round they answer in). Every page a journey visits goes through
the shared `pagecheck.check_page`: axe-core (from npm, WCAG 2.1 A/AA tags) finds no violation at 1280 px and at
390 px, and nothing scrolls sideways at 390 px or 320 px. Each page is reached the way a person reaches it: a link
in a mail, a menu, a button; the journeys click through on a phone-sized screen (check_page leaves it at 390 px)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from events import consent
from events.core.tables import Person
from events.seminars.tables import Event
from events.visits import confirmations, households, proposals, requests, rounds
from tests.browser.pagecheck import check_page, sideways, wcag_violations
from tests.browser.test_kernel_pages_a11y import AXE, log_in
from tests.conftest import as_staff, links_in, mail_text, make_person, outbox_mails
from tests.service.test_visits_journeys import GUARDIAN, young_student
from tests.service.test_visits_services import day, family, open_round

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _axe_is_installed():
    if not AXE.exists():
        pytest.fail("axe-core is missing: run `npm ci --prefix tests/interop` (README's test command)")


async def phone(browser):
    context = await browser.new_context(viewport={"width": 390, "height": 800}, locale="ja-JP")
    return context, await context.new_page()


async def checked(page, label: str, seen: list[str]) -> None:
    await page.wait_for_load_state()
    await check_page(page, label)
    seen.append(label)


def link_path(mail, part: str) -> str:
    return urlsplit([u for u in links_in(mail) if part in u][0]).path


async def test_the_guardian_follows_a_minors_home_visit(db, live_server, browser):
    coordinator = await make_person("coordinator", name="区 担当")
    round_id = await open_round(coordinator)
    host, _ = await family("能見台")
    await rounds.offer_slot(host, round_id, starts_at=day(10, 10), ends_at=day(10, 13), capacity=2)
    young = await young_student()
    adult = await make_person("student", "hanako@univ.example.jp", name="山田 花子")
    for student in (young, adult):
        await requests.submit_request(student, round_id, requests.RequestInput(windows=[], any_time=True))

    context, page = await phone(browser)
    seen: list[str] = []
    # 1. the consent request mail → the consent page (what, where, who goes along, whom to ask) → consent by keyboard
    await page.goto(live_server + link_path((await outbox_mails("consent_request", GUARDIAN))[0], "/consent/"))
    text = await page.locator("main").inner_text()
    assert "一緒に訪問する学生" in text and "お預かりする情報について" in text and "回答の期限" in text
    await checked(page, "visit consent page", seen)
    await page.get_by_role("button", name="同意する", exact=True).focus()
    await page.keyboard.press("Enter")
    await page.get_by_role("status").first.wait_for()
    await checked(page, "consent given", seen)
    # … and the confirmation of the consent links to the visit-status page
    outcome = (await outbox_mails("consent_outcome", GUARDIAN))[-1]
    assert "/visits/guardian/" in link_path(outcome, "/visits/guardian/")
    await page.get_by_role("link", name="訪問の予定（日時・地区・一緒に訪問する学生・連絡先）を見る").click()
    await page.get_by_role("heading", name="佐藤 結衣さんの家庭訪問").wait_for()
    assert "組み合わせはまだ決まっていません" in await page.locator("main").inner_text()
    await checked(page, "status page, not matched yet", seen)

    # 2. the coordinator confirms a matching: the guardian's mail links to the page, which names the adult
    proposal = await proposals.run_matching(round_id, as_staff(coordinator))
    await proposals.confirm_proposal(proposal, as_staff(coordinator))
    matched = (await outbox_mails("visit_guardian", GUARDIAN))[-1]
    await page.goto(live_server + link_path(matched, "/visits/guardian/"))
    text = await page.locator("main").inner_text()
    assert "山田 花子" in text and "能見台" in text and "訪問が確定した後に表示されます" in text
    assert "横浜市金沢区能見台1-2-" not in text
    await checked(page, "status page, matched", seen)

    # 3. both sides confirm: the page shows the address (released), and whom to contact
    for student in (young, adult):
        match = (await confirmations.matches_of_student(student))[0]
        await confirmations.respond(match["id"], student, side="student", accept=True)
    await confirmations.respond_slot(match["slot"], host, accept=True)
    await page.goto(live_server + link_path((await outbox_mails("visit_guardian", GUARDIAN))[-1], "/visits/guardian/"))
    text = await page.locator("main").inner_text()
    assert "訪問が確定しました" in text and "横浜市金沢区能見台1-2-" in text and "区 担当" in text
    await checked(page, "status page, confirmed", seen)
    await page.get_by_role("button", name="English").click()
    await page.get_by_role("heading", name="Safeguarding rules").wait_for()
    await checked(page, "status page in English", seen)
    await page.get_by_role("button", name="日本語").click()
    await page.get_by_role("heading", name="安全のための決まり").wait_for()

    # 4. the coordinator calls it off: the guardian's mail and page say so, with the reason
    young_match = (await confirmations.matches_of_student(young))[0]["id"]
    await confirmations.cancel_visit(young_match, as_staff(coordinator), reason="台風の接近のため")
    cancelled = (await outbox_mails("visit_guardian", GUARDIAN))[-1]
    await page.goto(live_server + link_path(cancelled, "/visits/guardian/"))
    text = await page.locator("main").inner_text()
    assert "区の担当者が取りやめました" in text and "台風の接近のため" in mail_text(cancelled)
    await checked(page, "status page, cancelled", seen)

    # negative controls: the same helper, on the same page, catches an image without text and a too-wide block
    await page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<img src=\"/x.png\">')")
    assert any(v.startswith("image-alt") for v in await wcag_violations(page))
    with pytest.raises(AssertionError, match="image-alt"):
        await check_page(page, "with an image without text")
    await page.evaluate("document.querySelector('main img').remove()")
    await page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', "
                        "'<div style=\"width:400px\">wide</div>')")
    await page.set_viewport_size({"width": 320, "height": 700})
    assert await sideways(page) > 0
    with pytest.raises(AssertionError):
        await check_page(page, "with a too-wide block")
    await context.close()
    assert len(seen) == 7


async def test_a_student_asks_for_an_offered_slot_and_answers_the_offer(db, live_server, browser):
    coordinator = await make_person("coordinator", name="区 担当")
    round_id = await open_round(coordinator)
    host, _ = await family("六浦")
    await rounds.offer_slot(host, round_id, starts_at=day(10, 10), ends_at=day(10, 13), capacity=2)
    await make_person("student", "ren@univ.example.jp", name="高橋 蓮")
    context, page = await phone(browser)
    seen: list[str] = []
    await log_in(page, live_server, "ren@univ.example.jp")
    await page.goto(f"{live_server}/visits")
    await checked(page, "visits home", seen)
    await page.get_by_role("link", name="申し込む・内容を変更する").click()
    await page.get_by_role("heading", name="家庭訪問の申込：2026年 夏の家庭訪問").wait_for()
    # the slots families offered, by day, and "any slot" still possible
    assert await page.get_by_label("どの枠でもよい（いつでも行けます）").count() == 1
    await checked(page, "request form", seen)
    await page.get_by_role("button", name="申し込む").click()  # nothing chosen: one clear message, nothing lost
    await page.get_by_role("alert").wait_for()
    await checked(page, "request form with its error", seen)
    await page.get_by_label("10:00〜13:00（六浦）").check()
    await page.get_by_role("button", name="申し込む").click()
    await page.get_by_role("status").wait_for()
    await checked(page, "request saved", seen)
    proposal = await proposals.run_matching(round_id, as_staff(coordinator))
    await proposals.confirm_proposal(proposal, as_staff(coordinator))
    await page.goto(live_server + link_path((await outbox_mails("visit_offer", "ren@univ.example.jp"))[0],
                                            "/visits/my"))
    assert "あなたの回答をお待ちしています" in await page.locator("main").inner_text()
    await checked(page, "my visits, offered", seen)
    await page.get_by_role("button", name="参加する").click()
    await page.get_by_role("heading", name="この訪問に参加しますか").wait_for()
    await checked(page, "accept step", seen)
    await page.get_by_role("button", name="参加する").click()
    await page.get_by_role("status").wait_for()
    text = await page.locator("main").inner_text()
    # true to both sides: the student said yes, the family has not answered
    assert "ご家庭の回答を待っています" in text and "訪問が確定しました" not in text
    await checked(page, "my visits, waiting for the family", seen)
    await page.get_by_role("button", name="辞退する").click()
    await page.get_by_role("heading", name="この訪問を辞退しますか").wait_for()
    await checked(page, "decline step", seen)
    await context.close()
    assert len(seen) == 8


async def test_the_host_family_offers_a_slot_and_answers_once_for_it(db, live_server, browser):
    coordinator = await make_person("coordinator", "coord@kanazawa.example.jp", name="区 担当")
    round_id = await open_round(coordinator)
    host = await make_person("host_family", "yamada@example.jp", name="山田 真理子")
    context, page = await phone(browser)
    seen: list[str] = []
    await log_in(page, live_server, "yamada@example.jp")

    # 1. the household profile and the address, from the menu
    if await page.get_by_role("button", name="メニュー").count():
        await page.get_by_role("button", name="メニュー").click()
    await page.get_by_role("link", name="家庭のプロフィール").first.click()
    await checked(page, "household profile", seen)
    await page.get_by_label("表示名（例：山田家）").fill("山田家")
    await page.get_by_label("お住まいの地区").select_option("能見台")
    await page.get_by_label("乳児がいる").check()
    await page.get_by_role("button", name="保存する").click()
    await page.get_by_role("status").wait_for()
    await page.get_by_label("住所", exact=True).fill("横浜市金沢区能見台通9-9-9")
    await page.get_by_role("button", name="住所を保存する").click()
    await page.get_by_role("status").wait_for()
    await checked(page, "household saved", seen)

    # 2. a slot for the round
    await page.get_by_role("link", name="訪問の受け入れ枠へ").click()
    await page.get_by_label("日付").fill(day(10, 10).date().isoformat())
    await page.get_by_role("button", name="枠を追加する").click()
    await page.get_by_text("受け入れ枠を追加しました。").wait_for()
    await checked(page, "slots", seen)

    # the ward vets the household; a minor (consented) and an adult ask for that slot; the matching is offered
    household = (await households.household_of(host))["id"]
    await households.record_vetting(as_staff(coordinator), household, interviewed_on=day(0, 10).date(),
                                    valid_until=day(300, 10).date())
    young = await young_student()
    slot = (await rounds.slots_to_choose(round_id))[0]
    await requests.submit_request(young, round_id, requests.RequestInput(windows=[(slot["starts_at"],
                                                                                   slot["ends_at"])]))
    token = link_path((await outbox_mails("consent_request", GUARDIAN))[0], "/consent/").rsplit("/", 1)[1]
    await consent.decide(token, "give")
    adult = await make_person("student", "hanako@univ.example.jp", name="山田 花子")
    await requests.submit_request(adult, round_id, requests.RequestInput(windows=[], any_time=True))
    proposal = await proposals.run_matching(round_id, as_staff(coordinator))
    await proposals.confirm_proposal(proposal, as_staff(coordinator))

    # 3. one offer mail → 訪問予定: one answer for the slot, through its confirmation step
    offers = await outbox_mails("visit_offer", "yamada@example.jp")
    assert len(offers) == 1
    await page.goto(live_server + link_path(offers[0], "/visits/my"))
    text = await page.locator("main").inner_text()
    assert "佐藤 結衣" in text and "山田 花子" in text and "ご家庭の回答をお待ちしています" in text
    await checked(page, "family's visits, offered", seen)
    await page.get_by_role("button", name="この日の受け入れを確定する").click()
    await page.get_by_role("heading", name="この日の受け入れを確定しますか").wait_for()
    await checked(page, "accept-the-day step", seen)
    await page.get_by_role("button", name="受け入れを確定する").click()
    await page.get_by_role("status").wait_for()
    assert "学生の回答を待っています" in await page.locator("main").inner_text()
    assert await Event.count() == 0  # the students have not answered yet
    for student in (young, adult):
        match = (await confirmations.matches_of_student(student))[0]
        await confirmations.respond(match["id"], student, side="student", accept=True)

    # 4. one confirmation mail for the slot → the visit's own page (its calendar link), in visit wording
    confirmed = await outbox_mails("visit_confirmed", "yamada@example.jp")
    assert len(confirmed) == 1
    await page.goto(live_server + link_path(confirmed[0], "/visits/events/"))
    text = await page.locator("main").inner_text()
    assert "訪問が確定しました" in text and "キャンセル待ち" not in text and "先着順" not in text
    await checked(page, "the visit's own page", seen)

    # 5. declining the date after all: the step asks for the reason and says who is told
    await page.get_by_role("button", name="この日の受け入れを辞退する").click()
    await page.get_by_role("heading", name="この日の受け入れを辞退しますか").wait_for()
    await checked(page, "decline-the-day step", seen)
    await page.get_by_role("link", name="やめて戻る").click()
    await page.wait_for_load_state()
    await context.close()

    # the coordinator's round page, the household's page (面談) and the cancellation step, on a phone too
    context, page = await phone(browser)
    await log_in(page, live_server, "coord@kanazawa.example.jp")
    await page.goto(f"{live_server}/visits/admin/rounds/{round_id}")
    await checked(page, "round page", seen)
    await page.goto(f"{live_server}/visits/admin/households/{household}")
    await checked(page, "household page", seen)
    await page.goto(f"{live_server}/visits/admin/rounds/{round_id}")
    names = {r["id"]: r["name"] for r in await Person.select(Person.id, Person.name)}
    await page.get_by_role("button", name=f"訪問を取りやめる（{names[adult]}）").click()
    await page.get_by_role("heading", name="この訪問を取りやめますか").wait_for()
    await checked(page, "cancel step", seen)
    await context.close()
    assert len(seen) == 10
