"""Feedback surveys against a real database: sending, reminders, answering, anonymity, results, exports."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from events.access import Actor
from events.db import raw, utcnow
from events.errors import Conflict, Invalid, NotFound
from events.feedback import answering, links, results, sending, surveys
from events.feedback.tables import FeedbackAnswer, FeedbackRequest
from events.seminars.tables import Event, Registration
from tests.conftest import links_in, make_person, outbox_mails

SECRET = "feedback-test-secret-" + "k" * 40
STAFF = Actor(None, frozenset({"coordinator"}), "test")  # a coordinator, for services that take an actor


@pytest.fixture(autouse=True)
def feedback_secret():
    links.configure_secret(SECRET)


async def make_event(*, kind="seminar", series="", ended_hours_ago=5.0, attendance_taken=False, status="published",
                     title="ワークライフデザイン講座") -> int:
    now = utcnow()
    ends = now - timedelta(hours=ended_hours_ago)
    row = await Event.insert(Event(
        kind=kind, title=title, title_en="Life design seminar", starts_at=ends - timedelta(hours=2), ends_at=ends,
        capacity=50, status=status, series=series, attendance_taken=attendance_taken, created_at=now, updated_at=now,
    )).returning(Event.id)
    return row[0]["id"]


async def register(event_id: int, person_id: int, status: str) -> None:
    now = utcnow()
    await Registration.insert(Registration(event=event_id, person=person_id, status=status, created_at=now,
                                           updated_at=now))


async def students(n: int, prefix: str = "s") -> list[int]:
    return [await make_person("student", f"{prefix}{i}@example.jp", name=f"学生 {prefix}{i}") for i in range(n)]


def token_of(message) -> str:
    link = [u for u in links_in(message) if "/feedback/" in u][0]
    return link.rsplit("/feedback/", 1)[1]


async def tokens_by_recipient(kind="feedback_request") -> dict[str, str]:
    return {m["To"].addresses[0].addr_spec: token_of(m) for m in await outbox_mails(kind)}


def full_answers(survey: dict, scale_index: int = 3) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {}
    for q in survey["questions"]:
        if q["kind"] == "scale":
            form[f"q{q['id']}"] = [str(scale_index)]
        elif q["kind"] in ("single", "multi"):
            form[f"q{q['id']}"] = ["0"]
        else:
            form[f"q{q['id']}"] = ["とても参考になりました。"]
    return form


async def seminar_survey(event_id=None, series="", anonymous=True, **kwargs) -> int:
    return await surveys.create_survey(audience="seminar_student", template="seminar_student", event_id=event_id,
                                       series=series, anonymous=anonymous, **kwargs)


async def test_template_survey_has_believable_questions(db):
    event = await make_event()
    survey_id = await seminar_survey(event)
    survey = await surveys.get_survey(survey_id)
    texts = [q["text"] for q in survey["questions"]]
    assert "この講座は、仕事と家庭の両立について考えるきっかけになりましたか" in texts
    assert {q["kind"] for q in survey["questions"]} == {"scale", "single", "multi", "text"}
    scale = survey["questions"][0]
    assert len(scale["options"]) == 5 and len(scale["options_en"]) == 5 and scale["required"] is True


async def test_invalid_surveys_and_questions_are_refused(db):
    event = await make_event()
    with pytest.raises(Invalid) as exc:
        await surveys.create_survey(audience="host_family", event_id=event, title="x")
    assert exc.value.code == "audience_event_mismatch"
    with pytest.raises(Invalid):
        await surveys.create_survey(audience="seminar_student", title="x")  # neither event nor series
    survey_id = await seminar_survey(event)
    with pytest.raises(Invalid) as exc:
        await surveys.add_question(survey_id, {"kind": "scale", "text": "満足度", "options": ["a", "b"]})
    assert exc.value.code == "scale_needs_five_labels"
    with pytest.raises(Invalid):
        await surveys.add_question(survey_id, {"kind": "single", "text": "どれ", "options": ["a"]})
    question = await surveys.add_question(survey_id, {"kind": "single", "text": "どれ", "options": ["a", "b"],
                                                      "options_en": ["A", "B"], "required": True})
    assert question > 0


async def test_job_asks_attended_when_attendance_taken_else_confirmed(db):
    taken = await make_event(attendance_taken=True, series="2026ライフデザイン講座")
    not_taken = await make_event(attendance_taken=False, series="2026ライフデザイン講座")
    a, b, c, d, e, f = await students(6)
    await register(taken, a, "attended")
    await register(taken, b, "no_show")
    await register(taken, c, "confirmed")  # attendance taken, not marked attended: not asked
    await register(not_taken, d, "confirmed")
    await register(not_taken, e, "cancelled")
    await register(not_taken, f, "waitlisted")
    await seminar_survey(series="2026ライフデザイン講座")
    assert (await sending.run_feedback_jobs())["requested"] == 2
    assert set(await tokens_by_recipient()) == {"s0@example.jp", "s3@example.jp"}


async def test_not_sent_before_the_delay_nor_for_cancelled_events(db):
    recent = await make_event(ended_hours_ago=0.5)  # delay is 2 hours
    cancelled = await make_event(status="cancelled")
    (a, b) = await students(2)
    await register(recent, a, "confirmed")
    await register(cancelled, b, "confirmed")
    await seminar_survey(recent)
    await seminar_survey(cancelled)
    assert await sending.send_feedback_requests() == 0
    assert await sending.send_feedback_requests(utcnow() + timedelta(hours=2)) == 1


async def test_one_mail_per_person_per_survey(db):
    series = "2026講座"
    first = await make_event(series=series, ended_hours_ago=48)
    second = await make_event(series=series, ended_hours_ago=5)
    (a,) = await students(1)
    await register(first, a, "attended")
    await register(second, a, "confirmed")
    await seminar_survey(series=series)
    assert await sending.send_feedback_requests() == 1
    assert await sending.send_feedback_requests() == 0  # run again: nothing new
    assert len(await outbox_mails("feedback_request")) == 1
    assert await FeedbackRequest.count() == 1


async def test_reminder_only_to_non_respondents_and_only_once(db):
    event = await make_event()
    people = await students(3)
    for person in people:
        await register(event, person, "confirmed")
    survey_id = await seminar_survey(event, reminder_days=3)
    await sending.send_feedback_requests()
    tokens = await tokens_by_recipient()
    survey = await surveys.get_survey(survey_id)
    await answering.submit_answers(tokens["s0@example.jp"], full_answers(survey))
    assert await sending.send_reminders() == 0  # not yet due
    later = utcnow() + timedelta(days=3, minutes=1)
    assert await sending.send_reminders(later) == 2
    assert await sending.send_reminders(later + timedelta(days=5)) == 0
    reminded = await outbox_mails("feedback_reminder")
    assert sorted(m["To"].addresses[0].addr_spec for m in reminded) == ["s1@example.jp", "s2@example.jp"]
    # The reminder carries the same personal link as the first mail.
    assert token_of([m for m in reminded if m["To"].addresses[0].addr_spec == "s1@example.jp"][0]) == tokens["s1@example.jp"]


async def test_single_submission_and_editing(db):
    event = await make_event()
    (a,) = await students(1)
    await register(event, a, "confirmed")
    survey_id = await seminar_survey(event, anonymous=False)
    await sending.send_feedback_requests()
    token = (await tokens_by_recipient())["s0@example.jp"]
    survey = await surveys.get_survey(survey_id)
    assert await answering.submit_answers(token, full_answers(survey, 1)) is True
    assert await answering.submit_answers(token, full_answers(survey, 4)) is False
    assert await FeedbackAnswer.count() == 1
    stored = await FeedbackAnswer.select().output(load_json=True)
    assert stored[0]["answers"][str(survey["questions"][0]["id"])] == 5
    assert stored[0]["person"] == a
    form = await answering.open_form(token)
    assert form.answered and form.answers[f"q{survey['questions'][0]['id']}"] == 4


async def test_missing_required_answer_is_refused_with_every_problem(db):
    event = await make_event()
    (a,) = await students(1)
    await register(event, a, "confirmed")
    survey_id = await seminar_survey(event)
    await sending.send_feedback_requests()
    token = (await tokens_by_recipient())["s0@example.jp"]
    survey = await surveys.get_survey(survey_id)
    form = full_answers(survey)
    first, second = survey["questions"][0]["id"], survey["questions"][1]["id"]
    form[f"q{first}"] = []
    form[f"q{second}"] = ["9"]
    with pytest.raises(Invalid) as exc:
        await answering.submit_answers(token, form)
    assert set(exc.value.extra["errors"]) == {f"q{first}", f"q{second}"}
    assert await FeedbackAnswer.count() == 0
    assert (await FeedbackRequest.select(FeedbackRequest.answered).first())["answered"] is False


async def test_closed_survey_is_refused(db):
    event = await make_event()
    (a,) = await students(1)
    await register(event, a, "confirmed")
    survey_id = await seminar_survey(event, closes_at=utcnow() + timedelta(days=7))
    await sending.send_feedback_requests()
    token = (await tokens_by_recipient())["s0@example.jp"]
    survey = await surveys.get_survey(survey_id)
    assert await sending.close_overdue(utcnow() + timedelta(days=8)) == 1
    assert (await answering.open_form(token)).open is False
    with pytest.raises(Conflict) as exc:
        await answering.submit_answers(token, full_answers(survey))
    assert exc.value.code == "survey_closed" and exc.value.status == 410
    # No reminder for a closed survey.
    assert await sending.send_reminders(utcnow() + timedelta(days=9)) == 0
    with pytest.raises(NotFound):
        await answering.open_form("not-a-real-token")


async def _answered_anonymous_survey(n: int = 6) -> tuple[int, list[int], dict[str, str]]:
    event = await make_event(series="2026講座")
    people = await students(n)
    for person in people:
        await register(event, person, "confirmed")
    survey_id = await seminar_survey(series="2026講座")
    await sending.run_feedback_jobs()
    tokens = await tokens_by_recipient()
    survey = await surveys.get_survey(survey_id)
    for i, (_address, token) in enumerate(sorted(tokens.items())):
        form = full_answers(survey, i % 5)
        form[f"q{survey['questions'][-1]['id']}"] = [f"感想{i}"]
        await answering.submit_answers(token, form)
    return survey_id, people, tokens


async def test_anonymous_answers_have_no_path_to_a_person(db):
    """The schema side (the attack with a database copy and the logs: tests/service/test_anonymity.py)."""
    await _answered_anonymous_survey()
    # Columns: an answer row names no person, request or token, and carries no time.
    answer_columns = {c._meta.db_column_name for c in FeedbackAnswer._meta.columns}
    assert answer_columns == {"id", "survey", "event", "person", "answers", "updated_at"}
    fks = {c._meta.name: c._foreign_key_meta.resolved_references._meta.tablename
           for c in FeedbackAnswer._meta.foreign_key_columns}
    assert "feedback_request" not in fks.values()
    # The request keeps only whether it was answered: no time to match against anything.
    assert not [c for c in FeedbackRequest._meta.columns if "respon" in c._meta.db_column_name]
    rows = await raw("SELECT * FROM feedback_answer")
    assert len(rows) == 6
    assert all(r["person"] is None and r["updated_at"] is None for r in rows)
    request_values = {str(v) for r in await raw("SELECT * FROM feedback_request") for v in r.values()}
    assert not {r["id"] for r in rows} & request_values
    if _is_sqlite():  # storage leaves no arrival order: a random rowid, not 1, 2, 3 …
        rowids = [r["rowid"] for r in await raw("SELECT rowid FROM feedback_answer")]
        assert min(rowids) > 1000
    else:  # one xmin for every anonymous answer and every answered request of the survey
        assert (await raw("SELECT COUNT(DISTINCT xmin::text) AS n FROM feedback_answer"))[0]["n"] == 1
        assert (await raw("SELECT COUNT(DISTINCT xmin::text) AS n FROM feedback_request WHERE answered"))[0]["n"] == 1
        mixed = await raw("SELECT COUNT(DISTINCT xmin::text) AS n FROM (SELECT xmin FROM feedback_answer UNION ALL "
                          "SELECT xmin FROM feedback_request WHERE answered) AS written")
        assert mixed[0]["n"] == 1


async def test_an_anonymous_answer_is_final_and_a_named_one_editable(db):
    event = await make_event()
    (a,) = await students(1)
    await register(event, a, "confirmed")
    await seminar_survey(event)
    await sending.send_feedback_requests()
    token = (await tokens_by_recipient())["s0@example.jp"]
    survey = await surveys.get_survey((await surveys.list_surveys())[0]["id"])
    assert await answering.submit_answers(token, full_answers(survey, 1)) is True
    form = await answering.open_form(token)
    assert form.answered and form.answers == {}  # nothing to show: the link does not find the answer
    with pytest.raises(Conflict) as exc:
        await answering.submit_answers(token, full_answers(survey, 4))
    assert exc.value.code == "feedback_already_answered"
    assert await FeedbackAnswer.count() == 1


def _is_sqlite() -> bool:
    from events.db import is_sqlite

    return is_sqlite()


async def test_anonymous_export_has_no_identity_and_needs_five_answers(db):
    survey_id, people, tokens = await _answered_anonymous_survey(6)
    export = await results.export_answers(survey_id, actor=STAFF)
    header, rows = export.header, export.rows
    assert header[:2] == ["回答番号", "イベント"] and "氏名" not in header and "メールアドレス" not in header
    flat = repr(rows)
    assert "学生" not in flat and "@example.jp" not in flat
    data = export.content
    assert data.startswith("\ufeff".encode())
    parsed = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert parsed[0][0] == "回答番号" and len(parsed) == 7
    xlsx = (await results.export_answers(survey_id, actor=STAFF, fmt="xlsx")).content
    assert xlsx[:2] == b"PK"
    # Shuffled: over a few exports the order of the free-text answers changes.
    orders = {tuple(r[-1] for r in (await results.export_answers(survey_id, actor=STAFF)).rows) for _ in range(8)}
    assert len(orders) > 1


async def test_small_anonymous_survey_is_not_broken_down_or_exported(db):
    survey_id, people, tokens = await _answered_anonymous_survey(3)
    outcome = await results.survey_results(survey_id, actor=STAFF)
    assert outcome["responded"] == 3 and outcome["summary"].suppressed
    assert all(q["chart"] == "" and q["texts"] == [] for q in outcome["questions"])
    with pytest.raises(Conflict):
        await results.export_answers(survey_id, actor=STAFF)
    # The event was too small to keep on the answers: they are pooled.
    assert {r["event"] for r in await raw("SELECT event FROM feedback_answer")} == {None}


async def test_results_figures_and_named_nonrespondents(db):
    event = await make_event()
    people = await students(7)
    for person in people:
        await register(event, person, "confirmed")
    survey_id = await seminar_survey(event, anonymous=False)
    await sending.send_feedback_requests()
    tokens = await tokens_by_recipient()
    survey = await surveys.get_survey(survey_id)
    for i in range(5):
        await answering.submit_answers(tokens[f"s{i}@example.jp"], full_answers(survey, 4))
    outcome = await results.survey_results(survey_id, actor=STAFF)
    assert (outcome["invited"], outcome["responded"]) == (7, 5)
    first = outcome["questions"][0]
    assert first["summary"].respondents == 5 and first["summary"].mean == 5.0
    assert "<svg" in first["chart"] and 'data-count="5"' in first["chart"]
    assert sorted(p["name"] for p in outcome["nonrespondents"]) == ["学生 s5", "学生 s6"]
    export = await results.export_answers(survey_id, actor=STAFF)
    header, rows = export.header, export.rows
    assert "氏名" in header and len(rows) == 5
    assert re.match(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}", rows[0][4])


async def test_host_families_get_their_own_survey_through_the_hook(db):
    visit = await make_event(kind="home_visit", title="家庭訪問（山田家）")
    host = await make_person("host_family", "yamada@example.jp")
    (student,) = await students(1)
    await register(visit, student, "confirmed")

    async def host_of(event_id: int) -> list[int]:
        return [host] if event_id == visit else []

    from events import signals

    previous = signals.SURVEY_RECIPIENTS.get("host_family")  # the visits area's own, when it is loaded
    signals.SURVEY_RECIPIENTS.provide("host_family", host_of)
    try:
        await surveys.create_survey(audience="home_visit_student", template="home_visit_student", event_id=visit)
        await surveys.create_survey(audience="host_family", template="host_family", event_id=visit)
        assert await sending.send_feedback_requests() == 2
    finally:
        if previous is not None:
            signals.SURVEY_RECIPIENTS.provide("host_family", previous)
        else:
            signals.SURVEY_RECIPIENTS._impls.pop("host_family", None)
    mails = await outbox_mails("feedback_request")
    subjects = {m["To"].addresses[0].addr_spec: m for m in mails}
    assert set(subjects) == {"yamada@example.jp", "s0@example.jp"}
    host_token = token_of(subjects["yamada@example.jp"])
    assert "受け入れ家庭" in (await answering.open_form(host_token)).title


async def test_concurrent_submissions_of_one_link_store_one_answer(db):
    import asyncio

    event = await make_event()
    (a,) = await students(1)
    await register(event, a, "confirmed")
    for anonymous in (False, True):
        survey_id = await seminar_survey(event, anonymous=anonymous)
        await sending.send_feedback_requests()
        token = token_of((await outbox_mails("feedback_request"))[-1])  # the newest survey's link
        survey = await surveys.get_survey(survey_id)
        outcomes = await asyncio.gather(*(answering.submit_answers(token, full_answers(survey, i % 5)) for i in range(6)),
                                        return_exceptions=True)
        firsts = [o for o in outcomes if o is True]
        assert len(firsts) == 1
        others = [o for o in outcomes if o is not True]
        if anonymous:  # final once sent: the others are told so
            assert all(isinstance(o, Conflict) and o.code == "feedback_already_answered" for o in others)
        else:
            assert others == [False] * 5
        assert await FeedbackAnswer.count().where(FeedbackAnswer.survey == survey_id) == 1


async def test_two_workers_ask_each_person_once(db):
    import asyncio

    event = await make_event()
    for person in await students(8):
        await register(event, person, "confirmed")
    await seminar_survey(event)
    created = await asyncio.gather(sending.send_feedback_requests(), sending.send_feedback_requests())
    assert sum(created) == 8
    assert await FeedbackRequest.count() == 8 and len(await outbox_mails("feedback_request")) == 8


async def test_demo_puts_one_survey_on_each_seminar_series(db):
    from lifedesign.areas.feedback.demo import load

    await make_event(series="令和8年度 金沢若者ライフデザイン講座")
    await make_event(series="令和8年度 金沢若者ライフデザイン講座", ended_hours_ago=-240)
    await make_event(kind="staff_exchange", series="保育交流会")
    assert await load(lambda _: None) == {"feedback_surveys_created": 1}
    assert await load(lambda _: None) == {"feedback_surveys_created": 0}
    (survey,) = await surveys.list_surveys()
    assert survey["series"] == "令和8年度 金沢若者ライフデザイン講座" and survey["anonymous"]
    assert survey["closes_at"] > utcnow() + timedelta(days=20)


async def test_links_travel_over_smtp_then_leave_the_database(db, settings, smtp_server):
    import dataclasses

    from lifedesign.settings import SmtpSettings
    from lifedesign.worker import deliver_once
    from tests.conftest import parse_mail

    event = await make_event()
    english = await make_person("student", "emma@example.jp", name="Emma Clark", locale="en")
    (japanese,) = await students(1)
    await register(event, english, "confirmed")
    await register(event, japanese, "confirmed")
    await seminar_survey(event)
    assert (await sending.run_feedback_jobs())["requested"] == 2
    smtp = dataclasses.replace(settings, smtp=SmtpSettings(host="127.0.0.1", port=smtp_server.port, security="none"))
    assert (await deliver_once(smtp))["sent"] == 2
    received = {parse_mail(raw_bytes)["To"].addresses[0].addr_spec: parse_mail(raw_bytes)
                for _, _, raw_bytes in smtp_server.messages}
    assert "Please tell us how it went" in received["emma@example.jp"]["Subject"]
    assert "アンケートへのご協力のお願い" in received["s0@example.jp"]["Subject"]
    token = token_of(received["emma@example.jp"])
    assert (await answering.open_form(token)).locale == "en"
    # Once sent, the bytes are erased (by the outbox itself, or the next feedback pass); the link still works.
    await sending.run_feedback_jobs()
    stored = await raw("SELECT message, status FROM outbox_message WHERE kind = 'feedback_request'")
    assert [bytes(r["message"]) for r in stored] == [b"", b""] and {r["status"] for r in stored} == {"sent"}
    assert (await answering.open_form(token)).open
