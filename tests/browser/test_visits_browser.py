"""A guardian consents to a home visit on a phone, by keyboard; the student then sees only the district."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from events.db import utcnow
from events.people import StudentInfo
from events.seminars.tables import GuardianConsent
from events.visits import requests
from tests.conftest import links_in, make_person, outbox_mails
from tests.service.test_visits_services import day, open_round

pytestmark = pytest.mark.browser  # fixtures live_server and browser (Debian chromium) come from tests/conftest.py


async def test_guardian_consents_on_a_phone_by_keyboard(db, live_server, browser):
    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    born = utcnow().date().replace(year=utcnow().year - 16) - timedelta(days=1)
    student = await make_person("student", "yui@example.jp", name="佐藤 結衣", student=StudentInfo(
        "high_school", "金沢高校", 2, born, "mother@example.jp", "佐藤 恵"))
    await requests.submit_request(student, round_id, requests.RequestInput(
        windows=[(day(9, 9), day(9, 17))], districts=["能見台", "六浦"]))
    mail = (await outbox_mails("consent_request", "mother@example.jp"))[0]
    path = urlsplit([u for u in links_in(mail) if "/consent/" in u][0]).path

    context = await browser.new_context(viewport={"width": 375, "height": 740}, device_scale_factor=2,
                                        is_mobile=True, has_touch=True, locale="ja-JP")
    page = await context.new_page()
    await page.goto(f"{live_server}{path}")
    await page.get_by_role("heading", level=1).wait_for()
    assert await page.locator("html").get_attribute("lang") == "ja"
    text = await page.locator("main").inner_text()
    assert "佐藤 結衣" in text and "六浦、能見台" in text and "18歳未満の方が一人で訪問することはありません" in text
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # keyboard only: focus the consent button and press Enter
    consent = page.get_by_role("button", name="同意する", exact=True)
    await consent.focus()
    await page.keyboard.press("Enter")
    await page.get_by_role("status").first.wait_for()
    assert "同意いただき、ありがとうございました" in await page.get_by_role("status").first.inner_text()
    assert await page.get_by_role("button", name="同意する", exact=True).count() == 0
    await context.close()
    decision = await GuardianConsent.select(GuardianConsent.decision, GuardianConsent.decided_from).first()
    assert decision["decision"] == "given" and decision["decided_from"] == "127.0.0.1"
