"""Home-visit matching on every benchmark family: hard rules, optimality and the certificate.

Small rounds (20-120 students) from each generator of ``bench/matching_families.py``, random seeds:
the independent checker finds no violation, the proven optimum equals an independent ILP, a bound
returned early is never below the true optimum, and HiGHS on the benchmark's model agrees.
"""

from __future__ import annotations

import random
from unittest.mock import patch

import highspy
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.matching_families import FAMILIES, highs_solve
from events import matching
from events.matching import check_assignment, propose_matches
from tests.unit.test_matching import reference_optimum

families = st.sampled_from(sorted(FAMILIES))
sizes = st.integers(20, 120)
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=35, deadline=None)
@given(families, sizes, seeds)
# HiGHS's presolve ("sparsify") once called a feasible component infeasible here (a claimed optimum
# one point short: failed in CI), and once answered a solve error (no proof though time was left).
@example("ranked", 77, 1493)
@example("ranked", 90, 2695546218)
def test_every_family_meets_every_hard_rule_and_the_ilp_optimum(family: str, students: int, seed: int) -> None:
    slots, requests, forbidden = FAMILIES[family].generate(students, seed)
    proposal = propose_matches(slots, requests, forbidden=forbidden, seed=seed)
    assert check_assignment(slots, requests, proposal.assignments, forbidden) == []
    assert proposal.optimal and proposal.gap == 0.0
    assert (proposal.matched_count, proposal.preference_score) == reference_optimum(slots, requests, forbidden)
    assert set(proposal.assignments).isdisjoint(proposal.unmatched)
    assert len(proposal.assignments) + len(proposal.unmatched) == len(requests)


@settings(max_examples=12, deadline=None)
@given(families, sizes, seeds)
def test_the_capped_path_on_small_components_is_exact(family: str, students: int, seed: int) -> None:
    # Components of these sizes mostly run without the row capping the loss (below CAP_ROW_FROM): here every
    # one of them has it, so both ways of answering "nothing within the cap" stay checked on small models.
    slots, requests, forbidden = FAMILIES[family].generate(students, seed)
    with patch.object(matching, "CAP_ROW_FROM", 0):
        proposal = propose_matches(slots, requests, forbidden=forbidden, seed=seed)
    assert check_assignment(slots, requests, proposal.assignments, forbidden) == []
    assert proposal.optimal
    assert (proposal.matched_count, proposal.preference_score) == reference_optimum(slots, requests, forbidden)


@settings(max_examples=15, deadline=None)
@given(families, st.integers(60, 120), seeds)
def test_an_early_bound_is_a_true_certificate(family: str, students: int, seed: int) -> None:
    slots, requests, forbidden = FAMILIES[family].generate(students, seed)
    early = propose_matches(slots, requests, forbidden=forbidden, seed=seed, target_gap=0.01)
    exact = propose_matches(slots, requests, forbidden=forbidden, seed=seed)
    assert check_assignment(slots, requests, early.assignments, forbidden) == []
    assert early.gap <= 0.01
    best = (0, exact.matched_count, exact.preference_score, exact.priority_score)
    assert early.upper_bound >= best  # never below the optimum: a bound, not an estimate
    assert (0, early.matched_count, early.preference_score, early.priority_score) <= best


@settings(max_examples=7, deadline=None)
@given(families, seeds)
def test_highs_baseline_solves_the_same_model(family: str, seed: int) -> None:
    slots, requests, forbidden = FAMILIES[family].generate(60, seed)
    ours = propose_matches(slots, requests, forbidden=forbidden, seed=seed)
    highs = highs_solve(slots, requests, forbidden, seed=seed, time_limit=30)
    assert highs.optimal
    assert check_assignment(slots, requests, highs.assignment, forbidden) == []
    assert highs.levels == (0, ours.matched_count, ours.preference_score, ours.priority_score)


def test_the_checker_bites_on_the_minors_family() -> None:
    # Negative control: the flow without the lone-minor rule leaves minors alone, and the checker says so.
    slots, requests, forbidden = FAMILIES["minors"].generate(300, FAMILIES["minors"].seed)
    instance = matching._build(slots, requests, forbidden, frozenset(), 0)
    relaxed = matching._flow(instance)
    loose = {instance.requests[instance.edge_student[e]].student_id: instance.slots[instance.edge_slot[e]].id
             for e in relaxed}
    assert any("would visit alone" in v for v in check_assignment(slots, requests, loose, forbidden))
    proposal = propose_matches(slots, requests, forbidden=forbidden, seed=1)
    assert check_assignment(slots, requests, proposal.assignments, forbidden) == []


