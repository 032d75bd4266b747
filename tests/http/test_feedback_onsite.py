"""Surveys at the event: 「今すぐ送る」 (with its confirmation step), the on-site link and QR code — anonymous
answers stay unlinkable, a slot answers once — and shares shown as people read them (1/8 is 13 %)."""

from __future__ import annotations

import re
from datetime import timedelta

from litestar.testing import AsyncTestClient

from events import clock
from events.core.tables import AuditEntry
from events.db import is_sqlite, raw, utcnow
from events.feedback import onsite, sending, surveys
from events.feedback.results import percent, share
from events.feedback.tables import FeedbackAnswer, FeedbackRequest, OnsiteSlotUsed
from tests.conftest import csrf_from, login, make_person, outbox_mails
from tests.http.test_feedback_pages import _answer_form, _asked
from tests.service.test_feedback_service import full_answers, make_event, register, students

BASE = "http://127.0.0.1:8000"


def test_shares_round_half_up_and_carry_their_count():
    assert f"{12.5:.0f}" == "12"  # negative control: the old "%.0f" format rounded 1/8 half to even
    assert share(1, 8) == "1/8（13 %）" and percent(1, 8) == "13 %"
    assert [percent(n, 8) for n in (0, 3, 5, 8)] == ["0 %", "38 %", "63 %", "100 %"]
    assert percent(1, 3) == "33 %" and percent(2, 3) == "67 %" and percent(1, 200) == "1 %" and percent(0, 0) == "0 %"


async def test_one_answer_of_eight_shows_as_13_percent_and_reveals_no_figure(client, db):
    survey_id, tokens = await _asked(8)
    await make_person("coordinator", "coord@example.jp")
    page = await client.get(f"/feedback/{tokens['s0@example.jp']}")
    assert (await client.post("/feedback", data=_answer_form(page.text, scale=4))).status_code == 200
    await login(client, "coord@example.jp")
    result = await client.get(f"/coordinator/feedback/{survey_id}/results")
    assert "回答率 1/8（13 %）" in result.text and "12 %" not in result.text and "12%" not in result.text
    # one anonymous answer: no figure of it is shown, in any table or chart (the group is below 5)
    assert "<svg" not in result.text and 'class="q-table"' not in result.text
    printed = await client.get(f"/coordinator/feedback/{survey_id}/print")
    assert "回答率 1/8（13 %）" in printed.text and "非表示（回答が少ないため）" in printed.text


