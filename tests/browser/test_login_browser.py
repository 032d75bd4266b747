"""A person logs in with Chromium: types the address, follows the mailed link, presses the button."""

from urllib.parse import urlsplit

import pytest

from tests.conftest import links_in, make_person, outbox_mails

pytestmark = pytest.mark.browser


async def test_login_in_a_real_browser(live_server, browser):
    await make_person("student", "browser@example.jp", name="鈴木 葵")
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    await page.goto(f"{live_server}/login")
    assert await page.get_attribute("html", "lang") == "ja"
    await page.get_by_label("メールアドレス").fill("browser@example.jp")
    await page.get_by_role("button", name="ログイン用リンクを送る").click()
    await page.wait_for_selector("text=メールを確認してください")
    mails = await outbox_mails("login", "browser@example.jp")
    assert len(mails) == 1
    link = [u for u in links_in(mails[0]) if "/login/" in u][0]
    await page.goto(live_server + urlsplit(link).path)
    await page.get_by_role("button", name="ログインする").click()
    await page.wait_for_selector("text=ようこそ、鈴木 葵 さん")
    await page.goto(f"{live_server}/profile")
    assert "browser@example.jp" in await page.content()
    await page.close()