def test_each_family_is_its_own_generator_with_a_named_seed() -> None:
    seeds = [spec.seed for spec in FAMILIES.values()]
    assert len(set(seeds)) == len(seeds) >= 7
    assert {"ward", "ranked", "sparse", "clustered", "minors", "avoid", "tight"} <= set(FAMILIES)
    first = {name: spec.generate(100, spec.seed) for name, spec in FAMILIES.items()}
    again = FAMILIES["ranked"].generate(100, FAMILIES["ranked"].seed)
    assert again[1] == first["ranked"][1]  # reproducible from (students, seed)
    assert any(r.ranked_households for r in first["ranked"][1])
    assert first["avoid"][2]  # declined pairs


class _Inflated:
    """A HiGHS whose LP optimum is read ``by`` too high: a bound that is no certificate (control)."""

    def __init__(self, solver, by: float) -> None:  # noqa: ANN001
        self.solver, self.by = solver, by

    def getModelStatus(self):  # noqa: ANN201, N802 - HiGHS's spelling
        return self.solver.getModelStatus()

    def getInfo(self):  # noqa: ANN201, N802
        info = self.solver.getInfo()
        return type("Info", (), {"objective_function_value": info.objective_function_value + self.by})


@settings(max_examples=12, deadline=None)
@given(families, st.integers(40, 120), seeds)
def test_the_large_model_path_is_exact_and_its_early_bounds_are_certificates(family: str, students: int,
                                                                                seed: int) -> None:
    # Every stage takes the path of a large model: LP relaxation first, no row capping the loss, the
    # dual bound heard while HiGHS runs.
    slots, requests, forbidden = FAMILIES[family].generate(students, seed)
    with patch.multiple(matching, CAP_ROW_UP_TO=0, LP_FIRST_ABOVE=0):
        exact = propose_matches(slots, requests, forbidden=forbidden, seed=seed)
        early = propose_matches(slots, requests, forbidden=forbidden, seed=seed, target_gap=0.005)
    assert check_assignment(slots, requests, exact.assignments, forbidden) == []
    assert exact.optimal
    assert (exact.matched_count, exact.preference_score) == reference_optimum(slots, requests, forbidden)
    best = (0, exact.matched_count, exact.preference_score, exact.priority_score)
    assert early.gap <= 0.005 and early.upper_bound >= best


def test_a_bound_read_too_high_is_caught() -> None:
    # Negative control for the test above: the same path with the LP optimum read a whole student
    # too high claims a bound below the true optimum, and the assertion that guards it fails.
    slots, requests, forbidden = FAMILIES["minors"].generate(300, FAMILIES["minors"].seed)
    exact = propose_matches(slots, requests, forbidden=forbidden, seed=3)
    best = (0, exact.matched_count, exact.preference_score, exact.priority_score)
    instance = matching._build(slots, requests, forbidden, frozenset(), 3)
    real = matching._highs

    def inflated(lp, seed, deadline, hear=None, **options):  # noqa: ANN001, ANN202, ANN003 - only the LP lies
        solved = real(lp, seed, deadline, hear, **options)
        return solved if lp.integrality_ else _Inflated(solved, by=float(instance.weight_match))

    with patch.multiple(matching, CAP_ROW_UP_TO=0, LP_FIRST_ABOVE=0):
        honest = propose_matches(slots, requests, forbidden=forbidden, seed=3, target_gap=0.005)
        with patch.object(matching, "_highs", inflated):
            lying = propose_matches(slots, requests, forbidden=forbidden, seed=3, target_gap=0.005)
    assert honest.upper_bound >= best
    assert lying.upper_bound < best


def _lying(real):
    """HiGHS's answer replaced by every column at one: it breaks the component's rows (capacity, one
    slot per student) though HiGHS still reports its own status and objective."""

    def get_solution(solver):
        answer = real(solver)
        answer.col_value = [1.0] * len(answer.col_value)
        return answer

    return get_solution


