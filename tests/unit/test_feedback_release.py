"""No reader of an anonymous survey, alone or combined with the others, gives away a group under the threshold.

A coordinator can read, for one survey: the whole survey's figures with the table per event (results page,
series view, printable summary, API), each event's figures (``?event=``), and the answer exports (whole
survey and per event, with their "イベント" column). Every figure shown is a sum over a set of groups, so a
reader learns, per question, the figures of every set of groups whose indicator vector lies in the
(rational) span of the shown sets: sums, differences and any other linear arithmetic on shown counts. The
property: no such set has between 1 and min_group - 1 answers to the question.

The negative control runs the same readers and the same check with the naive decision (withhold only the
groups under the threshold) and requires that the check finds a leak on some generated survey: proof that
the check bites.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from fractions import Fraction
from itertools import combinations
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from events.feedback_stats import (
    DEFAULT_MIN_GROUP,
    AnswerRow,
    GroupSummary,
    QuestionSpec,
    Release,
    export_answers,
    group_sizes,
    release_for,
    summarise,
    summarise_question,
    usable_answer,
)

SCALE = QuestionSpec(1, "scale")
FORMAT = QuestionSpec(2, "single", ("対面", "オンライン", "どちらでも"))
TOPICS = QuestionSpec(3, "multi", ("仕事", "子育て", "家事", "お金"))
COMMENT = QuestionSpec(4, "text")
QUESTIONS = (SCALE, FORMAT, TOPICS, COMMENT)

Visible = dict[int, list[frozenset[str]]]  # question id -> the sets of groups whose figures a reader sees


def _value(question: QuestionSpec, draw: st.DrawFn, index: int) -> Any:
    if question.kind == "scale":
        return draw(st.integers(1, 5))
    if question.kind == "single":
        return draw(st.sampled_from(question.options))
    if question.kind == "multi":
        return tuple(draw(st.lists(st.sampled_from(question.options), min_size=1, max_size=3, unique=True)))
    return f"comment-{index}"


@st.composite
def surveys(draw: st.DrawFn) -> tuple[list[AnswerRow], int]:
    """Up to 6 events of 0 to 12 answers, each event skipping some questions more than others."""
    min_group = draw(st.sampled_from([DEFAULT_MIN_GROUP] * 4 + [2, 3, 4, 6]))
    sizes = draw(st.lists(st.one_of(st.integers(1, min_group + 1), st.integers(0, 12)), min_size=1, max_size=6))
    rows: list[AnswerRow] = []
    for group_index, size in enumerate(sizes):
        group = f"event{group_index}"
        optional = draw(st.sets(st.sampled_from([q.id for q in QUESTIONS])))  # often skipped in this group
        for _ in range(size):
            index = len(rows)
            values = {q.id: _value(q, draw, index) for q in QUESTIONS if q.id not in optional or draw(st.booleans())}
            rows.append(AnswerRow(f"r{index}", group, values))
    return rows, min_group


def _rows(group: str, count: int, start: int = 0) -> list[AnswerRow]:
    return [AnswerRow(f"{group}{start + i}", group, {q.id: v for q, v in zip(QUESTIONS, (4, "対面", ("仕事",), f"c{i}"),
                                                                              strict=True)})
            for i in range(count)]


# The defect as reported: event A with 6 answers, event B with 2.
DEFECT = (_rows("A", 6) + _rows("B", 2, start=100), DEFAULT_MIN_GROUP)


def naive_release(rows: Sequence[AnswerRow], min_group: int) -> Release:
    """The decision of the defect: withhold only the groups under the threshold (no complements, no
    per-question sizes)."""
    sizes = group_sizes(QUESTIONS, rows)
    survey = len(rows) >= min_group
    shown = frozenset(g for g, s in sizes.items() if s.respondents >= min_group) if survey else frozenset()
    return Release(min_group, survey, frozenset(q.id for q in QUESTIONS) if survey else frozenset(), shown,
                   {g: "small_group" for g in sizes if g not in shown})


def visible_sets(rows: Sequence[AnswerRow], release: Release) -> Visible:
    """Run every reader under `release` and note which sets of groups each shown figure covers, checking on
    the way that each shown figure is the true figure of that set (so the model of the readers is right)."""
    groups = sorted({row.group for row in rows})
    everyone = frozenset(groups)
    members = {g: [row for row in rows if row.group == g] for g in groups}
    visible: Visible = {q.id: [] for q in QUESTIONS}

    def saw(question: QuestionSpec, shown: Any, covered: frozenset[str]) -> None:
        assert shown == summarise_question(question, [row for row in rows if row.group in covered])
        visible[question.id].append(covered)

    # Results page, series view, printable summary, API: the whole survey, and its table per event.
    whole = summarise(QUESTIONS, rows, invited=len(rows), group_by=True, release=release)
    for question, figures in zip(QUESTIONS, whole.questions, strict=True):
        if not figures.suppressed:
            saw(question, figures, everyone)
    for group, group_summary in whole.groups.items():
        if isinstance(group_summary, GroupSummary):
            for question, figures in zip(QUESTIONS, group_summary.questions, strict=True):
                saw(question, figures, frozenset({group}))
    # The same pages (and the API) filtered to one event.
    for group in groups:
        scoped = summarise(QUESTIONS, rows, invited=len(rows), group_by=False, scope=group, release=release)
        for question, figures in zip(QUESTIONS, scoped.questions, strict=True):
            if not figures.suppressed:
                saw(question, figures, frozenset({group}))
    # Exports, whole and per event: refused unless the scope is shown (events.feedback.results).
    for scope in [None, *groups]:
        if not release.shows(scope):
            continue
        exported = export_answers(QUESTIONS, rows, release, scope=scope)
        by_label: dict[str | None, set[str]] = {}
        for row, answer in zip(exported.rows, [r for r in rows if scope is None or r.group == scope], strict=True):
            assert row.respondent_key == answer.respondent_key
            assert row.group in (None, answer.group)  # a row names its own event or none
            by_label.setdefault(row.group, set()).add(answer.group)
        for question in QUESTIONS:
            if question.id not in exported.filled:
                assert all(question.id not in row.values for row in exported.rows)
                continue
            for label, covered in by_label.items():
                values = [row.values.get(question.id) for row in exported.rows if row.group == label]
                truth = [usable_answer(question, m.values.get(question.id)) for g in covered for m in members[g]]
                assert Counter(map(repr, values)) == Counter(map(repr, truth))
                visible[question.id].append(frozenset(covered))
    return visible


def _in_span(vectors: Iterable[Sequence[int]], target: Sequence[int]) -> bool:
    """Is `target` a rational combination of `vectors`? (Gaussian elimination, exact.)"""
    basis: list[list[Fraction]] = []
    pivots: list[int] = []

    def reduce(vector: Sequence[int | Fraction]) -> list[Fraction]:
        reduced = [Fraction(v) for v in vector]
        for row, pivot in zip(basis, pivots, strict=True):
            if reduced[pivot]:
                factor = reduced[pivot] / row[pivot]
                reduced = [a - factor * b for a, b in zip(reduced, row, strict=True)]
        return reduced

    for vector in vectors:
        reduced = reduce(vector)
        pivot = next((i for i, v in enumerate(reduced) if v), None)
        if pivot is not None:
            basis.append(reduced)
            pivots.append(pivot)
    return not any(reduce(target))


def leaks(rows: Sequence[AnswerRow], min_group: int, visible: Visible) -> list[tuple[int, tuple[str, ...], int]]:
    """Every (question, set of groups, answers) that shown figures determine and that is under the threshold."""
    groups = sorted({row.group for row in rows})
    found = []
    for question in QUESTIONS:
        answers = {g: summarise_question(question, [r for r in rows if r.group == g]).respondents for g in groups}
        shown = {tuple(int(g in covered) for g in groups) for covered in visible[question.id]}
        for size in range(1, len(groups) + 1):
            for chosen in combinations(groups, size):
                count = sum(answers[g] for g in chosen)
                if 0 < count < min_group and _in_span(shown, [int(g in chosen) for g in groups]):
                    found.append((question.id, chosen, count))
    return found


def test_no_reader_combination_recovers_a_small_group_and_the_naive_rule_would() -> None:
    tally: Counter[str] = Counter()

    @settings(max_examples=600, deadline=None, database=None)
    @given(surveys())
    @example(DEFECT)
    def check(survey: tuple[list[AnswerRow], int]) -> None:
        rows, min_group = survey
        release = release_for(QUESTIONS, rows, min_group=min_group)
        assert leaks(rows, min_group, visible_sets(rows, release)) == []
        tally["examples"] += 1
        tally["groups withheld"] += len(release.withheld)
        tally["complementary"] += sum(1 for reason in release.withheld.values() if reason == "complementary")
        # Negative control: the same readers and the same check, with the naive decision.
        naive_leaks = leaks(rows, min_group, visible_sets(rows, naive_release(rows, min_group)))
        if naive_leaks:
            tally["naive leaks"] += 1
        if survey == DEFECT:
            assert (1, ("B",), 2) in naive_leaks  # B = all − A, the subtraction of the report

    check()
    print(f"\nrelease property: {dict(tally)}")
    assert tally["naive leaks"] > 0, "the negative control found no leak: the check does not bite"
    assert tally["complementary"] > 0, "no example needed complementary suppression"


def test_the_reported_defect_is_fixed() -> None:
    rows, min_group = DEFECT
    release = release_for(QUESTIONS, rows, min_group=min_group)
    # The total and A must not both be readable: A is withheld, the total (8 people) stays.
    assert release.shows(None) and not release.shows("A") and not release.shows("B")
    assert dict(release.withheld) == {"A": "complementary", "B": "small_group"}
    assert summarise(QUESTIONS, rows, invited=8, scope="B", release=release).suppressed
    assert summarise(QUESTIONS, rows, invited=8, scope="A", release=release).suppressed
    assert {row.group for row in export_answers(QUESTIONS, rows, release).rows} == {None}
