"""The journeys of issue 11 in Debian's Chromium, each page checked by `pagecheck.check_page` (axe WCAG 2.1 A/AA at
1280 and 390 px, no sideways scroll at 320 and 390 px): an adult student, a minor with the guardian's consent,
a coordinator running an event, a facility staff member at an exchange, an admin. (Home visits: the host-family and
guardian journeys are in test_visit_journeys_browser.py.)"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from events.seminars import registration
from tests.browser.pagecheck import check_page
from tests.browser.test_kernel_pages_a11y import AXE, log_in
from tests.conftest import links_in, make_person, outbox_mails
from tests.service.seminars_helpers import adult, new_event, soon

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _axe_installed():
    if not AXE.exists():
        pytest.fail("axe-core is missing: run `npm ci --prefix tests/interop` (README's test command)")


async def test_an_adult_student_finds_registers_and_cancels(db, live_server, browser):
    event_id = await new_event(capacity=3, title="仕事と子育てを考えるセミナー", access="京急線 金沢文庫駅から徒歩5分")
    await new_event(capacity=5, title="ほかの講座", starts_at=soon(30))
    email = "journey-adult@univ.example.jp"
    await make_person("student", email, name="鈴木 葵")
    context = await browser.new_context(viewport={"width": 390, "height": 800}, locale="ja-JP")
    page = await context.new_page()
    await log_in(page, live_server, email)
    await check_page(page, "home")
    await page.goto(f"{live_server}/events")
    await check_page(page, "list")
    await page.get_by_role("link", name="仕事と子育てを考えるセミナー").click()
    await check_page(page, "event")
    await page.get_by_role("button", name="申し込む").click()
    await page.get_by_role("status").first.wait_for()
    assert "参加確定" in await page.locator("main").inner_text()
    await check_page(page, "registered")
    await page.goto(f"{live_server}/my/registrations")
    await check_page(page, "my registrations")
    await page.get_by_role("button", name="申し込みを取り消す").click()
    await page.get_by_role("heading", name="「仕事と子育てを考えるセミナー」のお申し込みを取り消しますか").wait_for()
    await check_page(page, "confirm cancel")
    await page.get_by_role("button", name="申し込みを取り消す").click()
    await page.get_by_text("お申し込みを取り消しました。").wait_for()
    assert (await registration.my_registration(event_id, (await _person(email))))["status"] == "cancelled"
    await context.close()


async def test_a_minor_registers_and_the_guardian_consents_on_a_phone(db, live_server, browser):
    from tests.service.seminars_helpers import email_of, minor

    event_id = await new_event(capacity=3, title="高校生のためのライフデザイン講座", audience="high_school")
    student = await minor("佐藤 結衣", guardian="journey-guardian@example.jp")
    context = await browser.new_context(viewport={"width": 390, "height": 800}, locale="ja-JP")
    page = await context.new_page()
    await log_in(page, live_server, await email_of(student))
    await page.goto(f"{live_server}/events/{event_id}")
    await page.get_by_role("button", name="申し込む").click()
    await page.get_by_role("status").first.wait_for()
    assert "保護者の同意待ち" in await page.locator("main").inner_text()
    await check_page(page, "minor pending consent")
    guardian = await browser.new_context(viewport={"width": 390, "height": 800}, locale="ja-JP")
    gpage = await guardian.new_page()
    mail = (await outbox_mails("consent_request", "journey-guardian@example.jp"))[-1]
    await gpage.goto(live_server + urlsplit([u for u in links_in(mail) if "/consent/" in u][0]).path)
    await check_page(gpage, "consent page")
    await gpage.get_by_role("button", name="同意する", exact=True).click()
    await gpage.get_by_role("status").first.wait_for()
    await check_page(gpage, "consent given")
    await guardian.close()
    await page.reload()
    assert "参加確定" in await page.locator("main").inner_text()
    await context.close()


async def test_a_coordinator_runs_an_event(db, live_server, browser):
    email = "journey-coord@ward.example.jp"
    await make_person("coordinator", email, name="金沢 花子")
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = await context.new_page()
    await log_in(page, live_server, email)
    await page.goto(f"{live_server}/coordinator/events/new")
    await check_page(page, "new event form")
    await page.get_by_label("タイトル （必須）").fill("働き方と家族のセミナー")
    start = soon(20).strftime("%Y-%m-%dT10:00")
    await page.get_by_label("開始日時 （必須・日本時間）").fill(start)
    await page.get_by_label("終了日時 （必須・日本時間）").fill(start[:11] + "12:00")
    await page.get_by_label("定員 （必須）").fill("2")
    await page.get_by_role("button", name="保存する").click()
    await page.get_by_role("button", name="公開する").click()
    await page.get_by_text("イベントを公開しました。").wait_for()
    await check_page(page, "event admin")
    event_id = int(urlsplit(page.url).path.rsplit("/", 1)[-1])
    for person in (await adult("山田 花子"), await adult("田中 一郎")):
        await registration.register(event_id, person)
    await page.goto(f"{live_server}/coordinator/events/{event_id}/registrations")
    await check_page(page, "registrations")
    await page.goto(f"{live_server}/coordinator/events/{event_id}")
    await page.get_by_label("件名 （必須）").fill("持ち物のご案内")
    await page.get_by_label("本文 （必須）").fill("筆記用具をお持ちください。")
    await page.get_by_role("button", name="内容を確認する").click()
    await check_page(page, "message confirm")
    await page.get_by_role("button", name="送信する").click()
    await page.get_by_text("お知らせを送りました").wait_for()
    assert len(await outbox_mails("seminar_message")) == 2
    await page.goto(f"{live_server}/coordinator/events/{event_id}/registrations/print")
    await check_page(page, "attendee list")
    await page.goto(f"{live_server}/coordinator/events/{event_id}/checkin")
    await check_page(page, "check-in")
    await context.close()


async def test_facility_staff_see_their_table_and_an_admin_manages_accounts(db, live_server, browser):
    from events.exchanges import sessions
    from tests.service.test_exchanges_planning import ACTOR, session_with

    session_id, staff = await session_with([2, 2, 2], rounds=2, table_size=3)
    await sessions.assign_tables(session_id, seed=1, actor=ACTOR)
    from events.core.tables import Person

    member = staff[next(iter(staff))][0]
    email = (await Person.select(Person.email).where(Person.id == member).first())["email"]
    context = await browser.new_context(viewport={"width": 390, "height": 800}, locale="ja-JP")
    page = await context.new_page()
    await log_in(page, live_server, email)
    await check_page(page, "staff home")
    await page.goto(f"{live_server}/exchanges/{session_id}/my-table")
    assert "テーブル" in await page.locator("main").inner_text()
    await check_page(page, "my table")
    await context.close()

    await make_person("admin", "journey-admin@ward.example.jp", name="管理 太郎")
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = await context.new_page()
    await log_in(page, live_server, "journey-admin@ward.example.jp")
    for path in ("/admin/users", "/admin/audit", "/coordinator/outbox"):
        await page.goto(live_server + path)
        await check_page(page, path)
    await context.close()


async def _person(email: str) -> int:
    from events import people

    return (await people.find_by_email(email))["id"]
