"""The pages the kernel added, in headless Chromium with axe-core (from npm, injected into the page): the one
guardian-consent page (to answer, and to withdraw a consent), the coordinator's round page with a visit on hold,
the student's visits page showing the hold, and a private event's invitations on the coordinator's event page.

No serious or critical axe violation on any of them; the consent page also works on a phone by keyboard.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from events.auth import request_login
from events.seminars import registration
from tests.conftest import links_in, outbox_mails
from tests.http.test_kernel_defects import _minor, confirmed_visit
from tests.service.seminars_helpers import new_event

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[1] / "interop" / "node_modules" / "axe-core" / "axe.min.js"


async def axe_violations(page) -> list[str]:
    # evaluated through the DevTools protocol: the page's own Content-Security-Policy stays in force
    await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    found = await page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ["violations"]});
        return result.violations.filter(v => ["serious", "critical"].includes(v.impact))
            .map(v => v.id + ": " + v.nodes.map(n => n.target.join(" ")).slice(0, 3).join(", "));
    }""")
    return list(found)


async def log_in(page, base: str, email: str) -> None:
    before = len(await outbox_mails("login", email))
    await request_login(email, client="browser")
    mail = (await outbox_mails("login", email))[before]
    await page.goto(base + urlsplit([u for u in links_in(mail) if "/login/" in u][0]).path)
    await page.get_by_role("button", name="ログインする").click()
    await page.wait_for_load_state()


def _consent_path(mail) -> str:
    return urlsplit([u for u in links_in(mail) if "/consent/" in u][0]).path


async def test_the_consent_page_answers_by_keyboard_without_axe_violations(db, live_server, browser):
    if not AXE.exists():
        pytest.fail("axe-core is missing: run `npm ci --prefix tests/interop` (README's test command)")
    event_id = await new_event(capacity=2, title="高校生のためのライフデザイン講座")
    await registration.register(event_id, await _minor("keyboard@example.jp"))
    path = _consent_path((await outbox_mails("consent_request", "keyboard@example.jp"))[0])
    context = await browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True,
                                        locale="ja-JP")
    page = await context.new_page()
    await page.goto(live_server + path)
    assert await axe_violations(page) == []
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await page.get_by_role("button", name="同意する", exact=True).focus()
    await page.keyboard.press("Enter")
    await page.get_by_role("status").first.wait_for()
    assert "同意いただき、ありがとうございました" in await page.get_by_role("status").first.inner_text()
    assert await axe_violations(page) == []  # the withdraw disclosure is there now
    await page.get_by_text("同意を取り消したい場合").click()
    assert await page.get_by_role("button", name="同意を取り消す").is_visible()
    # negative control: the same check on the same page with an image that has no text alternative
    await page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<img src=\"/x.png\">')")
    assert any(v.startswith("image-alt") for v in await axe_violations(page))
    await context.close()


async def test_held_visit_pages_and_invitations_have_no_axe_violations(db, live_server, browser):
    visit = await confirmed_visit()
    from events.seminars.tables import Registration
    from tests.conftest import as_person

    grown_place = visit["places"][visit["grown"]]
    assert (await Registration.select(Registration.status).where(Registration.id == grown_place).first())
    await registration.cancel_registration(grown_place, actor=as_person(visit["grown"]))  # the minor goes on hold

    from events.core.tables import Person

    emails = {r["id"]: r["email"] for r in await Person.select(Person.id, Person.email)}
    coordinator = await browser.new_context(locale="ja-JP")
    page = await coordinator.new_page()
    await log_in(page, live_server, emails[visit["coordinator"]])
    await page.goto(f"{live_server}/visits/admin/rounds/{visit['round']}")
    assert await page.get_by_role("heading", name="対応が必要な訪問").first.is_visible()
    assert await axe_violations(page) == []
    private = await new_event(visit["coordinator"], visibility="private", capacity=5, audience="anyone")
    await page.goto(f"{live_server}/coordinator/events/{private}")
    await page.get_by_label("招待する方（1行に1人：メールアドレス、お名前）").fill("guest@example.jp, 来賓 花子")
    await page.get_by_role("button", name="招待のメールを送る").click()
    await page.get_by_text("招待のメールをお送りしました。").wait_for()
    assert "guest@example.jp" in await page.content()
    assert await axe_violations(page) == []
    await coordinator.close()

    student = await browser.new_context(viewport={"width": 375, "height": 740}, locale="ja-JP")
    page = await student.new_page()
    await log_in(page, live_server, emails[visit["young"]])
    await page.goto(f"{live_server}/visits/my")
    assert "安全のため、この訪問はいったん保留になりました" in await page.locator("main").inner_text()
    assert await axe_violations(page) == []
    await student.close()
