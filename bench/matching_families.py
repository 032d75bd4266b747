"""Instance families for the home-visit matching benchmark (and its property tests), and HiGHS as baseline.

Each family is its own generator of a reproducible round, a function of (students, seed) only; the
benchmark runs each with the seed in ``FAMILIES`` (``family_seed``), so anyone can repeat a figure:

- ``ward``: the round ``bench/matching.py`` always generated (~1.05 places per student, 30 % minors,
  2-4 windows, districts and wanted tags as preferences, 20 % avoid pets);
- ``ranked``: every student ranks 3-10 households near home (``Request.ranked_households``, worth 10
  points for the first down to 1 for the tenth), 35 % minors, 2-3 windows;
- ``sparse``: one or two short windows per student and short slots: 2-4 candidate slots each;
- ``clustered``: households packed in three districts that each hold visits on their own days;
  students reach their own district only and come mostly from elsewhere;
- ``minors``: 75 % minors (nearly all with consent) and few adults, slots mostly of two places;
- ``avoid``: 60 % of students avoid one to three household tags, 3 % have declined (forbidden)
  households;
- ``tight``: near-infeasible capacity, 0.85 places per student, all slots of two places, 45 % minors.

``highs_solve`` solves the same model as ``events.matching`` (the candidate pairs and lexicographic
weights of ``matching._build``; y_j = "slot j hosts a minor", x_ij <= y_j, sum_i x_ij >= 2 y_j) with
HiGHS (``highspy``, the same library the solver's sub-problems use), recording the times of its first feasible
solution, of a proven 0.1 % gap (on the same level-wise gap ``propose_matches`` reports) and of its
proof.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from events import matching
from events.matching import Request, Slot

TOKYO = ZoneInfo("Asia/Tokyo")
DISTRICTS = ["金沢文庫", "六浦", "能見台", "並木", "釜利谷", "富岡", "金沢八景", "柴町", "野島"]
NEIGHBOURS = {
    "金沢文庫": ["釜利谷", "能見台", "金沢八景"], "六浦": ["金沢八景", "釜利谷"],
    "能見台": ["金沢文庫", "富岡"], "並木": ["柴町", "野島", "富岡"], "釜利谷": ["金沢文庫", "六浦"],
    "富岡": ["能見台", "並木"], "金沢八景": ["金沢文庫", "六浦", "野島"], "柴町": ["並木", "野島"],
    "野島": ["柴町", "金沢八景", "並木"],
}
HOUSEHOLD_TAGS = {  # share of households carrying the tag
    "dual_income": 0.55, "infant": 0.35, "toddler": 0.40, "single_parent": 0.12, "twins": 0.04,
    "grandparents": 0.15, "many_children": 0.15, "pets": 0.25, "father_on_leave": 0.08,
}
WANTABLE = [t for t in HOUSEHOLD_TAGS if t != "pets"]
ROUND_START = date(2025, 7, 19)  # a Saturday: summer holidays, when most visits happen
FOREVER = ROUND_START + timedelta(days=365)

Instance = tuple[list[Slot], list[Request], frozenset[tuple[int, int]]]  # slots, requests, forbidden


def round_days(students: int) -> int:
    """Four weeks up to 1,000 students; larger rounds run longer (10,000 students: ~12 weeks)."""
    return round(28 * max(1.0, students / 1000) ** 0.5)


def _day(rng: random.Random, days_in_round: int) -> date:
    # Weekends are three times as likely as weekdays for both families and students.
    days = [ROUND_START + timedelta(days=k) for k in range(days_in_round)]
    weights = [3 if d.weekday() >= 5 else 1 for d in days]
    return rng.choices(days, weights)[0]


def _at(day: date, minutes: int) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TOKYO) + timedelta(minutes=minutes)


def _vetting(rng: random.Random, days_in_round: int) -> date | None:
    roll = rng.random()
    if roll < 0.03:
        return None
    if roll < 0.07:
        return ROUND_START + timedelta(days=rng.randrange(days_in_round))
    return FOREVER


def _tags(rng: random.Random) -> frozenset[str]:
    return frozenset(t for t, share in HOUSEHOLD_TAGS.items() if rng.random() < share)


# ----------------------------------------------------------------------------------------------
# Families


def ward_round(students: int, seed: int) -> Instance:
    """The original family: ~1.05 places per student, 30 % minors, realistic windows and tags."""
    rng = random.Random(seed)
    days_in_round = round_days(students)
    slots: list[Slot] = []
    households = round(students * 0.36)
    for household_id in range(1, households + 1):
        district = rng.choice(DISTRICTS)
        tags = _tags(rng)
        vetted_until = _vetting(rng, days_in_round)
        for _ in range(1 if rng.random() < 0.6 else 2):
            day = _day(rng, days_in_round)
            if day.weekday() >= 5:
                start, length = rng.randrange(9 * 60, 16 * 60 + 1, 30), rng.choice([120, 180])
            else:
                start, length = rng.randrange(15 * 60, 18 * 60 + 1, 30), 120
            slots.append(Slot(
                id=len(slots) + 1, household_id=household_id, district=district,
                starts_at=_at(day, start), ends_at=_at(day, start + length),
                capacity=rng.choices([1, 2, 3], [0.2, 0.45, 0.35])[0],
                household_tags=tags, vetted_until=vetted_until,
            ))
    requests: list[Request] = []
    for student_id in range(1, students + 1):
        minor = rng.random() < 0.30
        windows = []
        for _ in range(rng.choice([2, 3, 3, 4])):
            day = _day(rng, days_in_round)
            if day.weekday() >= 5:
                start, length = rng.randrange(9 * 60, 14 * 60 + 1, 30), rng.choice([180, 240, 300])
            else:
                start, length = rng.randrange(15 * 60, 17 * 60 + 1, 30), rng.choice([150, 180, 240])
            windows.append((_at(day, start), _at(day, start + length)))
        home = rng.choice(DISTRICTS)
        reach = frozenset([home, *rng.sample(NEIGHBOURS[home], k=min(2, len(NEIGHBOURS[home])))])
        requests.append(Request(
            student_id=student_id, is_minor=minor, has_consent=not minor or rng.random() < 0.92,
            windows=tuple(windows), districts=reach,
            wanted_tags=frozenset(rng.sample(WANTABLE, k=rng.choice([0, 1, 1, 2, 2, 3]))),
            avoided_tags=frozenset(["pets"]) if rng.random() < 0.2 else frozenset(),
            priority=rng.choices([0, 1, 2], [0.85, 0.12, 0.03])[0],
        ))
    return slots, requests, frozenset()


def ranked_round(students: int, seed: int) -> Instance:
    """Students rank 3-10 households near home; ranks weigh far more than district or tags."""
    rng = random.Random(seed)
    days_in_round = round_days(students)
    slots: list[Slot] = []
    by_district: dict[str, list[int]] = {d: [] for d in DISTRICTS}
    households = round(students * 0.40)
    for household_id in range(1, households + 1):
        district = rng.choices(DISTRICTS, [3, 2, 2, 1, 2, 1, 3, 1, 1])[0]
        by_district[district].append(household_id)
        tags = _tags(rng)
        vetted_until = _vetting(rng, days_in_round)
        for _ in range(rng.choice([1, 1, 2, 3])):
            day = _day(rng, days_in_round)
            start = rng.randrange(10 * 60, 16 * 60 + 1, 60) if day.weekday() >= 5 else rng.randrange(16 * 60, 18 * 60 + 1, 60)
            slots.append(Slot(
                id=len(slots) + 1, household_id=household_id, district=district,
                starts_at=_at(day, start), ends_at=_at(day, start + rng.choice([90, 120, 150])),
                capacity=rng.choices([1, 2, 3, 4], [0.15, 0.5, 0.25, 0.1])[0],
                household_tags=tags, vetted_until=vetted_until,
            ))
    requests: list[Request] = []
    for student_id in range(1, students + 1):
        minor = rng.random() < 0.35
        windows = []
        for _ in range(rng.choice([2, 2, 3])):
            day = _day(rng, days_in_round)
            start = rng.randrange(9 * 60, 14 * 60 + 1, 60) if day.weekday() >= 5 else rng.randrange(15 * 60, 17 * 60 + 1, 60)
            windows.append((_at(day, start), _at(day, start + rng.choice([180, 240, 360]))))
        home = rng.choice(DISTRICTS)
        near = [h for d in [home, *NEIGHBOURS[home]] for h in by_district[d]]
        ranked = tuple(rng.sample(near, k=min(len(near), rng.randint(3, 10))))
        requests.append(Request(
            student_id=student_id, is_minor=minor, has_consent=not minor or rng.random() < 0.9,
            windows=tuple(windows), districts=frozenset([home, rng.choice(NEIGHBOURS[home])]),
            wanted_tags=frozenset(rng.sample(WANTABLE, k=rng.choice([0, 1, 2]))),
            avoided_tags=frozenset(["pets"]) if rng.random() < 0.15 else frozenset(),
            priority=rng.choices([0, 1, 2, 3], [0.8, 0.14, 0.05, 0.01])[0],
            ranked_households=ranked,
        ))
    return slots, requests, frozenset()


def sparse_round(students: int, seed: int) -> Instance:
    """Sparse availability: one or two short windows per student, short slots at fixed hours."""
    rng = random.Random(seed)
    days_in_round = round_days(students)
    slots: list[Slot] = []
    for household_id in range(1, round(students * 0.45) + 1):
        district = rng.choice(DISTRICTS)
        tags = _tags(rng)
        vetted_until = _vetting(rng, days_in_round)
        for _ in range(rng.choice([1, 2])):
            day = _day(rng, days_in_round)
            hours = [10, 13, 15] if day.weekday() >= 5 else [16, 17]
            start = 60 * rng.choice(hours)
            slots.append(Slot(
                id=len(slots) + 1, household_id=household_id, district=district,
                starts_at=_at(day, start), ends_at=_at(day, start + 90),
                capacity=rng.choices([1, 2, 3], [0.25, 0.5, 0.25])[0],
                household_tags=tags, vetted_until=vetted_until,
            ))
    requests: list[Request] = []
    for student_id in range(1, students + 1):
        minor = rng.random() < 0.3
        windows = []
        for _ in range(rng.choice([1, 1, 2])):
            day = _day(rng, days_in_round)
            hours = [10, 13, 15] if day.weekday() >= 5 else [16, 17]
            start = 60 * rng.choice(hours)
            windows.append((_at(day, start), _at(day, start + rng.choice([90, 120, 180]))))
        home = rng.choice(DISTRICTS)
        requests.append(Request(
            student_id=student_id, is_minor=minor, has_consent=not minor or rng.random() < 0.93,
            windows=tuple(windows), districts=frozenset([home, *rng.sample(NEIGHBOURS[home], k=1)]),
            wanted_tags=frozenset(rng.sample(WANTABLE, k=rng.choice([0, 1, 2]))),
            avoided_tags=frozenset(["pets"]) if rng.random() < 0.2 else frozenset(),
            priority=rng.choices([0, 1], [0.9, 0.1])[0],
        ))
    return slots, requests, frozenset()


def clustered_round(students: int, seed: int) -> Instance:
    """Households packed in three districts, each with its own visiting days; students reach one district."""
    rng = random.Random(seed)
    days_in_round = round_days(students)
    hubs = rng.sample(DISTRICTS, 3)
    all_days = [ROUND_START + timedelta(days=k) for k in range(days_in_round)]
    days_of = {d: [day for day in all_days if (day.toordinal() + i) % 3 == 0 or day.weekday() == 6]
               for i, d in enumerate(DISTRICTS)}
    slots: list[Slot] = []
    for household_id in range(1, round(students * 0.38) + 1):
        district = rng.choice(hubs) if rng.random() < 0.8 else rng.choice(DISTRICTS)
        tags = _tags(rng)
        vetted_until = _vetting(rng, days_in_round)
        for _ in range(rng.choice([1, 2, 2])):
            day = rng.choice(days_of[district])
            start = rng.randrange(10 * 60, 16 * 60 + 1, 30)
            slots.append(Slot(
                id=len(slots) + 1, household_id=household_id, district=district,
                starts_at=_at(day, start), ends_at=_at(day, start + 120),
                capacity=rng.choices([1, 2, 3], [0.2, 0.5, 0.3])[0],
                household_tags=tags, vetted_until=vetted_until,
            ))
    requests: list[Request] = []
    for student_id in range(1, students + 1):
        minor = rng.random() < 0.3
        home = rng.choice(hubs) if rng.random() < 0.3 else rng.choice(DISTRICTS)
        target = home if home in hubs or rng.random() < 0.5 else rng.choice(hubs)
        windows = []
        for _ in range(rng.choice([2, 3])):
            day = rng.choice(days_of[target] if rng.random() < 0.7 else all_days)
            start = rng.randrange(9 * 60, 13 * 60 + 1, 30)
            windows.append((_at(day, start), _at(day, start + rng.choice([240, 300, 420]))))
        requests.append(Request(
            student_id=student_id, is_minor=minor, has_consent=not minor or rng.random() < 0.92,
            windows=tuple(windows), districts=frozenset([target]),
            wanted_tags=frozenset(rng.sample(WANTABLE, k=rng.choice([0, 1, 1, 2]))),
            avoided_tags=frozenset(["pets"]) if rng.random() < 0.2 else frozenset(),
            priority=rng.choices([0, 1, 2], [0.85, 0.12, 0.03])[0],
        ))
    return slots, requests, frozenset()


def minors_round(students: int, seed: int) -> Instance:
    """Three minors in four students; slots mostly of two places, so companions are scarce."""
    rng = random.Random(seed)
    days_in_round = round_days(students)
    slots: list[Slot] = []
    for household_id in range(1, round(students * 0.42) + 1):
        district = rng.choice(DISTRICTS)
        tags = _tags(rng)
        vetted_until = _vetting(rng, days_in_round)
        for _ in range(1 if rng.random() < 0.7 else 2):
            day = _day(rng, days_in_round)
            if day.weekday() >= 5:
                start, length = rng.randrange(9 * 60, 16 * 60 + 1, 30), rng.choice([120, 180])
            else:
                start, length = rng.randrange(15 * 60, 18 * 60 + 1, 30), 120
            slots.append(Slot(
                id=len(slots) + 1, household_id=household_id, district=district,
                starts_at=_at(day, start), ends_at=_at(day, start + length),
                capacity=rng.choices([1, 2, 3], [0.1, 0.7, 0.2])[0],
                household_tags=tags, vetted_until=vetted_until,
            ))
    requests: list[Request] = []
    for student_id in range(1, students + 1):
        minor = rng.random() < 0.75
        windows = []
        for _ in range(rng.choice([1, 2, 3])):
            day = _day(rng, days_in_round)
            if day.weekday() >= 5:
                start, length = rng.randrange(9 * 60, 14 * 60 + 1, 30), rng.choice([180, 240])
            else:
                start, length = rng.randrange(15 * 60, 17 * 60 + 1, 30), rng.choice([150, 180])
            windows.append((_at(day, start), _at(day, start + length)))
        home = rng.choice(DISTRICTS)
        requests.append(Request(
            student_id=student_id, is_minor=minor, has_consent=not minor or rng.random() < 0.97,
            windows=tuple(windows), districts=frozenset([home, *rng.sample(NEIGHBOURS[home], k=1)]),
            wanted_tags=frozenset(rng.sample(WANTABLE, k=rng.choice([0, 1, 2]))),
            avoided_tags=frozenset(["pets"]) if rng.random() < 0.2 else frozenset(),
            priority=rng.choices([0, 1, 2], [0.85, 0.12, 0.03])[0],
        ))
    return slots, requests, frozenset()


def avoid_round(students: int, seed: int) -> Instance:
    """Heavy avoid-tags: 60 % of students avoid one to three tags; 3 % declined some households."""
    rng = random.Random(seed)
    days_in_round = round_days(students)
    slots: list[Slot] = []
    households = round(students * 0.40)
    for household_id in range(1, households + 1):
        district = rng.choice(DISTRICTS)
        tags = _tags(rng)
        vetted_until = _vetting(rng, days_in_round)
        for _ in range(1 if rng.random() < 0.5 else 2):
            day = _day(rng, days_in_round)
            if day.weekday() >= 5:
                start, length = rng.randrange(9 * 60, 16 * 60 + 1, 30), rng.choice([120, 180])
            else:
                start, length = rng.randrange(15 * 60, 18 * 60 + 1, 30), 120
            slots.append(Slot(
                id=len(slots) + 1, household_id=household_id, district=district,
                starts_at=_at(day, start), ends_at=_at(day, start + length),
                capacity=rng.choices([1, 2, 3], [0.2, 0.45, 0.35])[0],
                household_tags=tags, vetted_until=vetted_until,
            ))
    avoidable = ["pets", "infant", "toddler", "grandparents", "many_children", "dual_income"]
    requests: list[Request] = []
    forbidden: set[tuple[int, int]] = set()
    for student_id in range(1, students + 1):
        minor = rng.random() < 0.3
        windows = []
        for _ in range(rng.choice([2, 3, 4])):
            day = _day(rng, days_in_round)
            if day.weekday() >= 5:
                start, length = rng.randrange(9 * 60, 14 * 60 + 1, 30), rng.choice([180, 240, 300])
            else:
                start, length = rng.randrange(15 * 60, 17 * 60 + 1, 30), rng.choice([150, 180, 240])
            windows.append((_at(day, start), _at(day, start + length)))
        home = rng.choice(DISTRICTS)
        avoided = frozenset(rng.sample(avoidable, k=rng.choice([1, 1, 2, 3]))) if rng.random() < 0.6 else frozenset()
        wanted = frozenset(rng.sample([t for t in WANTABLE if t not in avoided], k=rng.choice([0, 1, 2])))
        requests.append(Request(
            student_id=student_id, is_minor=minor, has_consent=not minor or rng.random() < 0.92,
            windows=tuple(windows), districts=frozenset([home, *rng.sample(NEIGHBOURS[home], k=2)]),
            wanted_tags=wanted, avoided_tags=avoided,
            priority=rng.choices([0, 1, 2], [0.85, 0.12, 0.03])[0],
        ))
        if rng.random() < 0.03:
            forbidden.update((student_id, rng.randint(1, households)) for _ in range(rng.randint(1, 3)))
    return slots, requests, frozenset(forbidden)


def tight_round(students: int, seed: int) -> Instance:
    """Near-infeasible capacity: 0.85 places per student, every slot of two places, 45 % minors."""
    rng = random.Random(seed)
    days_in_round = round_days(students)
    slots: list[Slot] = []
    places = round(students * 0.85)
    household_id = 0
    while 2 * len(slots) < places:
        household_id += 1
        district = rng.choice(DISTRICTS)
        tags = _tags(rng)
        vetted_until = _vetting(rng, days_in_round)
        for _ in range(1 if rng.random() < 0.6 else 2):
            day = _day(rng, days_in_round)
            if day.weekday() >= 5:
                start, length = rng.randrange(9 * 60, 16 * 60 + 1, 30), rng.choice([120, 180])
            else:
                start, length = rng.randrange(15 * 60, 18 * 60 + 1, 30), 120
            slots.append(Slot(
                id=len(slots) + 1, household_id=household_id, district=district,
                starts_at=_at(day, start), ends_at=_at(day, start + length), capacity=2,
                household_tags=tags, vetted_until=vetted_until,
            ))
    requests: list[Request] = []
    for student_id in range(1, students + 1):
        minor = rng.random() < 0.45
        windows = []
        for _ in range(rng.choice([1, 2, 2, 3])):
            day = _day(rng, days_in_round)
            if day.weekday() >= 5:
                start, length = rng.randrange(9 * 60, 14 * 60 + 1, 30), rng.choice([180, 240, 300])
            else:
                start, length = rng.randrange(15 * 60, 17 * 60 + 1, 30), rng.choice([150, 180, 240])
            windows.append((_at(day, start), _at(day, start + length)))
        home = rng.choice(DISTRICTS)
        requests.append(Request(
            student_id=student_id, is_minor=minor, has_consent=not minor or rng.random() < 0.95,
            windows=tuple(windows), districts=frozenset([home, *rng.sample(NEIGHBOURS[home], k=2)]),
            wanted_tags=frozenset(rng.sample(WANTABLE, k=rng.choice([0, 1, 2, 3]))),
            avoided_tags=frozenset(["pets"]) if rng.random() < 0.2 else frozenset(),
            priority=rng.choices([0, 1, 2], [0.8, 0.15, 0.05])[0],
        ))
    return slots, requests, frozenset()


@dataclass(frozen=True)
class Family:
    name: str
    generate: Callable[[int, int], Instance]
    seed: int  # the benchmark's seed for this family (its rounds: generate(students, seed))
    about: str


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("ward", ward_round, 20250719, "the original generator"),
    Family("ranked", ranked_round, 101, "ranked lists of 3-10 households"),
    Family("sparse", sparse_round, 202, "1-2 short windows per student"),
    Family("clustered", clustered_round, 303, "households in 3 districts, own days"),
    Family("minors", minors_round, 404, "75 % minors, slots of 2"),
    Family("avoid", avoid_round, 505, "60 % avoid 1-3 tags, declined pairs"),
    Family("tight", tight_round, 606, "0.85 places per student, slots of 2"),
]}


def family_seed(name: str, seed: int | None = None) -> int:
    return FAMILIES[name].seed if seed is None else seed


# ----------------------------------------------------------------------------------------------
# HiGHS on the same model


@dataclass
class HighsResult:
    levels: tuple[int, int, int, int] | None  # (pins, matched, preference, priority) of its best solution
    assignment: dict[int, int]
    optimal: bool
    seconds: float  # passModel + run
    first_feasible_seconds: float | None
    gap_seconds: float | None  # to a proven level-wise gap <= 0.1 %
    status: str


def highs_lp(instance: matching._Instance):  # noqa: ANN201 - a highspy.HighsLp
    """The MILP of ``instance`` for HiGHS: x_e per candidate pair, y_j per slot some minor could use."""
    import highspy

    n_edges, m = len(instance.edge_student), len(instance.slots)
    student = np.asarray(instance.edge_student, dtype=np.int64)
    slot = np.asarray(instance.edge_slot, dtype=np.int64)
    weight = np.asarray(instance.edge_weight, dtype=np.float64)
    minor = np.fromiter((r.is_minor for r in instance.requests), dtype=bool, count=len(instance.requests))
    minor_edge = minor[student]
    hosts = np.unique(slot[minor_edge])  # slots some minor could use: they get a y variable
    y_of = np.full(m, -1, dtype=np.int64)
    y_of[hosts] = n_edges + np.arange(len(hosts))
    n_cols = n_edges + len(hosts)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    lower: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    row = 0
    students_used = np.unique(student)
    student_row = np.full(len(instance.requests), -1, dtype=np.int64)
    student_row[students_used] = np.arange(len(students_used))
    rows.append(row + student_row[student])  # one slot per student
    cols.append(np.arange(n_edges))
    vals.append(np.ones(n_edges))
    lower.append(np.full(len(students_used), -np.inf))
    upper.append(np.ones(len(students_used)))
    row += len(students_used)
    capacity = np.fromiter((s.capacity for s in instance.slots), dtype=np.float64, count=m)
    rows.append(row + slot)  # capacity, and at least two students when the slot hosts a minor
    cols.append(np.arange(n_edges))
    vals.append(np.ones(n_edges))
    lower.append(np.full(m, -np.inf))
    upper.append(capacity)
    row += m
    host_row = row + np.arange(len(hosts))
    in_host = y_of[slot] >= 0
    rows += [host_row[np.searchsorted(hosts, slot[in_host])], host_row]
    cols += [np.flatnonzero(in_host), y_of[hosts]]
    vals += [np.ones(int(in_host.sum())), np.full(len(hosts), -2.0)]
    lower.append(np.zeros(len(hosts)))
    upper.append(np.full(len(hosts), np.inf))
    row += len(hosts)
    minor_edges = np.flatnonzero(minor_edge)  # x_ij <= y_j for a minor i
    rows += [row + np.arange(len(minor_edges))] * 2
    cols += [minor_edges, y_of[slot[minor_edges]]]
    vals += [np.ones(len(minor_edges)), -np.ones(len(minor_edges))]
    lower.append(np.full(len(minor_edges), -np.inf))
    upper.append(np.zeros(len(minor_edges)))
    row += len(minor_edges)

    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    order = np.lexsort((r, c))
    r, c, v = r[order], c[order], v[order]
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n_cols, row
    lp.col_cost_ = np.concatenate([weight, np.zeros(len(hosts))])
    lp.col_lower_, lp.col_upper_ = np.zeros(n_cols), np.ones(n_cols)
    lp.row_lower_, lp.row_upper_ = np.concatenate(lower), np.concatenate(upper)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.searchsorted(c, np.arange(n_cols + 1)).astype(np.int32)
    lp.a_matrix_.index_ = r.astype(np.int32)
    lp.a_matrix_.value_ = v
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n_cols
    return lp


def highs_solve(slots: list[Slot], requests: list[Request], forbidden: frozenset[tuple[int, int]] = frozenset(),
                *, seed: int = 0, time_limit: float = 600.0, target_gap: float = 0.001) -> HighsResult:
    """The model of ``events.matching`` (its candidate pairs and weights) as one MILP for HiGHS."""
    import highspy

    instance = matching._build(slots, requests, forbidden, frozenset(), seed)
    n_edges = len(instance.edge_student)
    if n_edges == 0:
        return HighsResult((0, 0, 0, 0), {}, True, 0.0, 0.0, 0.0, "empty")
    lp = highs_lp(instance)
    highspy.Highs.resetThreadScheduler(True)  # the scheduler is global: another Highs may have started it
    h = highspy.Highs()
    h.setOptionValue("output_flag", bool(__import__("os").environ.get("HIGHS_LOG")))
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.99)  # integer weights: a gap below one is a proof
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", seed % (2**31))
    marks: dict[str, float] = {}
    started = time.perf_counter()

    def levels_gap(primal: float, dual: float) -> float:
        found = matching._decode_bound(instance, int(round(primal)))
        bound = matching._decode_bound(instance, int(dual + 1e-6))
        return matching._gap(found, bound)

    def on_mip(event) -> None:  # noqa: ANN001
        now = time.perf_counter() - started
        primal, dual = event.data_out.objective_function_value, event.data_out.mip_dual_bound
        if np.isfinite(primal):
            marks.setdefault("first", now)
            if np.isfinite(dual) and "gap" not in marks and levels_gap(primal, dual) <= target_gap:
                marks["gap"] = now

    h.cbMipImprovingSolution.subscribe(on_mip)
    h.cbMipInterrupt.subscribe(on_mip)
    h.passModel(lp)
    h.run()
    seconds = time.perf_counter() - started
    status = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    if info.primal_solution_status == 0:
        return HighsResult(None, {}, False, seconds, None, None, status)
    x = np.asarray(h.getSolution().col_value[:n_edges])
    chosen = [int(e) for e in np.flatnonzero(x > 0.5)]
    assignment = {instance.requests[instance.edge_student[e]].student_id: instance.slots[instance.edge_slot[e]].id
                  for e in chosen}
    optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    if optimal:
        marks.setdefault("first", seconds)
        marks.setdefault("gap", seconds)
    return HighsResult(matching._levels(instance, chosen), assignment, optimal, seconds,
                       marks.get("first"), marks.get("gap"), status)
