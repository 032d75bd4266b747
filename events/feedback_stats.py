"""Feedback survey aggregation: counts, means and medians per question, and which of them may be shown.

Pure: takes questions and answers as plain data, returns plain data.

The rule. A *group* is the respondents of one event (answers pooled from events too small to keep count as
one group); a *scope* is the whole survey or one group. With the threshold ``min_group``
(DEFAULT_MIN_GROUP = 5 for anonymous surveys; 1, i.e. none, for named ones), :func:`decide_release` decides
once per survey which scopes may show figures, and every reader (the results page with and without an
event filter, the series view, the printable summary, the API, the exports) shows those and no others. A
group is shown only if it has at least ``min_group`` respondents and every question it answered has at
least ``min_group`` answers; the whole survey shows a question only if the survey has at least
``min_group`` respondents and the question 0 or at least ``min_group`` answers. Every shown figure is thus
a sum over whole groups, so the only sets of people whose figures any sums and differences of shown
figures give are unions of shown groups, with or without *the rest* (the whole survey minus every shown
group); the rest is kept at 0 or at least ``min_group`` people for each question, by withholding further
groups (first the one with the fewest answers to the question at fault) until it is, so no derivable set
is ever smaller than ``min_group``. How many people answered (not what) is not withheld: the office knows
whom it asked and who replied. And no threshold hides what everyone in a shown scope has in common: if
all 30 chose 5, so did each of them.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

QuestionKind = Literal["scale", "single", "multi", "text"]
QUESTION_KINDS: frozenset[str] = frozenset({"scale", "single", "multi", "text"})
SCALE_VALUES: tuple[int, ...] = (1, 2, 3, 4, 5)
DEFAULT_MIN_GROUP = 5


@dataclass(frozen=True)
class QuestionSpec:
    """A survey question; for ``scale`` the options are the labels of 1..5 (empty means "1".."5")."""

    id: int
    kind: str
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in QUESTION_KINDS:
            raise ValueError(f"question {self.id}: unknown kind {self.kind!r}")
        if self.kind == "scale" and self.options and len(self.options) != len(SCALE_VALUES):
            raise ValueError(f"question {self.id}: a scale needs exactly 5 labels, got {len(self.options)}")
        if self.kind in ("single", "multi") and not self.options:
            raise ValueError(f"question {self.id}: a {self.kind} question needs options")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"question {self.id}: options must be distinct")

    @property
    def labels(self) -> tuple[str, ...]:
        """Display labels in order: the options, or "1".."5" for an unlabelled scale."""
        if self.kind == "scale" and not self.options:
            return tuple(str(value) for value in SCALE_VALUES)
        return self.options


@dataclass(frozen=True)
class AnswerRow:
    """One respondent's answers: question id -> int (scale) | str (single, text) | tuple[str, ...] (multi)."""

    respondent_key: str
    group: str
    values: Mapping[int, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QuestionSummary:
    """Figures for one question within one scope (the whole survey or one group).

    ``respondents`` counts those who gave a usable answer; ``ignored`` counts answers that wholly or partly
    did not fit the question (e.g. an option removed after answers came in): the unfitting parts are left
    out of every figure. When ``suppressed`` is true every figure is withheld: respondents and ignored
    read 0, counts and texts are empty, mean and median are None.
    """

    question_id: int
    kind: str
    respondents: int
    counts: tuple[tuple[str, int], ...]
    mean: float | None
    median: float | None
    texts: tuple[str, ...]
    suppressed: bool = False
    ignored: int = 0


@dataclass(frozen=True)
class GroupSummary:
    """A group large enough to be shown on its own."""

    group: str
    respondents: int
    questions: tuple[QuestionSummary, ...]


@dataclass(frozen=True)
class Suppressed:
    """A group whose figures are withheld; ``reason`` is "small_group" (it has fewer than min_group
    respondents, or answers to some question) or "complementary" (showing it would let the rest be computed)."""

    group: str
    reason: str


@dataclass(frozen=True)
class GroupSizes:
    """How many people a group has, and how many of them gave a usable answer to each question."""

    respondents: int
    answers: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Release:
    """Which scopes may show figures, decided once per survey by :func:`decide_release` (see the module doc).

    ``survey``: the whole survey may be shown at all; ``questions``: the questions whose survey-wide
    figures may be shown; ``groups``: the groups shown (for every question); ``withheld``: every other
    group, with its reason.
    """

    min_group: int
    survey: bool
    questions: frozenset[int]
    groups: frozenset[str]
    withheld: Mapping[str, str]

    def shows(self, scope: str | None = None, question_id: int | None = None) -> bool:
        """May ``scope`` (None: the whole survey; else a group) show its figures (for ``question_id``)?

        A shown group has 0 or at least min_group answers to every question, so it shows them all.
        """
        if scope is None:
            return self.survey and (question_id is None or question_id in self.questions)
        return scope in self.groups

    def reason(self, scope: str | None) -> str:
        """Why a scope is withheld ("" when it is shown); a group without answers is "small_group"."""
        if self.shows(scope):
            return ""
        return "small_group" if scope is None else self.withheld.get(scope, "small_group")


def decide_release(
    sizes: Mapping[str, GroupSizes], question_ids: Sequence[int], *, min_group: int = DEFAULT_MIN_GROUP
) -> Release:
    """The scopes that may be shown, given each group's sizes (see the module doc for the rule and why)."""
    if min_group < 1:
        raise ValueError(f"min_group must be at least 1, got {min_group}")

    def size(group: str, question_id: int | None) -> int:
        return sizes[group].respondents if question_id is None else sizes[group].answers.get(question_id, 0)

    def safe(count: int) -> bool:
        return count == 0 or count >= min_group

    total = {dim: sum(size(group, dim) for group in sizes) for dim in (None, *question_ids)}
    if total[None] < min_group:
        return Release(min_group, False, frozenset(), frozenset(), {group: "small_group" for group in sizes})
    questions = frozenset(q for q in question_ids if safe(total[q]))
    withheld = {
        group: "small_group"
        for group in sizes
        if sizes[group].respondents < min_group or not all(safe(size(group, q)) for q in question_ids)
    }
    shown = set(sizes) - set(withheld)
    # "The rest" (whole survey minus the shown groups) is readable by subtraction, per question.
    dimensions: tuple[int | None, ...] = (None, *sorted(questions))
    while True:
        at_fault = [dim for dim in dimensions if not safe(total[dim] - sum(size(g, dim) for g in shown))]
        if not at_fault:
            break
        dim = at_fault[0]
        # A shown group with answers to it exists: with none, the rest would be the (safe) total.
        group = min((g for g in shown if size(g, dim) > 0), key=lambda g: (size(g, dim), size(g, None), g))
        shown.remove(group)
        withheld[group] = "complementary"
    return Release(min_group, True, questions, frozenset(shown), dict(sorted(withheld.items())))


def group_sizes(questions: Sequence[QuestionSpec], answers: Sequence[AnswerRow]) -> dict[str, GroupSizes]:
    """Each group's respondents and usable answers per question (as :func:`summarise_question` counts them)."""
    by_group: dict[str, list[AnswerRow]] = {}
    for answer in answers:
        by_group.setdefault(answer.group, []).append(answer)
    return {
        group: GroupSizes(len(rows), {q.id: summarise_question(q, rows).respondents for q in questions})
        for group, rows in sorted(by_group.items())
    }


def release_for(
    questions: Sequence[QuestionSpec], answers: Sequence[AnswerRow], *, min_group: int = DEFAULT_MIN_GROUP
) -> Release:
    """:func:`decide_release` for these answers: the one decision every reader of a survey uses."""
    return decide_release(group_sizes(questions, answers), [q.id for q in questions], min_group=min_group)


@dataclass(frozen=True)
class SurveySummary:
    """One scope of a survey (``scope`` None: the whole survey). When ``suppressed`` only ``respondents``
    (and the rate) is shown; ``groups`` lists every group of the survey, shown or withheld."""

    invited: int
    respondents: int
    response_rate: float
    questions: tuple[QuestionSummary, ...]
    groups: Mapping[str, GroupSummary | Suppressed]
    suppressed: bool = False
    min_group: int = DEFAULT_MIN_GROUP
    scope: str | None = None
    release: Release | None = None


def summarise(
    questions: Sequence[QuestionSpec],
    answers: Sequence[AnswerRow],
    *,
    invited: int,
    group_by: bool = True,
    min_group: int = DEFAULT_MIN_GROUP,
    scope: str | None = None,
    release: Release | None = None,
) -> SurveySummary:
    """Figures per question for ``scope`` (None: the whole survey; else one group) and, if ``group_by``,
    per group, showing only what ``release`` allows (by default :func:`release_for` the answers).

    ``answers`` are always all the survey's answers: the release is decided on all of them, whichever
    scope is read. ``invited`` counts those asked within the scope. Free-text answers keep the order
    given, so pass answers in submission order, not sorted by group.
    """
    if min_group < 1:
        raise ValueError(f"min_group must be at least 1, got {min_group}")
    if invited < 0:
        raise ValueError(f"invited must not be negative, got {invited}")
    if len({question.id for question in questions}) != len(questions):
        raise ValueError("question ids must be unique")
    keys = [answer.respondent_key for answer in answers]
    if len(set(keys)) != len(keys):
        raise ValueError("each respondent may appear only once")
    release = release or release_for(questions, answers, min_group=min_group)
    scoped = [answer for answer in answers if scope is None or answer.group == scope]
    respondents = len(scoped)
    if respondents > invited:
        raise ValueError(f"{respondents} respondents but only {invited} invited")

    figures = tuple(
        summarise_question(question, scoped) if release.shows(scope, question.id) else _withheld(question)
        for question in questions
    )
    groups: dict[str, GroupSummary | Suppressed] = {}
    if group_by:
        by_group: dict[str, list[AnswerRow]] = {}
        for answer in answers:
            by_group.setdefault(answer.group, []).append(answer)
        for group in sorted(by_group):
            if release.shows(group):
                rows = by_group[group]
                groups[group] = GroupSummary(group, len(rows), tuple(summarise_question(q, rows) for q in questions))
            else:
                groups[group] = Suppressed(group, release.reason(group))
    return SurveySummary(
        invited=invited,
        respondents=respondents,
        response_rate=respondents / invited if invited else 0.0,
        questions=figures,
        groups=groups,
        suppressed=not release.shows(scope),
        min_group=release.min_group,
        scope=scope,
        release=release,
    )


def summarise_question(question: QuestionSpec, answers: Sequence[AnswerRow]) -> QuestionSummary:
    """Figures for one question over the given answers, with no suppression applied."""
    raw_values = [answer.values[question.id] for answer in answers if question.id in answer.values]
    if question.kind == "scale":
        return _summarise_scale(question, raw_values)
    if question.kind == "single":
        return _summarise_single(question, raw_values)
    if question.kind == "multi":
        return _summarise_multi(question, raw_values)
    return _summarise_text(question, raw_values)


@dataclass(frozen=True)
class ExportRow:
    """One respondent in an answer export: ``group`` is the group the row may name (None: a withheld group,
    not named), ``values`` the usable answers to the questions whose column is filled."""

    respondent_key: str
    group: str | None
    values: Mapping[int, Any]


@dataclass(frozen=True)
class AnswerExport:
    """The rows of an answer export; ``filled`` are the questions whose column carries answers."""

    filled: tuple[int, ...]
    rows: tuple[ExportRow, ...]


def export_answers(
    questions: Sequence[QuestionSpec], answers: Sequence[AnswerRow], release: Release, *, scope: str | None = None
) -> AnswerExport:
    """The answers of ``scope`` as an export lists them under ``release``: a row names its group only if
    the group is shown, and a question withheld for the scope is left blank, so an export gives away no
    more than the pages. (Refusing an export of a withheld scope is the caller's rule.)"""
    filled = tuple(q.id for q in questions if release.shows(scope, q.id))
    by_id = {q.id: q for q in questions}
    rows = []
    for answer in answers:
        if scope is not None and answer.group != scope:
            continue
        values = {}
        for question_id in filled:
            value = usable_answer(by_id[question_id], answer.values.get(question_id))
            if value is not None:
                values[question_id] = value
        rows.append(ExportRow(answer.respondent_key, answer.group if release.shows(answer.group) else None, values))
    return AnswerExport(filled, tuple(rows))


def usable_answer(question: QuestionSpec, value: Any) -> Any:
    """The part of a stored answer that the figures count (None when nothing of it fits the question)."""
    if question.kind == "scale":
        return value if _is_scale_value(value) else None
    if question.kind == "single":
        return value if isinstance(value, str) and value in question.options else None
    if question.kind == "multi":
        if not isinstance(value, (tuple, list, frozenset, set)) or not all(isinstance(v, str) for v in value):
            return None
        return tuple(option for option in question.options if option in value) or None
    return (value.strip() or None) if isinstance(value, str) else None


def _withheld(question: QuestionSpec) -> QuestionSummary:
    return QuestionSummary(
        question_id=question.id,
        kind=question.kind,
        respondents=0,
        counts=(),
        mean=None,
        median=None,
        texts=(),
        suppressed=True,
    )


def _is_scale_value(value: Any) -> bool:
    # bool is an int subclass; True must not count as a 1.
    return isinstance(value, int) and not isinstance(value, bool) and value in SCALE_VALUES


def _summarise_scale(question: QuestionSpec, raw_values: list[Any]) -> QuestionSummary:
    values = [value for value in raw_values if _is_scale_value(value)]
    tally = {value: 0 for value in SCALE_VALUES}
    for value in values:
        tally[value] += 1
    return QuestionSummary(
        question_id=question.id,
        kind=question.kind,
        respondents=len(values),
        counts=tuple(zip(question.labels, (tally[value] for value in SCALE_VALUES), strict=True)),
        mean=statistics.fmean(values) if values else None,
        median=float(statistics.median(values)) if values else None,
        texts=(),
        ignored=len(raw_values) - len(values),
    )


def _summarise_single(question: QuestionSpec, raw_values: list[Any]) -> QuestionSummary:
    values = [value for value in raw_values if isinstance(value, str) and value in question.options]
    tally = {option: 0 for option in question.options}
    for value in values:
        tally[value] += 1
    return QuestionSummary(
        question_id=question.id,
        kind=question.kind,
        respondents=len(values),
        counts=tuple(tally.items()),
        mean=None,
        median=None,
        texts=(),
        ignored=len(raw_values) - len(values),
    )


def _summarise_multi(question: QuestionSpec, raw_values: list[Any]) -> QuestionSummary:
    tally = {option: 0 for option in question.options}
    respondents = 0
    ignored = 0
    for value in raw_values:
        if not isinstance(value, (tuple, list, frozenset, set)) or not all(isinstance(v, str) for v in value):
            ignored += 1
            continue
        chosen = {option for option in value if option in tally}
        if len(chosen) != len(set(value)):
            ignored += 1
        if not chosen:
            # Ticking nothing (or only unknown options) is not an answer.
            continue
        respondents += 1
        for option in chosen:
            tally[option] += 1
    return QuestionSummary(
        question_id=question.id,
        kind=question.kind,
        respondents=respondents,
        counts=tuple(tally.items()),
        mean=None,
        median=None,
        texts=(),
        ignored=ignored,
    )


def _summarise_text(question: QuestionSpec, raw_values: list[Any]) -> QuestionSummary:
    strings = [value for value in raw_values if isinstance(value, str)]
    texts = tuple(text.strip() for text in strings if text.strip())
    return QuestionSummary(
        question_id=question.id,
        kind=question.kind,
        respondents=len(texts),
        counts=(),
        mean=None,
        median=None,
        texts=texts,
        ignored=len(raw_values) - len(strings),
    )