def test_an_answer_that_breaks_the_model_is_never_taken() -> None:
    slots, requests, forbidden = FAMILIES["minors"].generate(300, 4)
    honest = propose_matches(slots, requests, forbidden=forbidden, seed=4)
    assert honest.optimal and "+near" in honest.method  # the stage MIPs decide this round
    lying = patch.object(highspy.Highs, "getSolution", _lying(highspy.Highs.getSolution))
    with lying:
        guarded = propose_matches(slots, requests, forbidden=forbidden, seed=4)
    assert check_assignment(slots, requests, guarded.assignments, forbidden) == []
    assert not guarded.optimal and "+near" not in guarded.method  # nothing taken from HiGHS, no proof claimed
    assert guarded.upper_bound >= (0, honest.matched_count, honest.preference_score, honest.priority_score)
    # Negative control: without the check the lying answer is taken, and the independent checker sees it.
    with lying, patch.object(matching, "_breaks", lambda lp, values: False):
        unguarded = propose_matches(slots, requests, forbidden=forbidden, seed=4)
    assert check_assignment(slots, requests, unguarded.assignments, forbidden) != []


def _every_way(answers: list[tuple[tuple[str, int], ...]]):
    """``_component_mip`` answering each component three ways, recording each (status, least loss):
    as it is (tiny ones by ``_enumerate``, the others by ``_flow_branch`` without a budget), by
    ``_flow_branch`` alone, and by HiGHS alone; the first answer is kept."""
    real = matching._component_mip

    def component_mip(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        with patch.multiple(matching, FLOW_BRANCH_UP_TO=-1, ENUMERATE_UP_TO=0):
            highs = real(*args, **kwargs)
        with patch.multiple(matching, FLOW_BRANCH_UP_TO=10**9, FLOW_BRANCH_WORK=10**12, ENUMERATE_UP_TO=0):
            branched = real(*args, **kwargs)
        with patch.multiple(matching, FLOW_BRANCH_UP_TO=10**9, FLOW_BRANCH_WORK=10**12):
            first = real(*args, **kwargs)
        answers.append(((first[0], first[2]), (branched[0], branched[2]), (highs[0], highs[2])))
        return first

    return component_mip


@settings(max_examples=30, deadline=None)
@given(families, sizes, seeds)
@example("minors", 100, 404)
@example("ranked", 100, 101)
def test_the_small_searches_agree_with_highs_on_every_component(family: str, students: int, seed: int) -> None:
    # Every component's MIP solved every way: the same answer (an assignment within the stage's loss, or
    # none) and the same least loss; the proposal built from the first answers is optimal.
    slots, requests, forbidden = FAMILIES[family].generate(students, seed)
    answers: list[tuple[tuple[str, int], ...]] = []
    with patch.object(matching, "_component_mip", _every_way(answers)):
        proposal = propose_matches(slots, requests, forbidden=forbidden, seed=seed)
    for first, branched, highs in answers:
        assert first[0] in ("OPTIMAL", "INFEASIBLE")
        assert first == branched == highs
    assert check_assignment(slots, requests, proposal.assignments, forbidden) == []
    assert proposal.optimal
    assert (proposal.matched_count, proposal.preference_score) == reference_optimum(slots, requests, forbidden)


def test_the_small_searches_decide_the_small_components_of_the_benchmark_rounds() -> None:
    # Otherwise the test above would compare little: on the benchmark's 100-student rounds both small
    # searches answer components, among them some that needed more than the flow (a minor's rule).
    answered = {"_flow_branch": [0, 0], "_enumerate": [0, 0]}

    def counting(name):  # noqa: ANN001, ANN202
        real = getattr(matching, name)

        def search(*args):  # noqa: ANN002, ANN202
            answer = real(*args)
            answered[name][0] += answer is not None
            answered[name][1] += answer is not None and answer[2] > 0
            return answer

        return search

    with patch.multiple(matching, _flow_branch=counting("_flow_branch"), _enumerate=counting("_enumerate")):
        for name in ("minors", "tight", "avoid", "sparse"):
            spec = FAMILIES[name]
            slots, requests, forbidden = spec.generate(100, spec.seed)
            propose_matches(slots, requests, forbidden=forbidden, seed=spec.seed)
    assert answered["_flow_branch"][0] >= 4 and answered["_flow_branch"][1] >= 3
    assert answered["_enumerate"][0] >= 4 and answered["_enumerate"][1] >= 2


@pytest.mark.parametrize("search", ["_flow_branch", "_enumerate"])
def test_a_small_search_without_the_minors_rule_is_caught(search: str) -> None:
    # Negative control: a small search told no rule (every flow, every way taken as it is) seats minors
    # alone, and the independent checker sees it.
    slots, requests, forbidden = FAMILIES["minors"].generate(100, FAMILIES["minors"].seed)
    real = getattr(matching, search)

    def ruleless(cost, constant, students, lower, slots_, rules, *rest):  # noqa: ANN001, ANN002, ANN202
        return real(cost, constant, students, lower, slots_, [], *rest)

    with patch.object(matching, search, ruleless):
        proposal = propose_matches(slots, requests, forbidden=forbidden, seed=FAMILIES["minors"].seed)
    assert any("would visit alone" in v for v in check_assignment(slots, requests, proposal.assignments, forbidden))


def _spec_pairs(slots, requests, forbidden, pinned):  # noqa: ANN001, ANN202
    """Every (student_id, slot_id) pair the hard rules allow, rule by rule from their statement, with
    each student's candidate counts after each rule (the funnel)."""
    pins: dict[int, set[int]] = {}
    for student_id, household_id in pinned:
        pins.setdefault(student_id, set()).add(household_id)
    pairs, funnels = set(), {}
    for r in requests:
        if r.is_minor and not r.has_consent:
            funnels[r.student_id] = {"stopped_at": matching.NO_CONSENT}
            continue
        left = [s for s in slots if matching.fits_windows(r, s)
                and (r.student_id not in pins or s.household_id in pins[r.student_id])]
        counts = [len(left)]
        for rule in (lambda s, r=r: s.vetted_on_slot_date(), lambda s, r=r: not r.avoided_tags & s.household_tags,
                     lambda s, r=r: (r.student_id, s.household_id) not in forbidden,
                     lambda s, r=r: not r.is_minor or s.capacity >= 2):
            left = [s for s in left if rule(s)]
            counts.append(len(left))
        funnels[r.student_id] = dict(zip(matching._FUNNEL, counts, strict=True))
        pairs |= {(r.student_id, s.id) for s in left}
    return pairs, funnels


@settings(max_examples=40, deadline=None)
@given(families, sizes, seeds, st.integers(0, 40), st.integers(0, 6))
def test_the_built_instance_is_the_rules_pair_by_pair(family: str, students: int, seed: int, declined: int,
                                                       pins: int) -> None:
    # _build filters all pairs at once (numpy): the same pairs, preference points, weights and funnels
    # as the rules stated one pair at a time (declined pairs and pins drawn on top of the family's).
    slots, requests, forbidden = FAMILIES[family].generate(students, seed)
    rng = random.Random(seed)
    households = sorted({s.household_id for s in slots})
    forbidden = frozenset(forbidden | {(rng.choice(requests).student_id, rng.choice(households))
                                       for _ in range(declined)})
    pinned = frozenset((rng.choice(requests).student_id, rng.choice(households)) for _ in range(pins))
    instance = matching._build(slots, requests, forbidden, pinned, seed)
    pairs, funnels = _spec_pairs(slots, requests, forbidden, pinned)
    built = [(instance.requests[i].student_id, instance.slots[j].id)
             for i, j in zip(instance.edge_student, instance.edge_slot, strict=True)]
    assert len(built) == len(set(built)) and set(built) == pairs
    for e, (i, j) in enumerate(zip(instance.edge_student, instance.edge_slot, strict=True)):
        request, slot = instance.requests[i], instance.slots[j]
        assert instance.edge_pref[e] == matching.preference_points(request, slot)
        pinned_weight = instance.weight_pin if i in instance.pinned_households else 0
        assert instance.edge_weight[e] == (instance.weight_match + request.priority + pinned_weight
                                           + instance.edge_pref[e] * instance.weight_pref)
    for i, edges in enumerate(instance.student_edges):
        assert all(instance.edge_student[e] == i for e in edges)
        assert [instance.edge_slot[e] for e in edges] == sorted(instance.edge_slot[e] for e in edges)
    assert sum(map(len, instance.student_edges)) == len(built)
    assert {r.student_id: f for r, f in zip(instance.requests, instance.funnels, strict=True)} == funnels
