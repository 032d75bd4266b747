"""Feedback survey aggregation: counts, means and medians per question, with small-group suppression.

Pure: takes questions and answers as plain data, returns plain data. No figure is shown for fewer than
``min_group`` respondents, and a group that is large enough is also withheld when showing it would let a
reader recover a small group's answers by subtracting it from the total (complementary suppression).
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
    """A group whose figures are withheld; ``reason`` is "small_group" or "complementary"."""

    group: str
    reason: str


@dataclass(frozen=True)
class SurveySummary:
    """The whole survey; when ``suppressed`` only ``respondents`` (and the rate) is shown."""

    invited: int
    respondents: int
    response_rate: float
    questions: tuple[QuestionSummary, ...]
    groups: Mapping[str, GroupSummary | Suppressed]
    suppressed: bool = False
    min_group: int = DEFAULT_MIN_GROUP


def summarise(
    questions: Sequence[QuestionSpec],
    answers: Sequence[AnswerRow],
    *,
    invited: int,
    group_by: bool = True,
    min_group: int = DEFAULT_MIN_GROUP,
) -> SurveySummary:
    """Aggregate ``answers`` per question, overall and (if ``group_by``) per group, suppressing small groups.

    Free-text answers keep the order given, so pass answers in submission order, not sorted by group.
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
    respondents = len(answers)
    if respondents > invited:
        raise ValueError(f"{respondents} respondents but only {invited} invited")
    response_rate = respondents / invited if invited else 0.0

    if respondents < min_group:
        # Too few answers overall: only the count is shown, and no group can be shown either.
        groups: dict[str, GroupSummary | Suppressed] = {}
        if group_by:
            groups = {group: Suppressed(group, "small_group") for group in sorted({a.group for a in answers})}
        return SurveySummary(
            invited=invited,
            respondents=respondents,
            response_rate=response_rate,
            questions=tuple(_withheld(question) for question in questions),
            groups=groups,
            suppressed=True,
            min_group=min_group,
        )

    totals = tuple(summarise_question(question, answers) for question in questions)
    groups = _group_summaries(questions, answers, min_group) if group_by else {}
    return SurveySummary(
        invited=invited,
        respondents=respondents,
        response_rate=response_rate,
        questions=totals,
        groups=groups,
        suppressed=False,
        min_group=min_group,
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


def _group_summaries(
    questions: Sequence[QuestionSpec], answers: Sequence[AnswerRow], min_group: int
) -> dict[str, GroupSummary | Suppressed]:
    by_group: dict[str, list[AnswerRow]] = {}
    for answer in answers:
        by_group.setdefault(answer.group, []).append(answer)
    reasons = {group: "small_group" for group, rows in by_group.items() if len(rows) < min_group}
    # The total minus the shown groups must not isolate fewer than min_group people.
    withheld = sum(len(by_group[group]) for group in reasons)
    shown = sorted((len(rows), group) for group, rows in by_group.items() if group not in reasons)
    while 0 < withheld < min_group and shown:
        size, group = shown.pop(0)
        reasons[group] = "complementary"
        withheld += size

    result: dict[str, GroupSummary | Suppressed] = {}
    for group in sorted(by_group):
        if group in reasons:
            result[group] = Suppressed(group, reasons[group])
        else:
            rows = by_group[group]
            result[group] = GroupSummary(
                group=group,
                respondents=len(rows),
                questions=tuple(summarise_question(question, rows) for question in questions),
            )
    return result


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
