"""Staff and public pages on a phone, in Debian's Chromium: at 320 px and 390 px nothing scrolls sideways, the menu
folds into 「メニュー」, data tables read as one card per row; and axe-core (WCAG 2.1 A/AA rules) finds nothing on
them — at 390 px and at 1280 px."""

from __future__ import annotations

import pytest

from events.feedback import onsite, surveys
from events.seminars import registration
from tests.browser.pagecheck import sideways, wcag_violations
from tests.browser.test_kernel_pages_a11y import AXE, log_in
from tests.conftest import make_person
from tests.service.seminars_helpers import adult, minor, new_event, soon

pytestmark = pytest.mark.browser

async def test_coordinator_and_public_pages_fit_a_phone_and_pass_axe(db, live_server, browser):
    if not AXE.exists():
        pytest.fail("axe-core is missing: run `npm ci --prefix tests/interop` (README's test command)")
    coordinator = await make_person("coordinator", "narrow-coord@ward.example.jp", name="金沢 花子")
    event_id = await new_event(coordinator, capacity=2, title="高校生と大学生のためのライフデザイン講座",
                               venue="金沢公会堂 第1会議室", access="京急線 金沢文庫駅 東口から徒歩5分")
    lottery_id = await new_event(coordinator, capacity=1, allocation="lottery", title="抽選の講座",
                                 registration_closes_at=soon(5).isoformat())
    for person in (await adult("山田 花子"), await minor("佐藤 結衣"), await adult("鈴木 葵")):
        await registration.register(event_id, person)
    survey_id = await surveys.create_survey(audience="seminar_student", template="seminar_student",
                                            event_id=event_id, anonymous=True)
    pages = ["/events", f"/events/{event_id}", f"/events/{lottery_id}/lottery", "/coordinator/events",
             f"/coordinator/events/{event_id}", f"/coordinator/events/{event_id}/registrations",
             f"/coordinator/events/{event_id}/checkin", "/coordinator/calendar?view=month", "/coordinator/outbox",
             "/coordinator/feedback", f"/coordinator/feedback/{survey_id}",
             f"/coordinator/feedback/{survey_id}/onsite", onsite.onsite_path(survey_id)]
    for width in (320, 390, 1280):
        context = await browser.new_context(viewport={"width": width, "height": 800}, locale="ja-JP")
        page = await context.new_page()
        await log_in(page, live_server, "narrow-coord@ward.example.jp")
        for path in pages:
            await page.goto(live_server + path)
            await page.wait_for_load_state("load")
            assert await sideways(page) <= 0, (width, path)
            if width != 320:
                assert await wcag_violations(page) == [], (width, path)
            menu = page.locator("details.site-menu")
            if width <= 390:
                assert await menu.get_attribute("open") is None, path  # folded
            else:
                assert await page.get_by_role("link", name="イベント一覧").first.is_visible()
        if width == 390:  # the folded menu opens, and a registrations table reads as cards
            await page.goto(f"{live_server}/coordinator/events/{event_id}/registrations")
            await page.locator("details.site-menu > summary").click()
            assert await page.get_by_role("link", name="プロフィール").is_visible()
            cell = page.locator("table[data-cards] tbody tr").first.locator("td").nth(2)
            assert await cell.get_attribute("data-label") == "氏名"
            box = await page.locator("table[data-cards] tbody tr").first.bounding_box()
            assert box["width"] <= 390
        await context.close()


async def test_the_axe_check_bites(db, live_server, browser):
    """Negative control for the helper above: the same check finds a button with no name on the same page."""
    context = await browser.new_context(viewport={"width": 390, "height": 800}, locale="ja-JP")
    page = await context.new_page()
    await page.goto(live_server + "/events")
    assert await wcag_violations(page) == []
    await page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<button></button>')")
    assert any(v.startswith("button-name") for v in await wcag_violations(page))
    await page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', "
                        "'<div style=\"width:900px;height:10px\"></div>')")
    assert await sideways(page) > 0
    await context.close()