async def test_send_now_asks_once_after_a_confirmation_and_is_audited(client, db):
    await make_person("coordinator", "coord@example.jp")
    await login(client, "coord@example.jp")
    running = await make_event(title="ワークライフ講座 当日", ended_hours_ago=-1)  # began an hour ago, still on
    people = await students(3)
    for person in people:
        await register(running, person, "confirmed")
    survey_id = await surveys.create_survey(audience="seminar_student", template="seminar_student", event_id=running,
                                            anonymous=True)
    assert await sending.run_feedback_jobs() == {"closed": 0, "requested": 0, "reminded": 0, "scrubbed": 0}
    detail = await client.get(f"/coordinator/feedback/{survey_id}")
    assert 'id="send-now"' in detail.text

    asked = await client.post(f"/coordinator/feedback/{survey_id}/send-now", data={"_csrf": csrf_from(detail.text)})
    assert asked.status_code == 200 and "今すぐ送りますか" in asked.text and "3名の方にメールでお知らせします。" in asked.text
    assert 'name="confirmed" value="1"' in asked.text
    assert await outbox_mails("feedback_request") == []  # the first tap only asks

    sent = await client.post(f"/coordinator/feedback/{survey_id}/send-now",
                             data={"_csrf": csrf_from(asked.text), "confirmed": "1"}, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"].endswith(f"/coordinator/feedback/{survey_id}?sent=3")
    assert "3人に回答用のリンクを送りました。" in (await client.get(sent.headers["location"])).text
    assert sorted(m["To"].addresses[0].addr_spec for m in await outbox_mails("feedback_request")) == [
        "s0@example.jp", "s1@example.jp", "s2@example.jp"]
    audit = await AuditEntry.select().where(AuditEntry.action == "feedback_survey_sent_now")
    assert len(audit) == 1 and audit[0]["subject_id"] == str(survey_id)

    again = await client.post(f"/coordinator/feedback/{survey_id}/send-now", data={"_csrf": csrf_from(detail.text)})
    assert again.status_code == 409 and "今すぐ送れる方はいません" in again.text
    with clock.travel(timedelta(hours=5)):  # the event ends and the delay passes: the worker asks nobody twice
        assert (await sending.run_feedback_jobs())["requested"] == 0
        late = await make_person("student", "late@example.jp")  # negative control: a new participant is asked
        await register(running, late, "confirmed")
        assert (await sending.run_feedback_jobs())["requested"] == 1
    assert len(await outbox_mails("feedback_request")) == 4


async def _coordinator_detail(client, survey_id: int) -> str:
    await make_person("coordinator", "coord@example.jp")
    await login(client, "coord@example.jp")
    return (await client.get(f"/coordinator/feedback/{survey_id}")).text


async def test_anonymous_on_site_link_gives_one_time_slots_that_join_nothing(client, app, db):
    survey_id, _tokens = await _asked(5)
    detail = await _coordinator_detail(client, survey_id)
    path = onsite.onsite_path(survey_id)
    assert f"{BASE}{path}" in detail and '<svg role="img"' in detail  # the link and its QR code
    printed = await client.get(f"/coordinator/feedback/{survey_id}/onsite")
    assert printed.status_code == 200 and '<svg role="img"' in printed.text and "size: A4" in printed.text
    assert f"{BASE}{path}" in printed.text

    # a logged-in visitor too: the answer must not be theirs
    opened = await client.get(path, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == f"/feedback/open/{survey_id}"
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith("ld_slot=") and f"Path=/feedback/open/{survey_id}" in cookie and "HttpOnly" in cookie
    slot = client.cookies.get("ld_slot")
    form_page = await client.get(f"/feedback/open/{survey_id}")
    assert form_page.status_code == 200 and form_page.headers["cache-control"] == "no-store"
    assert "このアンケートは無記名です。" in form_page.text and f'action="/feedback/open/{survey_id}"' in form_page.text
    incomplete = await client.post(f"/feedback/open/{survey_id}", data={"_csrf": csrf_from(form_page.text)})
    assert incomplete.status_code == 422 and "この質問は必須です。" in incomplete.text
    assert await OnsiteSlotUsed.count() == 0  # a refused answer does not use the slot up
    done = await client.post(f"/feedback/open/{survey_id}", data=_answer_form(form_page.text, scale=4))
    assert done.status_code == 200 and "ご回答ありがとうございました" in done.text
    answers = await FeedbackAnswer.select().where(FeedbackAnswer.survey == survey_id)
    assert len(answers) == 1 and answers[0]["person"] is None and answers[0]["updated_at"] is None
    assert await FeedbackRequest.count().where(FeedbackRequest.answered.eq(True)) == 0  # no request learns anything
    used = await OnsiteSlotUsed.select()
    assert set(used[0]) == {"id", "survey", "slot_hash"} and used[0]["slot_hash"] not in {a["id"] for a in answers}
    # this browser answered: the link gives it no new slot
    assert "この端末からは、このアンケートに回答済みです。" in (await client.get(path)).text

    async with AsyncTestClient(app=app, base_url=BASE) as replay, AsyncTestClient(app=app, base_url=BASE) as other:
        replay.cookies.set("ld_slot", slot, path=f"/feedback/open/{survey_id}")  # the used slot, copied
        assert "回答済みです" in (await replay.get(f"/feedback/open/{survey_id}")).text
        csrf = csrf_from((await replay.get("/login")).text)
        again = await replay.post(f"/feedback/open/{survey_id}", data={**_answer_form(form_page.text, scale=0),
                                                                       "_csrf": csrf})
        assert again.status_code == 409 and "回答済みです" in again.text
        other.cookies.set("ld_slot", "made-up.signature", path=f"/feedback/open/{survey_id}")
        forged = await other.post(f"/feedback/open/{survey_id}", data={
            **_answer_form(form_page.text), "_csrf": csrf_from((await other.get("/login")).text)})
        assert forged.status_code == 404
        other.cookies.clear()
        assert (await other.get(f"/feedback/open/{survey_id}/not-the-token")).status_code == 404
        assert await FeedbackAnswer.count().where(FeedbackAnswer.survey == survey_id) == 1
        # negative control: a fresh slot in another browser answers
        page = await other.get(path)
        assert (await other.post(f"/feedback/open/{survey_id}", data=_answer_form(page.text))).status_code == 200
        assert await FeedbackAnswer.count().where(FeedbackAnswer.survey == survey_id) == 2
    await surveys.close_survey(survey_id, actor=onsite_staff())
    async with AsyncTestClient(app=app, base_url=BASE) as late:
        assert (await late.get(path)).status_code == 410


def onsite_staff():
    from tests.service.test_feedback_service import STAFF

    return STAFF


async def test_named_on_site_link_leads_participants_to_their_own_form(client, app, db):
    event = await make_event(title="記名の講座", ended_hours_ago=-1)
    participant = await make_person("student", "named.student@example.jp")
    await register(event, participant, "confirmed")
    await make_person("student", "stranger@example.jp")
    survey_id = await surveys.create_survey(audience="seminar_student", template="seminar_student", event_id=event,
                                            anonymous=False, closes_at=utcnow() + timedelta(days=7))
    path = onsite.onsite_path(survey_id)
    async with AsyncTestClient(app=app, base_url=BASE) as visitor:
        to_login = await visitor.get(path, follow_redirects=False)
        assert to_login.status_code == 303 and to_login.headers["location"] == f"/login?next={path}"
        await login(visitor, "stranger@example.jp")
        refused = await visitor.get(path)
        assert refused.status_code == 403 and "参加された方が回答できます" in refused.text
    await login(client, "named.student@example.jp")
    opened = await client.get(path, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/feedback"
    page = await client.get("/feedback")
    assert "このアンケートは記名式です。" in page.text
    assert (await client.post("/feedback", data=_answer_form(page.text))).status_code == 200
    answer = await FeedbackAnswer.select().where(FeedbackAnswer.survey == survey_id).first()
    assert answer["person"] == participant
    assert await outbox_mails("feedback_request") == []  # made on the spot, no mail
    assert re.search(r"回答済み", (await client.get("/feedback")).text)



async def _two_on_site_answers() -> int:
    survey_id = await surveys.create_survey(audience="seminar_student", template="seminar_student",
                                            event_id=await make_event(), anonymous=True)
    survey = await surveys.get_survey(survey_id)
    for _ in range(2):
        await onsite.submit_anonymous(survey_id, onsite.new_slot(survey_id), full_answers(survey))
    return survey_id


async def test_a_used_slot_leaves_no_trail_to_its_answer(db, monkeypatch):
    """The database-copy attack on on-site answers: the used slots are in arrival order; their answers must not be.
    PostgreSQL: every submission rewrites the survey's anonymous answers, so no answer keeps the xmin of an earlier
    slot's transaction (negative control: without the rewrite, the first slot's transaction finds its answer)."""
    survey_id = await _two_on_site_answers()
    if is_sqlite():
        rows = await raw("SELECT rowid FROM feedback_answer WHERE survey = {}", survey_id)
        assert sorted(r["rowid"] for r in rows) != [1, 2]  # random rowids: no arrival order
        return
    answers = {r["x"] for r in await raw("SELECT xmin::text AS x FROM feedback_answer WHERE survey = {}", survey_id)}
    slots = [r["x"] for r in await raw("SELECT xmin::text AS x FROM feedback_onsite_slot WHERE survey = {} ORDER BY id",
                                       survey_id)]
    assert len(answers) == 1 and slots[0] not in answers

    async def no_rewrite(_survey_id: int) -> None:
        return None

    monkeypatch.setattr(onsite, "_reshuffle", no_rewrite)
    control = await _two_on_site_answers()
    answers = {r["x"] for r in await raw("SELECT xmin::text AS x FROM feedback_answer WHERE survey = {}", control)}
    slots = [r["x"] for r in await raw("SELECT xmin::text AS x FROM feedback_onsite_slot WHERE survey = {} ORDER BY id",
                                       control)]
    assert slots[0] in answers  # the join the rewrite removes
