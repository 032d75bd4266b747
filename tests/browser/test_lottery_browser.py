"""An applicant applies to a lottery with ward priority, then checks their own ticket on the public record of the
draw, in Debian's Chromium — and anyone recomputes the draw from that record with the standard-library script.

No serious or critical axe-core violation on the event page or the public record.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from events.seminars import draws, registration
from events.seminars.tables import Registration
from tests.browser.test_kernel_pages_a11y import AXE, axe_violations, log_in
from tests.service.seminars_helpers import adult, email_of, new_event, soon

pytestmark = pytest.mark.browser

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "verify_lottery.py"


async def test_an_applicant_verifies_their_own_ticket(db, live_server, browser):
    if not AXE.exists():
        pytest.fail("axe-core is missing: run `npm ci --prefix tests/interop` (README's test command)")
    event_id = await new_event(capacity=2, allocation="lottery", title="大学生のためのライフデザイン講座",
                               registration_closes_at=soon(5).isoformat(), priority_rules=["ward"])
    others = [await adult(f"申込者{i}") for i in range(4)]
    for person in others:
        await registration.register(event_id, person, ward_tie="none")
    me = await adult("区内 太郎")

    context = await browser.new_context(viewport={"width": 390, "height": 800}, locale="ja-JP")
    page = await context.new_page()
    await log_in(page, live_server, await email_of(me))
    await page.goto(f"{live_server}/events/{event_id}")
    commitment = (await page.locator("#fair-draw ~ details code").first.text_content()).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", commitment), commitment  # published before the draw
    assert await axe_violations(page) == []
    await page.get_by_label("区内在住").check()
    await page.get_by_role("button", name="抽選に申し込む").click()
    await page.wait_for_load_state()
    ticket = (await Registration.select(Registration.lottery_ticket).where(
        (Registration.event == event_id) & (Registration.person == me)).first())["lottery_ticket"]
    assert ticket and ticket in await page.locator("main").inner_text()  # shown to the applicant, as in the mail

    await draws.draw_lottery(event_id)
    await page.reload()
    await page.get_by_role("link", name="抽選の公開記録（どなたでも結果を確かめられます）").click()
    await page.wait_for_url(f"{live_server}/events/{event_id}/lottery")
    status = await page.get_by_role("status").inner_text()
    assert f"抽選券 {ticket} は当選しました（抽選の順番で 1 番目）" in status  # ward priority drew it first
    mine = page.locator("tr[aria-current=true]")
    assert await mine.count() == 1 and ticket in await mine.inner_text()
    assert "金沢区にお住まい・通学・通勤の方" in await mine.inner_text()  # the group in words
    assert "記録と一致しました" in await page.locator("main").inner_text()
    text = await page.locator("main").inner_text()
    assert not any(name in text for name in ("申込者", "区内 太郎"))  # no names on the public record
    assert await axe_violations(page) == []

    # someone else's ticket can be looked up; one that is not in the draw is said to be absent
    other = next(t for t in (await draws.public_record(event_id))["waitlist"])
    await page.get_by_label("抽選券番号で探す").fill(other.lower())
    await page.get_by_role("button", name="探す").click()
    assert f"抽選券 {other} はキャンセル待ちの" in await page.get_by_role("status").inner_text()
    await page.get_by_label("抽選券番号で探す").fill("ZZZZ2222")
    await page.get_by_role("button", name="探す").click()
    assert "抽選券 ZZZZ2222 はこの抽選にありません" in await page.get_by_role("status").inner_text()
    await context.close()

    # anyone recomputes the draw from the public record, with the standard library only
    url = f"{live_server}/api/v1/events/{event_id}/lottery"
    checked = subprocess.run([sys.executable, "-I", str(SCRIPT), url, "--ticket", ticket], capture_output=True,
                             text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK" in checked.stdout and ticket in checked.stdout
