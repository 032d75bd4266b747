"""Survey results against a real database: one release decision for every reader, and the named-survey rule.

The report: "Anonymous survey results are withheld for groups under 5, but 'all events' and 'event A' are
both shown, so event B's counts follow by subtraction. For a named survey, results are withheld under 5
while the CSV on the same page exports every answer."
"""

from __future__ import annotations

import pytest

from events import audit
from events.access import Actor
from events.core.tables import AuditEntry
from events.errors import Conflict
from events.feedback import answering, results, sending, surveys
from events.feedback.tables import FeedbackAnswer
from tests.conftest import make_person
from tests.service.test_feedback_service import (
    full_answers,
    make_event,
    register,
    students,
    tokens_by_recipient,
)

SERIES = "2026ライフデザイン講座"


async def series_survey(sessions: dict[str, tuple[int, int]], *, anonymous: bool = True,
                        comments: int | None = None) -> tuple[int, dict[str, int]]:
    """A series survey over events named by `sessions` (name -> (people asked, people answering)); with
    `comments`, only that many respondents of each event write a comment."""
    events = {}
    for hours, (name, (asked, _answering)) in enumerate(sessions.items()):
        events[name] = await make_event(series=SERIES, title=f"講座{name}", ended_hours_ago=5 + hours)
        for person in await students(asked, prefix=f"{name.lower()}-"):
            await register(events[name], person, "confirmed")
    survey_id = await surveys.create_survey(audience="seminar_student", template="seminar_student", series=SERIES,
                                            anonymous=anonymous)
    await sending.run_feedback_jobs()
    tokens = await tokens_by_recipient()
    survey = await surveys.get_survey(survey_id)
    comment = f"q{survey['questions'][-1]['id']}"
    for name, (_asked, answering_count) in sessions.items():
        for i in range(answering_count):
            form = full_answers(survey, i % 5)
            form[comment] = [f"{name}の感想{i}"] if comments is None or i < comments else []
            await answering.submit_answers(tokens[f"{name.lower()}-{i}@example.jp"], form)
    return survey_id, events


async def coordinator() -> Actor:
    person = await make_person("coordinator", "coord@example.jp", name="担当 花子")
    return Actor(person, frozenset({"coordinator"}), "127.0.0.1")


def shown_questions(outcome: dict) -> list[int]:
    return [q["id"] for q in outcome["questions"] if not q["summary"].suppressed]


async def test_the_reported_subtraction_is_closed_in_every_reader(db):
    # Event A: 6 answers; event B: 5 asked (so its event is kept on the answers), 2 answers.
    survey_id, events = await series_survey({"A": (6, 6), "B": (5, 2)})
    assert {r["event"] for r in await FeedbackAnswer.select(FeedbackAnswer.event)} == set(events.values())
    staff = await coordinator()
    whole = await results.survey_results(survey_id, actor=staff)
    only_a = await results.survey_results(survey_id, actor=staff, event_id=events["A"])
    only_b = await results.survey_results(survey_id, actor=staff, event_id=events["B"])
    # The total stays (8 people); A is withheld, since the total minus A is B.
    assert not whole["summary"].suppressed and whole["summary"].respondents == 8
    assert shown_questions(whole)
    assert sorted((g["name"].split()[-1], g["suppressed"], g["reason"]) for g in whole["groups"]) == [
        ("講座A", True, "complementary"), ("講座B", True, "small_group")]
    assert only_a["summary"].suppressed and only_a["withheld"] == "complementary" and not shown_questions(only_a)
    assert only_b["summary"].suppressed and only_b["withheld"] == "small_group" and not shown_questions(only_b)
    assert all(q["chart"] == "" and q["texts"] == [] for q in only_a["questions"] + only_b["questions"])
    # How many answered is not withheld; what they answered is.
    assert (only_a["responded"], only_b["responded"]) == (6, 2)
    # The series view reads the same decision.
    (series,) = await results.series_results(actor=staff, series=SERIES)
    assert shown_questions(series) == shown_questions(whole)
    # Exports: the whole survey, with no row naming a withheld event; neither event on its own.
    export = await results.export_answers(survey_id, actor=staff)
    assert len(export.rows) == 8 and {row[1] for row in export.rows} == {results.WITHHELD_EVENT}
    for name in ("A", "B"):
        with pytest.raises(Conflict) as refused:
            await results.export_answers(survey_id, actor=staff, event_id=events[name])
        assert refused.value.code == "feedback_event_withheld"


async def test_a_third_event_lets_one_be_shown_and_the_export_names_only_it(db):
    survey_id, events = await series_survey({"A": (6, 6), "B": (5, 2), "C": (7, 7)})
    staff = await coordinator()
    whole = await results.survey_results(survey_id, actor=staff)
    groups = {g["name"].split()[-1]: g for g in whole["groups"]}
    # B (2) needs company of at least 3 more: A, the smaller of the two, is withheld with it; C is shown.
    assert [name for name, g in sorted(groups.items()) if not g["suppressed"]] == ["講座C"]
    assert groups["講座A"]["reason"] == "complementary" and groups["講座B"]["reason"] == "small_group"
    assert groups["講座C"]["respondents"] == 7
    only_c = await results.survey_results(survey_id, actor=staff, event_id=events["C"])
    assert not only_c["summary"].suppressed and only_c["summary"].respondents == 7
    export = await results.export_answers(survey_id, actor=staff)
    named = [row[1] for row in export.rows]
    assert sum(1 for n in named if n.endswith("講座C")) == 7 and named.count(results.WITHHELD_EVENT) == 8
    assert len((await results.export_answers(survey_id, actor=staff, event_id=events["C"])).rows) == 7


