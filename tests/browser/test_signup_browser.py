"""Sign-up in Chromium at 390 px with JavaScript off: the role first, then its form; every problem at once with the
first invalid field focused; axe finds nothing on the way; the footer carries the ward's contact."""

from __future__ import annotations

import pytest

from events import people
from tests.browser.pagecheck import check_page

pytestmark = pytest.mark.browser


async def test_a_student_signs_up_without_javascript(live_server, browser):
    context = await browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await page.goto(f"{live_server}/signup")
    assert "泥亀二丁目9番1号" in await page.locator("footer").inner_text()
    assert await page.locator("#email").count() == 0  # step 1 asks only how one takes part
    await page.get_by_label("高校生・大学生").check()
    await page.get_by_role("button", name="次へ").click()
    await page.wait_for_selector("#school_level")
    assert await page.locator("#facility").count() == 0
    await page.locator("#name").fill("佐藤 結衣")
    await page.locator("#kana").fill("佐藤 結衣")  # kanji: refused
    await page.locator("#email").fill("yui-browser@example.jp")
    await page.locator("#phone").fill("090-12")
    await page.get_by_role("button", name="登録する").click()
    await page.wait_for_selector("#error-summary")
    assert await page.evaluate("document.activeElement.id") == "kana"  # the first problem has the focus
    invalid = await page.eval_on_selector_all('[aria-invalid="true"]', "els => els.map(e => e.id)")
    assert invalid == ["kana", "phone", "school_level", "grade", "birth_date"]
    await page.close()
    await context.close()

    checked = await browser.new_page(viewport={"width": 390, "height": 844})  # axe needs JavaScript in the page
    await checked.goto(f"{live_server}/signup")
    await check_page(checked, "signup role step")
    await checked.get_by_label("高校生・大学生").check()
    await checked.get_by_role("button", name="次へ").click()
    await checked.wait_for_selector("#school_level")
    await checked.get_by_role("button", name="登録する").click()
    await checked.wait_for_selector("#error-summary")
    await check_page(checked, "signup with every problem shown")
    await checked.locator("#name").fill("佐藤 結衣")
    await checked.locator("#kana").fill("さとう ゆい")
    await checked.locator("#email").fill("yui-browser@example.jp")
    await checked.locator("#phone").fill("０９０１２３４５６７８")
    await checked.locator("#school_level").select_option("university")
    await checked.locator("#grade").fill("2")
    await checked.locator("#birth_date").fill("2004-05-01")
    await checked.get_by_role("button", name="登録する").click()
    await checked.wait_for_selector("text=登録を受け付けました")
    person = await people.find_by_email("yui-browser@example.jp")
    assert (person["kana"], person["phone"]) == ("さとう ゆい", "090-1234-5678")
    await checked.close()
