"""Benchmark of the home-visit matching solver on seeded synthetic rounds of Kanazawa ward.

For 100, 1,000 and 10,000 students it prints students matched, preference score, proven gap and
seconds for ``propose_matches`` (wall and CPU: the machine may be shared), the seconds to the first
feasible assignment, to a proven gap <= 0.1 % and to a proven optimum (or the gap at the time limit),
and a call with ``target_gap=0.001`` that returns once that gap is proven, beside two baselines
run in the same process: greedy first-fit (rules respected, lone minors dropped at the end) and a
plain min-cost flow that ignores the lone-minor rule (its lone minors are counted). ``--cpsat-only`` also times the exact CP-SAT model
without the flow bound and repair, the alternative the chosen method was measured against.

    python bench/matching.py [--quick] [--cpsat-only] [--seed N] [--sizes 1000,10000] [--time-limit S]

The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

# Run as a script, bench/ would shadow standard modules (bench/calendar.py): import from the root.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from events import matching  # noqa: E402
from events.matching import Request, Slot, check_assignment, propose_matches  # noqa: E402

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


def synthetic_round(students: int, seed: int) -> tuple[list[Slot], list[Request]]:
    """A reproducible round: ~1.05 places per student, 30 % minors, realistic windows and tags."""
    rng = random.Random(seed)
    days_in_round = round_days(students)
    slots: list[Slot] = []
    households = round(students * 0.36)
    for household_id in range(1, households + 1):
        district = rng.choice(DISTRICTS)
        tags = frozenset(t for t, share in HOUSEHOLD_TAGS.items() if rng.random() < share)
        roll = rng.random()
        vetted_until = (
            None if roll < 0.03
            else ROUND_START + timedelta(days=rng.randrange(days_in_round)) if roll < 0.07
            else ROUND_START + timedelta(days=365)
        )
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
    return slots, requests


def greedy_first_fit(slots: list[Slot], requests: list[Request]) -> dict[int, int]:
    """Each student (in id order) takes the earliest compatible slot with room; lone minors dropped."""
    ordered = sorted(slots, key=lambda s: (s.starts_at, s.id))
    seats: dict[int, list[Request]] = {}
    for request in requests:
        if request.is_minor and not request.has_consent:
            continue
        for slot in ordered:
            if (
                slot.vetted_on_slot_date() and matching.fits_windows(request, slot)
                and not request.avoided_tags & slot.household_tags
                and len(seats.get(slot.id, [])) < slot.capacity
                and not (request.is_minor and slot.capacity < 2)
            ):
                seats.setdefault(slot.id, []).append(request)
                break
    return {
        r.student_id: slot_id for slot_id, people in seats.items()
        if not (len(people) == 1 and people[0].is_minor) for r in people
    }


def score(slots: list[Slot], requests: list[Request], assignment: dict[int, int]) -> int:
    slot_by_id, request_by_id = {s.id: s for s in slots}, {r.student_id: r for r in requests}
    return sum(matching.preference_points(request_by_id[i], slot_by_id[j]) for i, j in assignment.items())


def plain_flow(slots: list[Slot], requests: list[Request]) -> tuple[int, int, int, float]:
    """(matched, preference, lone minors, seconds) of a min-cost flow that ignores the minors rule."""
    started = time.perf_counter()
    instance = matching._build(slots, requests, frozenset(), frozenset(), 0, minors_need_company=False)
    chosen = matching._flow(instance)
    seconds = time.perf_counter() - started
    per_slot: dict[int, list[int]] = {}
    for e in chosen:
        per_slot.setdefault(instance.edge_slot[e], []).append(instance.edge_student[e])
    lone = sum(1 for people in per_slot.values() if len(people) == 1 and instance.requests[people[0]].is_minor)
    return len(chosen), sum(instance.edge_pref[e] for e in chosen), lone, seconds


def cpsat_only(slots: list[Slot], requests: list[Request], time_limit: float) -> dict[str, object]:
    started = time.perf_counter()
    instance = matching._build(slots, requests, frozenset(), frozenset(), 0)
    chosen, bound, proven = matching._cpsat(instance, [], time_limit, 0)
    found = matching._levels(instance, chosen or [])
    return {
        "matched": found[1], "preference": found[2], "optimal": proven,
        "bound": matching._decode_bound(instance, bound) if bound is not None else None,
        "seconds": round(time.perf_counter() - started, 3),
    }


def milestones(proposal: matching.Proposal, target_gap: float = 0.001) -> dict[str, float | None]:
    """Seconds to the first feasible assignment, to a proven gap <= ``target_gap``, to proven optimality."""
    progress = proposal.progress
    first = progress[0][0] if progress else proposal.seconds
    within = next((t for t, gap in progress if gap <= target_gap), None)
    optimal = next((t for t, gap in progress if gap == 0.0), None) if proposal.optimal else None
    return {
        "first_feasible_seconds": round(first, 3),
        "gap_0.1pct_seconds": None if within is None else round(within, 3),
        "optimal_seconds": None if optimal is None else round(optimal, 3),
    }


def run(students: int, seed: int, with_cpsat_only: bool, time_limit: float) -> dict[str, object]:
    slots, requests = synthetic_round(students, seed)
    started = time.perf_counter()
    instance = matching._build(slots, requests, frozenset(), frozenset(), seed)
    build_seconds = time.perf_counter() - started
    # The call a coordinator makes when 0.1 % is good enough: it returns as soon as that is proven.
    started, cpu_started = time.perf_counter(), time.process_time()
    quick = propose_matches(slots, requests, seed=seed, time_limit=time_limit, target_gap=0.001)
    quick_seconds, quick_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    quick_violations = len(check_assignment(slots, requests, quick.assignments))
    cpu_started = time.process_time()
    proposal = propose_matches(slots, requests, seed=seed, time_limit=time_limit)
    cpu_seconds = time.process_time() - cpu_started
    violations = check_assignment(slots, requests, proposal.assignments)
    started = time.perf_counter()
    greedy = greedy_first_fit(slots, requests)
    greedy_seconds = time.perf_counter() - started
    flow_matched, flow_pref, flow_lone, flow_seconds = plain_flow(slots, requests)
    reasons: dict[str, int] = {}
    for unmatched in proposal.unmatched.values():
        reasons[unmatched.reason] = reasons.get(unmatched.reason, 0) + 1
    row: dict[str, object] = {
        "students": students, "slots": len(slots), "places": sum(s.capacity for s in slots),
        "edges": len(instance.edge_student), "build_seconds": round(build_seconds, 3),
        "matched": proposal.matched_count, "preference": proposal.preference_score,
        "priority": proposal.priority_score,
        "optimal": proposal.optimal, "gap": proposal.gap, "upper_bound": list(proposal.upper_bound),
        "seconds": round(proposal.seconds, 3), "cpu_seconds": round(cpu_seconds, 3),
        **milestones(proposal),
        "progress": [[round(t, 3), gap] for t, gap in proposal.progress],
        "method": proposal.method, "violations": len(violations),
        "target_gap_call": {"target_gap": 0.001, "seconds": round(quick_seconds, 3),
                            "cpu_seconds": round(quick_cpu, 3), "gap": quick.gap,
                            "matched": quick.matched_count, "preference": quick.preference_score,
                            "violations": quick_violations},
        "unmatched_reasons": reasons,
        "greedy": {"matched": len(greedy), "preference": score(slots, requests, greedy),
                   "seconds": round(greedy_seconds, 3)},
        "plain_flow": {"matched": flow_matched, "preference": flow_pref, "lone_minors": flow_lone,
                       "seconds": round(flow_seconds, 3)},
    }
    if with_cpsat_only:
        row["cpsat_only"] = cpsat_only(slots, requests, 120.0)
    return row


def _seconds(value: object) -> str:
    return f"{value:.3f} s" if isinstance(value, float | int) else "not reached"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 100 and 1,000 students")
    parser.add_argument("--cpsat-only", action="store_true", help="also time CP-SAT without flow and repair")
    parser.add_argument("--seed", type=int, default=20250719)
    parser.add_argument("--sizes", type=str, default="", help="comma-separated sizes, overrides --quick")
    parser.add_argument("--time-limit", type=float, default=60.0, help="solver time limit per call")
    args = parser.parse_args()
    # The machine may be shared: the load average says how much the wall-clock figures can be trusted.
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} on {os.cpu_count()} cores; time limit {args.time_limit:.0f} s")
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [100, 1000] if args.quick else [100, 1000, 10000]
    rows = []
    for students in sizes:
        row = run(students, args.seed, args.cpsat_only, args.time_limit)
        rows.append(row)
        greedy, flow = row["greedy"], row["plain_flow"]
        assert isinstance(greedy, dict) and isinstance(flow, dict)
        print(f"== {students:,} students: {row['slots']:,} slots, {row['places']:,} places, {row['edges']:,} candidate pairs")
        print(f"  propose_matches : matched {row['matched']:>6,}  preference {row['preference']:>7,}  "
              f"optimal {row['optimal']!s:5}  gap {row['gap']:.5%}  {row['seconds']:.3f} s "
              f"(cpu {row['cpu_seconds']:.3f} s)  [{row['method']}]  violations {row['violations']}")
        print(f"    first feasible {_seconds(row['first_feasible_seconds'])}, gap <= 0.1 % "
              f"{_seconds(row['gap_0.1pct_seconds'])}, proven optimal {_seconds(row['optimal_seconds'])}"
              + ("" if row["optimal"] else f" (gap {row['gap']:.5%} at the time limit)"))
        quick = row["target_gap_call"]
        assert isinstance(quick, dict)
        print(f"    with target_gap=0.1 %: {quick['seconds']:.3f} s (cpu {quick['cpu_seconds']:.3f} s), "
              f"gap {quick['gap']:.5%}, "
              f"violations {quick['violations']}")
        print(f"  greedy first-fit: matched {greedy['matched']:>6,}  preference {greedy['preference']:>7,}  "
              f"{greedy['seconds']:.3f} s  (matched x{row['matched'] / max(greedy['matched'], 1):.3f} vs greedy)")
        optimal_seconds = row["optimal_seconds"] if isinstance(row["optimal_seconds"], float) else row["seconds"]
        assert isinstance(optimal_seconds, float)
        print(f"  plain flow      : matched {flow['matched']:>6,}  preference {flow['preference']:>7,}  "
              f"{flow['seconds']:.3f} s  lone minors {flow['lone_minors']}  "
              f"(proven optimum takes x{optimal_seconds / max(flow['seconds'], 1e-9):.1f} the plain flow's time)")
        if "cpsat_only" in row:
            print(f"  CP-SAT only     : {row['cpsat_only']}")
        print(f"  unmatched reasons: {row['unmatched_reasons']}", flush=True)
    print("RESULT " + json.dumps({"seed": args.seed, "load_average": round(load, 2), "rounds": rows}, ensure_ascii=False))


if __name__ == "__main__":
    main()