async def test_a_question_few_answered_is_withheld_everywhere(db):
    # 12 people answer, but only 1 per event writes a comment (3 in all): the comments stay hidden.
    survey_id, events = await series_survey({"A": (6, 6), "B": (6, 6)}, comments=1)
    staff = await coordinator()
    survey = await surveys.get_survey(survey_id)
    comment = survey["questions"][-1]
    whole = await results.survey_results(survey_id, actor=staff)
    by_id = {q["id"]: q for q in whole["questions"]}
    assert by_id[comment["id"]]["summary"].suppressed and by_id[comment["id"]]["texts"] == []
    assert not by_id[survey["questions"][0]["id"]]["summary"].suppressed
    # Each event had 1 comment of 6 respondents: neither event can be shown on its own.
    assert all(g["suppressed"] for g in whole["groups"])
    export = await results.export_answers(survey_id, actor=staff)
    assert export.header[-1] == comment["text"] + results.WITHHELD_COLUMN
    assert all(row[-1] is None for row in export.rows)
    assert "の感想" not in export.content.decode("utf-8-sig")


async def test_named_survey_shows_and_exports_everything_and_audits_both(db):
    survey_id, events = await series_survey({"A": (4, 3), "B": (3, 2)}, anonymous=False)
    staff = await coordinator()
    whole = await results.survey_results(survey_id, actor=staff)
    only_b = await results.survey_results(survey_id, actor=staff, event_id=events["B"])
    # No threshold: 5 answers in all, 2 for B, every figure shown.
    assert not whole["summary"].suppressed and not only_b["summary"].suppressed
    assert all(not g["suppressed"] for g in whole["groups"]) and len(whole["groups"]) == 2
    assert only_b["summary"].respondents == 2 and len(shown_questions(only_b)) == len(whole["questions"])
    assert sorted(only_b["questions"][-1]["texts"]) == ["Bの感想0", "Bの感想1"]
    # The export agrees with the page: the same answers, with names, for the whole survey and for B.
    export = await results.export_answers(survey_id, actor=staff)
    assert len(export.rows) == 5 and export.header[2:4] == ["氏名", "メールアドレス"]
    export_b = await results.export_answers(survey_id, actor=staff, event_id=events["B"], fmt="xlsx")
    assert len(export_b.rows) == 2 and sorted(row[-1] for row in export_b.rows) == ["Bの感想0", "Bの感想1"]
    comment_column = {row[-1] for row in export.rows}
    assert comment_column == {text for q in whole["questions"][-1:] for text in q["texts"]}
    entries = await AuditEntry.select().where(AuditEntry.subject_id == str(survey_id)).order_by(AuditEntry.id).output(
        load_json=True)
    assert [(e["action"], e["actor"], e["client"]) for e in entries] == [
        ("staff_viewed_feedback", staff.person_id, "127.0.0.1"), ("staff_viewed_feedback", staff.person_id, "127.0.0.1"),
        ("staff_exported_feedback", staff.person_id, "127.0.0.1"), ("staff_exported_feedback", staff.person_id, "127.0.0.1"),
    ]
    assert entries[1]["detail"]["event"] == events["B"] and entries[1]["detail"]["answers"] == 2
    assert entries[3]["detail"] == {"format": "xlsx", "event": events["B"], "rows": 2, "named": True}
    assert audit.label("staff_viewed_feedback") != "staff_viewed_feedback"


async def test_named_reads_do_not_happen_without_their_audit_entry(db, monkeypatch):
    survey_id, _events = await series_survey({"A": (2, 1)}, anonymous=False)
    staff = await coordinator()

    async def broken(*args, **kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(RuntimeError):
        await results.survey_results(survey_id, actor=staff)
    with pytest.raises(RuntimeError):
        await results.export_answers(survey_id, actor=staff)
    monkeypatch.undo()
    assert await AuditEntry.count().where(AuditEntry.action.like("staff_%_feedback")) == 0


async def test_anonymous_views_are_not_audited_but_exports_are(db):
    survey_id, _events = await series_survey({"A": (6, 6)})
    staff = await coordinator()
    await results.survey_results(survey_id, actor=staff)
    await results.export_answers(survey_id, actor=staff)
    actions = [e["action"] for e in await AuditEntry.select(AuditEntry.action)]
    assert actions.count("staff_viewed_feedback") == 0 and actions.count("staff_exported_feedback") == 1


async def test_results_need_staff(db):
    survey_id, _events = await series_survey({"A": (1, 1)})
    student = Actor(None, frozenset({"student"}), "127.0.0.1")
    with pytest.raises(Exception) as refused:
        await results.survey_results(survey_id, actor=student)
    assert getattr(refused.value, "code", "") == "forbidden"
    with pytest.raises(Exception) as refused:
        await results.export_answers(survey_id, actor=student)
    assert getattr(refused.value, "code", "") == "forbidden"
