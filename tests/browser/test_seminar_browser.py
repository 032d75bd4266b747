"""A student finds a seminar on a phone, answers its question and registers, in Debian's Chromium."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from events import people
from events.seminars import registration, schedule
from tests.conftest import as_staff, links_in, make_person, outbox_mails
from tests.http.test_seminar_pages import coordinator, soon

pytestmark = pytest.mark.browser


async def test_student_registers_on_a_phone(live_server, browser):
    start = soon(12)
    event_id = await schedule.create_event({
        "title": "仕事と子育てを考えるセミナー", "venue": "金沢公会堂", "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat(),
        "capacity": 10, "audience": "students",
        "questions": [{"kind": "single", "label": "参加の方法", "options": ["会場で参加", "オンラインで参加"],
                       "required": True}]}, actor=as_staff(await coordinator()))
    await schedule.publish_event(event_id, actor=as_staff(None))
    await make_person("student", "phone@example.jp", name="鈴木 葵")

    page = await browser.new_page(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    await page.goto(f"{live_server}/events")
    await page.get_by_role("link", name="仕事と子育てを考えるセミナー").click()
    await page.get_by_role("link", name="ログインして申し込む").click()
    await page.get_by_label("メールアドレス").fill("phone@example.jp")
    await page.get_by_role("button", name="ログイン用リンクを送る").click()
    await page.wait_for_selector("text=メールを確認してください")
    link = [u for u in links_in((await outbox_mails("login", "phone@example.jp"))[-1]) if "/login/" in u][0]
    await page.goto(live_server + urlsplit(link).path)
    await page.get_by_role("button", name="ログインする").click()
    await page.wait_for_url(f"{live_server}/events/{event_id}")

    await page.get_by_role("button", name="申し込む").click()  # the required choice is not made yet
    assert await page.locator("input[name^=q]:invalid").count() > 0  # the browser asks first, nothing is sent
    await page.get_by_label("会場で参加").check()
    await page.get_by_role("button", name="申し込む").click()
    await page.wait_for_selector("text=参加が確定しました")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "no sideways scrolling"
    mine = await registration.my_registration(event_id, (await people.find_by_email("phone@example.jp"))["id"])
    assert mine["status"] == "confirmed" and list(mine["answers"].values()) == ["会場で参加"]
    await page.goto(f"{live_server}/my/registrations")
    assert "仕事と子育てを考えるセミナー" in await page.content()
    await page.close()
