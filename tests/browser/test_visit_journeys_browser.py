"""The guardian's and the host family's home-visit journeys in Debian's Chromium, at 390 px (a phone) and 1280 px:
axe-core (from npm, WCAG 2.1 A/AA tags, every impact) finds no violation on any page visited, and no page scrolls
sideways at 320 px. Each page is reached the way a person reaches it: a link in a mail, a menu, a button."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from events.auth import request_login
from events.core.tables import Person
from events.seminars.tables import Event
from events.visits import confirmations, households, proposals, requests, rounds
from tests.conftest import as_staff, links_in, make_person, outbox_mails
from tests.service.test_visits_journeys import GUARDIAN, young_student
from tests.service.test_visits_services import day, family, open_round

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[1] / "interop" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
WIDTHS = [390, 1280]


async def axe_violations(page) -> list[str]:
    # evaluated through the DevTools protocol: the page's own Content-Security-Policy stays in force
    await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    return list(await page.evaluate("""async (tags) => {
        const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
        return result.violations.map(v => v.id + " (" + v.impact + "): "
            + v.nodes.map(n => n.target.join(" ")).slice(0, 3).join(", "));
    }""", WCAG_21_AA))


async def checked(page, width: int, seen: list[str]) -> None:
    """The page as it is now: no axe violation at this width, and no sideways scroll at 320 px."""
    await page.wait_for_load_state()
    found = await axe_violations(page)
    assert found == [], (urlsplit(page.url).path, width, found)
    await page.set_viewport_size({"width": 320, "height": 740})
    # clientWidth, not innerWidth: a mobile browser zooms out to fit a too-wide page, innerWidth grows with it
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, (urlsplit(page.url).path, "scrolls sideways at 320 px by", overflow)
    await page.set_viewport_size({"width": width, "height": 900})
    seen.append(urlsplit(page.url).path)
    import os
    if os.environ.get("SHOTS"):
        await page.screenshot(path=f"/tmp/shots/{width}-{len(seen):02d}-{urlsplit(page.url).path.replace('/', '_')[:40]}.png", full_page=True)


async def context_for(browser, width: int):
    phone = width < 600
    return await browser.new_context(viewport={"width": width, "height": 900}, is_mobile=phone, has_touch=phone,
                                     locale="ja-JP")


async def log_in(page, base: str, email: str) -> None:
    before = len(await outbox_mails("login", email))
    await request_login(email, client="browser")
    mail = (await outbox_mails("login", email))[before]
    await page.goto(base + urlsplit([u for u in links_in(mail) if "/login/" in u][0]).path)
    await page.get_by_role("button", name="ログインする").click()
    await page.wait_for_load_state()


def link_path(mail, part: str) -> str:
    return urlsplit([u for u in links_in(mail) if part in u][0]).path


@pytest.fixture(autouse=True)
def _axe_is_installed():
    if not AXE.exists():
        pytest.fail("axe-core is missing: run `npm ci --prefix tests/interop` (README's test command)")


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_guardian_journey(db, live_server, browser, width):
    coordinator = await make_person("coordinator", name="区 担当")
    round_id = await open_round(coordinator)
    host, _ = await family("能見台")
    await rounds.offer_slot(host, round_id, starts_at=day(10, 10), ends_at=day(10, 13), capacity=2)
    young = await young_student()
    adult = await make_person("student", "hanako@univ.example.jp", name="山田 花子")
    for student in (young, adult):
        await requests.submit_request(student, round_id, requests.RequestInput(windows=[], any_time=True))

    context = await context_for(browser, width)
    page = await context.new_page()
    seen: list[str] = []
    # 1. the consent request mail → the consent page → consent (keyboard) → the visit-status page
    await page.goto(live_server + link_path((await outbox_mails("consent_request", GUARDIAN))[0], "/consent/"))
    await checked(page, width, seen)
    await page.get_by_role("button", name="同意する", exact=True).focus()
    await page.keyboard.press("Enter")
    await page.get_by_role("status").first.wait_for()
    await checked(page, width, seen)
    await page.get_by_role("link", name="訪問の予定（日時・地区・一緒に訪問する学生・連絡先）を見る").click()
    await page.get_by_role("heading", name="佐藤 結衣さんの家庭訪問").wait_for()
    assert "組み合わせはまだ決まっていません" in await page.locator("main").inner_text()
    await checked(page, width, seen)

    # 2. the coordinator confirms a matching: the guardian's mail links to the page, which names the adult
    proposal = await proposals.run_matching(round_id, as_staff(coordinator))
    await proposals.confirm_proposal(proposal, as_staff(coordinator))
    matched = (await outbox_mails("visit_guardian", GUARDIAN))[-1]
    await page.goto(live_server + link_path(matched, "/visits/guardian/"))
    text = await page.locator("main").inner_text()
    assert "山田 花子" in text and "能見台" in text and "訪問が確定した後に表示されます" in text
    assert "横浜市金沢区能見台1-2-" not in text
    await checked(page, width, seen)

    # 3. both sides confirm: the page shows the address (released), the contact to call
    for student in (young, adult):
        match = (await confirmations.matches_of_student(student))[0]
        await confirmations.respond(match["id"], student, side="student", accept=True)
    await confirmations.respond_slot(match["slot"], host, accept=True)
    await page.goto(live_server + link_path((await outbox_mails("visit_guardian", GUARDIAN))[-1], "/visits/guardian/"))
    text = await page.locator("main").inner_text()
    assert "訪問が確定しました" in text and "横浜市金沢区能見台1-2-" in text and "区 担当" in text
    await checked(page, width, seen)
    # in English too
    await page.get_by_role("button", name="English").click()
    await page.get_by_role("heading", name="Safeguarding rules").wait_for()
    await checked(page, width, seen)
    # negative controls: the same checks on the same page catch an image without text and a too-wide block
    await page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<img src=\"/x.png\">')")
    assert any(v.startswith("image-alt") for v in await axe_violations(page))
    await page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', "
                        "'<div style=\"width:400px\">wide</div>')")
    with pytest.raises(AssertionError, match="image-alt"):
        await checked(page, width, [])
    await page.evaluate("document.querySelector('main img').remove()")
    with pytest.raises(AssertionError, match="scrolls sideways"):
        await checked(page, width, [])
    await context.close()
    assert len(seen) == 6


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_student_journey_picks_an_offered_slot(db, live_server, browser, width):
    coordinator = await make_person("coordinator", name="区 担当")
    round_id = await open_round(coordinator)
    host, _ = await family("六浦")
    await rounds.offer_slot(host, round_id, starts_at=day(10, 10), ends_at=day(10, 13), capacity=2)
    await make_person("student", "ren@univ.example.jp", name="高橋 蓮")
    context = await context_for(browser, width)
    page = await context.new_page()
    seen: list[str] = []
    await log_in(page, live_server, "ren@univ.example.jp")
    await page.goto(f"{live_server}/visits")
    await checked(page, width, seen)
    await page.get_by_role("link", name="申し込む・内容を変更する").click()
    await page.get_by_role("heading", name="家庭訪問の申込：2026年 夏の家庭訪問").wait_for()
    await checked(page, width, seen)
    await page.get_by_label("10:00〜13:00（六浦）").check()
    await page.get_by_role("button", name="申し込む").click()
    await page.get_by_role("status").wait_for()
    await checked(page, width, seen)
    proposal = await proposals.run_matching(round_id, as_staff(coordinator))
    await proposals.confirm_proposal(proposal, as_staff(coordinator))
    await page.goto(f"{live_server}/visits/my")
    assert "あなたの回答をお待ちしています" in await page.locator("main").inner_text()
    await checked(page, width, seen)
    await page.get_by_role("button", name="参加する").click()
    await page.get_by_role("heading", name="この訪問に参加しますか").wait_for()
    await checked(page, width, seen)
    await page.get_by_role("button", name="参加する").click()
    await page.get_by_role("status").wait_for()
    text = await page.locator("main").inner_text()
    assert "ご家庭の回答を待っています" in text and "訪問が確定しました" not in text
    await checked(page, width, seen)
    await page.get_by_role("button", name="辞退する").click()
    await page.get_by_role("heading", name="この訪問を辞退しますか").wait_for()
    await checked(page, width, seen)
    await context.close()
    assert len(seen) == 7


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_host_family_journey(db, live_server, browser, width):
    coordinator = await make_person("coordinator", "coord@kanazawa.example.jp", name="区 担当")
    round_id = await open_round(coordinator)
    host = await make_person("host_family", "yamada@example.jp", name="山田 真理子")
    context = await context_for(browser, width)
    page = await context.new_page()
    seen: list[str] = []
    await log_in(page, live_server, "yamada@example.jp")

    # 1. the household profile and the address, from the menu
    if width < 600 and await page.get_by_role("button", name="メニュー").count():
        await page.get_by_role("button", name="メニュー").click()
    await page.get_by_role("link", name="家庭のプロフィール").first.click()
    await checked(page, width, seen)
    await page.get_by_label("表示名（例：山田家）").fill("山田家")
    await page.get_by_label("お住まいの地区").select_option("能見台")
    await page.get_by_label("乳児がいる").check()
    await page.get_by_role("button", name="保存する").click()
    await page.get_by_role("status").wait_for()
    await page.get_by_label("住所", exact=True).fill("横浜市金沢区能見台通9-9-9")
    await page.get_by_role("button", name="住所を保存する").click()
    await page.get_by_role("status").wait_for()
    await checked(page, width, seen)

    # 2. a slot for the round
    await page.get_by_role("link", name="訪問の受け入れ枠へ").click()
    await page.get_by_label("日付").fill(day(10, 10).date().isoformat())
    await page.get_by_role("button", name="枠を追加する").click()
    await page.get_by_text("受け入れ枠を追加しました。").wait_for()
    await checked(page, width, seen)

    # the ward vets the household; a minor (consented) and an adult ask for that slot; the matching is offered
    household = (await households.household_of(host))["id"]
    await households.record_vetting(as_staff(coordinator), household, interviewed_on=day(0, 10).date(),
                                    valid_until=day(300, 10).date())
    young = await young_student()
    slot = (await rounds.slots_to_choose(round_id))[0]
    await requests.submit_request(young, round_id, requests.RequestInput(windows=[(slot["starts_at"],
                                                                                   slot["ends_at"])]))
    from events import consent

    token = link_path((await outbox_mails("consent_request", GUARDIAN))[0], "/consent/").rsplit("/", 1)[1]
    await consent.decide(token, "give")
    adult = await make_person("student", "hanako@univ.example.jp", name="山田 花子")
    await requests.submit_request(adult, round_id, requests.RequestInput(windows=[], any_time=True))
    proposal = await proposals.run_matching(round_id, as_staff(coordinator))
    await proposals.confirm_proposal(proposal, as_staff(coordinator))

    # 3. the offer mail → 訪問予定: one answer for the slot, through its confirmation step
    offer = (await outbox_mails("visit_offer", "yamada@example.jp"))[0]
    await page.goto(live_server + link_path(offer, "/visits/my"))
    text = await page.locator("main").inner_text()
    assert "佐藤 結衣" in text and "山田 花子" in text and "ご家庭の回答をお待ちしています" in text
    await checked(page, width, seen)
    await page.get_by_role("button", name="この日の受け入れを確定する").click()
    await page.get_by_role("heading", name="この日の受け入れを確定しますか").wait_for()
    await checked(page, width, seen)
    await page.get_by_role("button", name="受け入れを確定する").click()
    await page.get_by_role("status").wait_for()
    assert await Event.count() == 0  # the students have not answered yet
    for student in (young, adult):
        match = (await confirmations.matches_of_student(student))[0]
        await confirmations.respond(match["id"], student, side="student", accept=True)

    # 4. one confirmation mail for the slot → the visit's own page (its calendar link)
    confirmed = await outbox_mails("visit_confirmed", "yamada@example.jp")
    assert len(confirmed) == 1
    await page.goto(live_server + link_path(confirmed[0], "/visits/events/"))
    text = await page.locator("main").inner_text()
    assert "訪問が確定しました" in text and "キャンセル待ち" not in text and "先着順" not in text
    await checked(page, width, seen)

    # 5. declining the date after all: the step asks for the reason and says who is told
    await page.get_by_role("button", name="この日の受け入れを辞退する").click()
    await page.get_by_role("heading", name="この日の受け入れを辞退しますか").wait_for()
    await checked(page, width, seen)
    await page.get_by_role("link", name="やめて戻る").click()
    await page.wait_for_load_state()
    await context.close()

    # the coordinator's round page and its cancellation step, on the same screen size
    coord = await context_for(browser, width)
    page = await coord.new_page()
    await log_in(page, live_server, "coord@kanazawa.example.jp")
    await page.goto(f"{live_server}/visits/admin/rounds/{round_id}")
    await checked(page, width, seen)
    names = {r["id"]: r["name"] for r in await Person.select(Person.id, Person.name)}
    await page.get_by_role("button", name=f"訪問を取りやめる（{names[adult]}）").click()
    await page.get_by_role("heading", name="この訪問を取りやめますか").wait_for()
    await checked(page, width, seen)
    await coord.close()
    assert len(seen) == 9
