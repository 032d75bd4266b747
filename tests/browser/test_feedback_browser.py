"""A student answers a survey on a phone-sized screen in headless Chromium, partly by keyboard."""

from __future__ import annotations

import pytest

from events.feedback import sending, surveys
from events.feedback.tables import FeedbackAnswer, FeedbackRequest
from tests.conftest import make_person
from tests.service.test_feedback_service import make_event, register, tokens_by_recipient

pytestmark = pytest.mark.browser  # fixtures live_server and browser (Debian chromium) come from tests/conftest.py


async def test_student_answers_on_a_phone(db, live_server, browser):
    event = await make_event(series="2026ライフデザイン講座")
    student = await make_person("student", "yui@example.jp", name="佐藤 結衣")
    await register(event, student, "confirmed")
    await surveys.create_survey(audience="seminar_student", template="seminar_student", event_id=event)
    await sending.run_feedback_jobs()
    token = (await tokens_by_recipient())["yui@example.jp"]

    context = await browser.new_context(viewport={"width": 375, "height": 740}, device_scale_factor=2,
                                        is_mobile=True, has_touch=True, locale="ja-JP")
    page = await context.new_page()
    await page.goto(f"{live_server}/feedback/{token}")
    await page.get_by_role("heading", level=1).wait_for()
    assert page.url == f"{live_server}/feedback"  # the token left the address bar (and the history) at once
    assert await page.locator("html").get_attribute("lang") == "ja"
    assert await page.get_by_text("このアンケートは無記名です。").is_visible()
    # Nothing is wider than the phone's screen.
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # Sending with nothing chosen shows the problems, with links to the questions.
    await page.get_by_role("button", name="回答を送信する").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "この講座は、仕事と家庭の両立について考えるきっかけになりましたか" in await alert.inner_text()

    # The first scale by keyboard: focus its first option, arrow to 4, as a radio group works.
    first = page.get_by_role("radiogroup", name="この講座は、仕事と家庭の両立について考えるきっかけになりましたか")
    await first.get_by_role("radio").first.focus()
    for _ in range(3):
        await page.keyboard.press("ArrowDown")
    assert await first.get_by_role("radio", name="4 ややそう思う").is_checked()
    # The rest by tapping the labels.
    groups = page.locator("main fieldset.question")  # the questions (radio groups, and a group for the multi-choice)
    count = await groups.count()
    for index in range(1, count):
        await groups.nth(index).locator("label.choice").first.tap()
    await page.get_by_label("感想や、今後取り上げてほしいテーマがあればお書きください").fill("育休の話が参考になりました。")
    await page.get_by_role("button", name="回答を送信する").click()
    await page.get_by_role("heading", name="ご回答ありがとうございました").wait_for()

    # Coming back by the same link: answered, and (anonymous) nothing to find or change.
    await page.goto(f"{live_server}/feedback/{token}")
    await page.get_by_role("status").wait_for()
    assert "回答済みです" in await page.get_by_role("status").inner_text()
    assert await page.get_by_role("button", name="回答を送信する").count() == 0
    await context.close()

    answers = await FeedbackAnswer.select().output(load_json=True)
    assert len(answers) == 1 and answers[0]["person"] is None
    assert "育休の話が参考になりました。" in answers[0]["answers"].values()
    assert 4 in answers[0]["answers"].values()
    assert (await FeedbackRequest.select(FeedbackRequest.answered).first())["answered"] is True
