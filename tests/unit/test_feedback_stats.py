"""Feedback aggregation: figures add up, and no group smaller than min_group is ever exposed."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.feedback_stats import (
    AnswerRow,
    GroupSizes,
    GroupSummary,
    QuestionSpec,
    QuestionSummary,
    Suppressed,
    SurveySummary,
    decide_release,
    export_answers,
    release_for,
    summarise,
    summarise_question,
    usable_answer,
)

SETTINGS = settings(max_examples=150, deadline=None)

SATISFACTION = QuestionSpec(1, "scale", ("とても不満", "不満", "ふつう", "満足", "とても満足"))
FORMAT = QuestionSpec(2, "single", ("対面", "オンライン", "どちらでも"))
TOPICS = QuestionSpec(3, "multi", ("仕事", "子育て", "家事", "お金"))
COMMENT = QuestionSpec(4, "text")
QUESTIONS = (SATISFACTION, FORMAT, TOPICS, COMMENT)

scale_values = st.one_of(st.integers(1, 5), st.integers(1, 5), st.sampled_from([0, 6, True, "3", None]))
single_values = st.one_of(st.sampled_from(FORMAT.options), st.sampled_from(["削除済み", 1]))
multi_values = st.one_of(
    st.lists(st.sampled_from(TOPICS.options), max_size=6).map(tuple),
    st.just(("その他",)),
    st.just("仕事"),
)


@st.composite
def answer_rows(draw: st.DrawFn, max_size: int = 40) -> list[AnswerRow]:
    count = draw(st.integers(0, max_size))
    groups = draw(st.lists(st.sampled_from(["A", "B", "C", "D", "E"]), min_size=count, max_size=count))
    rows = []
    for index, group in enumerate(groups):
        values: dict[int, Any] = {}
        if draw(st.booleans()) or draw(st.booleans()):
            values[1] = draw(scale_values)
        if draw(st.booleans()):
            values[2] = draw(single_values)
        if draw(st.booleans()):
            values[3] = draw(multi_values)
        if draw(st.booleans()):
            # Unique text per respondent, so a leak can be traced back to its author.
            values[4] = draw(st.sampled_from([f"comment-{index}", f"  comment-{index}\n", "", "   "]))
        rows.append(AnswerRow(respondent_key=f"r{index}", group=group, values=values))
    return rows


surveys = st.tuples(answer_rows(), st.integers(0, 20), st.integers(1, 8))


def _shown_scopes(summary: SurveySummary) -> list[tuple[int, tuple[QuestionSummary, ...]]]:
    scopes = [] if summary.suppressed else [(summary.respondents, summary.questions)]
    scopes += [(g.respondents, g.questions) for g in summary.groups.values() if isinstance(g, GroupSummary)]
    return scopes


@SETTINGS
@given(surveys)
def test_counts_add_up_to_respondents_for_scale_and_single(survey: tuple[list[AnswerRow], int, int]) -> None:
    rows, extra_invited, min_group = survey
    summary = summarise(QUESTIONS, rows, invited=len(rows) + extra_invited, min_group=min_group)
    for scope_respondents, questions in _shown_scopes(summary):
        for question in questions:
            assert question.respondents <= scope_respondents
            if question.kind in ("scale", "single"):
                assert sum(count for _, count in question.counts) == question.respondents


@SETTINGS
@given(surveys)
def test_multi_counts_are_bounded_by_respondents(survey: tuple[list[AnswerRow], int, int]) -> None:
    rows, extra_invited, min_group = survey
    summary = summarise(QUESTIONS, rows, invited=len(rows) + extra_invited, min_group=min_group)
    for _, questions in _shown_scopes(summary):
        (topics,) = [q for q in questions if q.kind == "multi"]
        total_ticks = sum(count for _, count in topics.counts)
        assert topics.respondents <= total_ticks <= topics.respondents * len(TOPICS.options)
        assert all(count <= topics.respondents for _, count in topics.counts)


@SETTINGS
@given(surveys)
def test_small_groups_are_always_suppressed(survey: tuple[list[AnswerRow], int, int]) -> None:
    rows, extra_invited, min_group = survey
    summary = summarise(QUESTIONS, rows, invited=len(rows) + extra_invited, min_group=min_group)
    sizes = {row.group: sum(1 for r in rows if r.group == row.group) for row in rows}
    assert set(summary.groups) == set(sizes)
    for group, size in sizes.items():
        if size < min_group:
            assert isinstance(summary.groups[group], Suppressed)
    for group_summary in summary.groups.values():
        if isinstance(group_summary, GroupSummary):
            assert group_summary.respondents >= min_group
            assert group_summary.respondents == sizes[group_summary.group]


@SETTINGS
@given(surveys)
def test_total_minus_shown_groups_never_isolates_a_small_set(
    survey: tuple[list[AnswerRow], int, int],
) -> None:
    rows, extra_invited, min_group = survey
    summary = summarise(QUESTIONS, rows, invited=len(rows) + extra_invited, min_group=min_group)
    if summary.suppressed:
        assert all(isinstance(g, Suppressed) for g in summary.groups.values())
        return
    shown = sum(g.respondents for g in summary.groups.values() if isinstance(g, GroupSummary))
    withheld = summary.respondents - shown
    assert withheld == 0 or withheld >= min_group


@SETTINGS
@given(surveys)
def test_totals_are_consistent_with_groups(survey: tuple[list[AnswerRow], int, int]) -> None:
    rows, extra_invited, min_group = survey
    summary = summarise(QUESTIONS, rows, invited=len(rows) + extra_invited, min_group=min_group)
    assert summary.respondents == len(rows)
    if summary.suppressed:
        assert len(rows) < min_group
        assert all(
            q.suppressed and not q.counts and not q.texts and q.mean is None for q in summary.questions
        )
        return
    shown = [g for g in summary.groups.values() if isinstance(g, GroupSummary)]
    for index, (spec, total) in enumerate(zip(QUESTIONS, summary.questions, strict=True)):
        exact = summarise_question(spec, rows)
        # A question is withheld for the whole survey only when it has answers, but fewer than min_group.
        assert total.suppressed == (0 < exact.respondents < min_group)
        if total.suppressed:
            assert all(g.questions[index].respondents == 0 for g in shown)
            continue
        assert total == exact
        per_group = [g.questions[index] for g in shown]
        assert sum(q.respondents for q in per_group) <= total.respondents
        for option_index, (label, count) in enumerate(total.counts):
            assert sum(q.counts[option_index][1] for q in per_group) <= count
            assert all(q.counts[option_index][0] == label for q in per_group)
        if len(shown) == len(summary.groups):
            assert sum(q.respondents for q in per_group) == total.respondents


@SETTINGS
@given(surveys)
def test_response_rate_is_a_fraction(survey: tuple[list[AnswerRow], int, int]) -> None:
    rows, extra_invited, min_group = survey
    invited = len(rows) + extra_invited
    summary = summarise(QUESTIONS, rows, invited=invited, min_group=min_group)
    assert 0.0 <= summary.response_rate <= 1.0
    assert summary.response_rate == (len(rows) / invited if invited else 0.0)


@SETTINGS
@given(surveys)
def test_texts_of_suppressed_groups_are_not_exposed_by_any_group(
    survey: tuple[list[AnswerRow], int, int],
) -> None:
    rows, extra_invited, min_group = survey
    summary = summarise(QUESTIONS, rows, invited=len(rows) + extra_invited, min_group=min_group)
    hidden_groups = {name for name, g in summary.groups.items() if isinstance(g, Suppressed)}
    hidden_texts = {str(r.values.get(4, "")).strip() for r in rows if r.group in hidden_groups} - {""}
    for group_summary in summary.groups.values():
        if isinstance(group_summary, GroupSummary):
            for question in group_summary.questions:
                assert not hidden_texts & set(question.texts)
    if summary.suppressed:
        assert all(not q.texts for q in summary.questions)


@SETTINGS
@given(answer_rows(max_size=25))
def test_min_group_of_one_shows_everything(rows: list[AnswerRow]) -> None:
    summary = summarise(QUESTIONS, rows, invited=len(rows), min_group=1)
    assert all(isinstance(g, GroupSummary) for g in summary.groups.values())
    assert summary.suppressed == (not rows)


def _rows(group: str, scores: list[int], start: int = 0) -> list[AnswerRow]:
    return [AnswerRow(f"{group}{start + i}", group, {1: score}) for i, score in enumerate(scores)]


def test_scale_mean_median_and_labelled_counts() -> None:
    rows = _rows("A", [5, 4, 4, 2, 1, 5])
    summary = summarise([SATISFACTION], rows, invited=10)
    (question,) = summary.questions
    assert question.counts == (("とても不満", 1), ("不満", 1), ("ふつう", 0), ("満足", 2), ("とても満足", 2))
    assert question.mean == pytest.approx(21 / 6)
    assert question.median == 4.0
    assert question.respondents == 6
    assert summary.response_rate == pytest.approx(0.6)
    assert not summary.suppressed and not question.suppressed


def test_unlabelled_scale_uses_digits_and_even_median_averages() -> None:
    question = summarise_question(QuestionSpec(1, "scale"), _rows("A", [1, 2, 4, 5]))
    assert [label for label, _ in question.counts] == ["1", "2", "3", "4", "5"]
    assert question.median == 3.0


def test_single_multi_and_text_questions() -> None:
    rows = [
        AnswerRow("r1", "A", {2: "対面", 3: ("仕事", "子育て"), 4: "  とても良かった  "}),
        AnswerRow("r2", "A", {2: "対面", 3: ("子育て", "子育て"), 4: ""}),
        AnswerRow("r3", "A", {2: "オンライン", 3: (), 4: "   "}),
        AnswerRow("r4", "A", {3: ("お金", "その他"), 4: "家事の話が聞きたい"}),
        AnswerRow("r5", "A", {2: "削除済み"}),
    ]
    summary = summarise(QUESTIONS, rows, invited=5, min_group=1)  # no threshold: every figure is shown
    single, multi, text = summary.questions[1:]
    assert single.counts == (("対面", 2), ("オンライン", 1), ("どちらでも", 0))
    assert (single.respondents, single.ignored) == (3, 1)
    assert multi.counts == (("仕事", 1), ("子育て", 2), ("家事", 0), ("お金", 1))
    assert (multi.respondents, multi.ignored) == (3, 1)
    assert text.texts == ("とても良かった", "家事の話が聞きたい")
    assert text.respondents == 2
    assert single.mean is None and text.counts == ()


def test_invalid_scale_values_are_ignored_not_counted() -> None:
    rows = [AnswerRow(f"r{i}", "A", {1: value}) for i, value in enumerate([3, True, 0, 6, "4", 5])]
    question = summarise_question(SATISFACTION, rows)
    assert question.respondents == 2
    assert question.ignored == 4
    assert question.mean == 4.0


def test_small_total_shows_only_the_count() -> None:
    rows = [AnswerRow(f"r{i}", "A", {1: 5, 4: f"secret {i}"}) for i in range(4)]
    summary = summarise(QUESTIONS, rows, invited=30)
    assert summary.suppressed
    assert summary.respondents == 4
    assert summary.groups == {"A": Suppressed("A", "small_group")}
    for question in summary.questions:
        assert question.suppressed
        assert (question.respondents, question.counts, question.texts, question.mean) == (0, (), (), None)


def test_small_group_is_suppressed_and_complementary_group_too() -> None:
    # B alone (2) would be recoverable as total minus A; so the next smallest group C is withheld as well.
    rows = _rows("A", [5] * 8) + _rows("B", [1, 1]) + _rows("C", [3] * 6)
    summary = summarise([SATISFACTION], rows, invited=20)
    assert summary.groups["B"] == Suppressed("B", "small_group")
    assert summary.groups["C"] == Suppressed("C", "complementary")
    group_a = summary.groups["A"]
    assert isinstance(group_a, GroupSummary)
    assert group_a.questions[0].mean == 5.0
    assert summary.questions[0].counts[0] == ("とても不満", 2)


def test_no_complementary_suppression_when_small_groups_together_are_large_enough() -> None:
    rows = _rows("A", [5] * 6) + _rows("B", [1] * 3) + _rows("C", [2] * 3)
    summary = summarise([SATISFACTION], rows, invited=20)
    assert summary.groups["A"] == summarise([SATISFACTION], _rows("A", [5] * 6), invited=6).groups["A"]
    assert summary.groups["B"] == Suppressed("B", "small_group")
    assert summary.groups["C"] == Suppressed("C", "small_group")


def test_group_by_false_gives_no_groups() -> None:
    summary = summarise([SATISFACTION], _rows("A", [3] * 6), invited=6, group_by=False)
    assert summary.groups == {}


def test_invalid_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="once"):
        summarise([SATISFACTION], [AnswerRow("r", "A"), AnswerRow("r", "B")], invited=5)
    with pytest.raises(ValueError, match="invited"):
        summarise([SATISFACTION], _rows("A", [1, 2]), invited=1)
    with pytest.raises(ValueError, match="min_group"):
        summarise([SATISFACTION], [], invited=0, min_group=0)
    with pytest.raises(ValueError, match="5 labels"):
        QuestionSpec(1, "scale", ("a", "b"))
    with pytest.raises(ValueError, match="kind"):
        QuestionSpec(1, "rating")
    with pytest.raises(ValueError, match="options"):
        QuestionSpec(1, "single")


def test_no_invitations_gives_zero_rate() -> None:
    summary = summarise(QUESTIONS, [], invited=0)
    assert summary.response_rate == 0.0
    assert summary.suppressed


@SETTINGS
@given(answer_rows(max_size=20))
def test_usable_answers_are_what_the_figures_count(rows: list[AnswerRow]) -> None:
    # The export lists exactly the answers the figures count, so it shows nothing the figures do not.
    for question in QUESTIONS:
        usable = [usable_answer(question, row.values.get(question.id)) for row in rows]
        assert sum(value is not None for value in usable) == summarise_question(question, rows).respondents


def test_release_decided_from_sizes_alone() -> None:
    def sizes(respondents: int, **answers: int) -> GroupSizes:
        return GroupSizes(respondents, {int(k[1:]): v for k, v in answers.items()})

    # The report: A 6 and B 2. Showing A and the total gives B by subtraction, so A goes.
    release = decide_release({"A": sizes(6, q1=6), "B": sizes(2, q1=2)}, [1])
    assert (release.survey, release.groups, dict(release.withheld)) == (
        True, frozenset(), {"A": "complementary", "B": "small_group"})
    # With a third large group, withholding the smaller of the two is enough: the rest is B + A = 8.
    release = decide_release({"A": sizes(6, q1=6), "B": sizes(2, q1=2), "C": sizes(7, q1=7)}, [1])
    assert release.groups == {"C"} and release.withheld == {"A": "complementary", "B": "small_group"}
    # Per question: C has 7 people but only 3 answered question 2, so C is withheld. The rest would be
    # 7 people, but only 3 answers to question 2: so A (the smallest with answers to it) goes too.
    release = decide_release({"A": sizes(8, q1=8, q2=8), "B": sizes(9, q1=9, q2=9), "C": sizes(7, q1=7, q2=3)},
                             [1, 2])
    assert release.groups == {"B"} and release.withheld == {"A": "complementary", "C": "small_group"}
    assert release.shows(None, 1) and release.shows(None, 2)
    # A question with too few answers overall is withheld for the survey; the survey itself is shown.
    release = decide_release({"A": sizes(9, q1=9, q2=3)}, [1, 2])
    assert release.shows(None) and release.shows(None, 1) and not release.shows(None, 2)
    assert release.withheld == {"A": "small_group"}
    # No threshold (named surveys): everything there is.
    release = decide_release({"A": sizes(1, q1=1), "B": sizes(2, q1=0)}, [1], min_group=1)
    assert release.groups == {"A", "B"} and release.shows(None, 1) and not release.withheld


def test_event_filter_shows_what_the_event_table_shows_and_nothing_else() -> None:
    rows = _rows("A", [5] * 8) + _rows("B", [1, 1]) + _rows("C", [3] * 6) + _rows("D", [4] * 7)
    release = release_for([SATISFACTION], rows)
    whole = summarise([SATISFACTION], rows, invited=30, release=release)
    for group in "ABCD":
        scoped = summarise([SATISFACTION], rows, invited=30, scope=group, release=release, group_by=False)
        listed = whole.groups[group]
        assert scoped.suppressed == isinstance(listed, Suppressed)
        if isinstance(listed, GroupSummary):
            assert scoped.questions == listed.questions and scoped.respondents == listed.respondents
        else:
            assert all(q.suppressed and not q.counts for q in scoped.questions)
            assert scoped.respondents == sum(1 for r in rows if r.group == group)  # how many, not what


def test_export_names_only_shown_groups_and_blanks_withheld_questions() -> None:
    rows = [AnswerRow(f"a{i}", "A", {1: 4, 4: "よかった" if i < 2 else ""}) for i in range(6)]
    rows += [AnswerRow(f"b{i}", "B", {1: 2}) for i in range(7)]
    rows += [AnswerRow(f"c{i}", "C", {1: 1}) for i in range(2)]
    release = release_for([SATISFACTION, COMMENT], rows)
    # A (6 people, 2 comments) and C (2 people) are withheld, B is shown; 2 comments overall: withheld.
    assert release.groups == {"B"} and release.withheld == {"A": "small_group", "C": "small_group"}
    assert not release.shows(None, COMMENT.id) and release.shows(None, SATISFACTION.id)
    exported = export_answers([SATISFACTION, COMMENT], rows, release)
    assert exported.filled == (SATISFACTION.id,)
    assert Counter(row.group for row in exported.rows) == {"B": 7, None: 8}
    assert all(set(row.values) <= {SATISFACTION.id} for row in exported.rows)
