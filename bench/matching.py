"""Benchmark of the home-visit matching solver on seven instance families, against HiGHS on the same model.

The families and their seeds are in ``bench/matching_families.py`` (``FAMILIES``): ward (the original
generator), ranked (ranked lists of 3-10 households), sparse (1-2 short windows), clustered (households
in three districts), minors (75 % minors, few adults), avoid (heavy avoid-tags and declined pairs),
tight (0.85 places per student). For each family and size (100, 1,000, 10,000 students) one process
runs ``propose_matches`` and then HiGHS (``highspy``, one thread, the same candidate pairs and
lexicographic weights) and prints, for both:

- seconds to the first feasible assignment, to a *certified* gap <= 0.1 % and to a proof of optimality
  (the gap is level-wise, as ``Proposal.gap``: matched students first, then preference points; our
  bound comes from the min-cost flow's LP duals and the exact MIPs of the regions it leaves open);
- the true gap of our assignment to HiGHS's proven optimum (0 when both are proven);
- hard-rule violations from the independent checker ``check_assignment`` (for both solvers);
- the speed-up: HiGHS's seconds to proof over ours (">" when HiGHS hit its time limit).

    python bench/matching.py [--quick] [--families ward,minors] [--sizes 1000] [--time-limit S]
                             [--highs-limit S] [--no-highs]

``--quick`` runs 100 and 1,000 students only (about two minutes). The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

# Run as a script, bench/ would shadow standard modules (bench/calendar.py): import from the root.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.matching_families import FAMILIES, highs_solve  # noqa: E402
from events import matching  # noqa: E402
from events.matching import check_assignment, propose_matches  # noqa: E402

TARGET_GAP = 0.001


def milestones(proposal: matching.Proposal) -> dict[str, float | None]:
    """Seconds to the first feasible assignment, to a proven gap <= 0.1 %, to proven optimality."""
    progress = proposal.progress
    first = progress[0][0] if progress else proposal.seconds
    within = next((t for t, gap in progress if gap <= TARGET_GAP), None)
    optimal = next((t for t, gap in progress if gap == 0.0), None) if proposal.optimal else None
    return {"first": round(first, 3), "to_gap": None if within is None else round(within, 3),
            "proof": None if optimal is None else round(optimal, 3)}


def run(family: str, students: int, time_limit: float, highs_limit: float | None) -> dict[str, object]:
    spec = FAMILIES[family]
    slots, requests, forbidden = spec.generate(students, spec.seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    proposal = propose_matches(slots, requests, forbidden=forbidden, seed=spec.seed, time_limit=time_limit)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    found = (0, proposal.matched_count, proposal.preference_score, proposal.priority_score)
    row: dict[str, object] = {
        "family": family, "seed": spec.seed, "students": students, "slots": len(slots),
        "places": sum(s.capacity for s in slots), "forbidden": len(forbidden),
        "ours": {**milestones(proposal), "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
                 "optimal": proposal.optimal, "gap": proposal.gap, "levels": list(found),
                 "violations": len(check_assignment(slots, requests, proposal.assignments, forbidden)),
                 "method": proposal.method},
    }
    if highs_limit is not None:
        highs = highs_solve(slots, requests, forbidden, seed=spec.seed, time_limit=highs_limit)
        row["highs"] = {"first": _round(highs.first_feasible_seconds), "to_gap": _round(highs.gap_seconds),
                        "proof": round(highs.seconds, 3) if highs.optimal else None,
                        "seconds": round(highs.seconds, 3), "optimal": highs.optimal, "status": highs.status,
                        "levels": list(highs.levels) if highs.levels else None,
                        "violations": len(check_assignment(slots, requests, highs.assignment, forbidden))}
        if highs.optimal and highs.levels is not None:
            row["true_gap"] = matching._gap(found, highs.levels)
        ours_proof = row["ours"]["proof"]  # type: ignore[index]
        if ours_proof:
            row["speedup"] = round(highs.seconds / ours_proof, 1)
            row["speedup_is_lower_bound"] = not highs.optimal
    return row


def _worst(seconds: list[float | None]) -> float | str | None:
    """The slowest of ``seconds``; "not reached" if one never got there."""
    if not seconds:
        return None
    return "not reached" if None in seconds else max(s for s in seconds if s is not None)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence what the solvers' C++ code prints (HiGHS's banner) so the table stays readable."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _s(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float | int) else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 100 and 1,000 students")
    parser.add_argument("--families", type=str, default=",".join(FAMILIES))
    parser.add_argument("--sizes", type=str, default="", help="comma-separated sizes, overrides --quick")
    parser.add_argument("--time-limit", type=float, default=60.0, help="our solver's time limit per call")
    parser.add_argument("--highs-limit", type=float, default=300.0, help="HiGHS's time limit per call")
    parser.add_argument("--no-highs", action="store_true", help="skip the HiGHS baseline")
    args = parser.parse_args()
    load = os.getloadavg()[0]  # the machine may be shared: how far the wall-clock figures can be trusted
    print(f"load average {load:.2f} on {os.cpu_count()} cores; time limits: ours {args.time_limit:.0f} s, "
          f"HiGHS {args.highs_limit:.0f} s (one thread each)")
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [100, 1000] if args.quick else [100, 1000, 10000]
    families = [f for f in args.families.split(",") if f]
    print("seconds to first feasible / certified gap <= 0.1 % / proof; true gap = ours vs HiGHS's proven optimum")
    print(f"{'family':<10}{'seed':>9}{'students':>9}  {'ours: first':>11}{'0.1%':>7}{'proof':>7}{'viol':>5}"
          f"  {'HiGHS: first':>12}{'0.1%':>7}{'proof':>8}{'viol':>5}  {'true gap':>9}{'speed-up':>10}")
    rows = []
    for students in sizes:
        for family in families:
            with _quiet():
                row = run(family, students, args.time_limit, None if args.no_highs else args.highs_limit)
            rows.append(row)
            ours, highs = row["ours"], row.get("highs", {})
            assert isinstance(ours, dict) and isinstance(highs, dict)
            proof = _s(ours["proof"]) if ours["optimal"] else f"gap {ours['gap']:.3%}"
            highs_proof = _s(highs.get("proof")) if highs.get("optimal", True) else f">{highs['seconds']:.0f}"
            true_gap = f"{row['true_gap']:.4%}" if "true_gap" in row else "-"
            speedup = (f"{'>' if row.get('speedup_is_lower_bound') else ''}{row['speedup']}x"
                       if "speedup" in row else "-")
            print(f"{family:<10}{row['seed']:>9}{students:>9}  {_s(ours['first']):>11}{_s(ours['to_gap']):>7}"
                  f"{proof:>7}{ours['violations']:>5}  {_s(highs.get('first')):>12}{_s(highs.get('to_gap')):>7}"
                  f"{highs_proof:>8}{highs.get('violations', '-'):>5}  {true_gap:>9}{speedup:>10}", flush=True)
    big = [r for r in rows if r["students"] == 10000]
    summary = {
        "load_average": round(load, 2),
        "families": {name: spec.seed for name, spec in FAMILIES.items() if name in families},
        "violations": sum(r["ours"]["violations"] for r in rows),  # type: ignore[index]
        "all_proven": all(r["ours"]["optimal"] for r in rows),  # type: ignore[index]
        "min_speedup": min((r["speedup"] for r in rows if "speedup" in r), default=None),
        "max_seconds_to_gap_10000": _worst([r["ours"]["to_gap"] for r in big]),  # type: ignore[index]
        "max_seconds_to_proof_10000": _worst([r["ours"]["proof"] for r in big]),  # type: ignore[index]
        "rounds": rows,
    }
    print("RESULT " + json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
