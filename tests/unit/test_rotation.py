"""Tests of the exchange-session table rotation core (events/rotation.py)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.rotation import (
    Participant,
    RotationError,
    RotationPlan,
    count_repeats,
    plan_rotation,
    rotation_bound,
    table_sizes,
)


def meetings(rounds) -> Counter:
    met: Counter = Counter()
    for round_ in rounds:
        for table in round_:
            for x, y in itertools.combinations(sorted(table), 2):
                met[x, y] += 1
    return met


def check_rules(plan: RotationPlan, people: list[Participant], tables: int, skip: int = 0) -> None:
    """Every planned round seats everyone once, balanced, colleagues apart; reported figures are true."""
    facility = {p.id: p.facility_id for p in people}
    for round_ in plan.rounds[skip:]:
        assert len(round_) == tables
        seated = [x for table in round_ for x in table]
        assert sorted(seated) == sorted(facility)
        sizes = [len(t) for t in round_]
        assert max(sizes) - min(sizes) <= 1
        for table in round_:
            assert len({facility[x] for x in table}) == len(table)
    repeats, clash_free = count_repeats(plan.rounds)
    assert plan.repeat_pairs == repeats
    assert plan.clash_free_rounds == clash_free
    assert plan.same_facility_pairs == 0


@st.composite
def instances(draw):
    n = draw(st.integers(2, 36))
    k = draw(st.integers(2, 6))
    tables = -(-n // k)
    facility_count = draw(st.integers(-(-n // tables), n))
    facilities = [i % facility_count for i in range(n)]  # round-robin keeps each facility <= tables
    order = draw(st.permutations(list(range(n))))
    people = [Participant(100 + order[i], facilities[i]) for i in range(n)]
    rounds = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31))
    return people, k, rounds, seed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_random_instances_keep_facility_rule_balance_and_bound(instance) -> None:
    people, k, rounds, seed = instance
    plan = plan_rotation(people, rounds, table_size=k, seed=seed, time_limit=0.3, max_steps=3000)
    check_rules(plan, people, -(-len(people) // k))
    assert len(plan.rounds) == rounds
    if plan.bound >= 0:
        assert plan.clash_free_rounds <= max(plan.bound, 0) or plan.clash_free_rounds == rounds == 1


@settings(max_examples=15, deadline=None)
@given(instances(), st.integers(1, 3))
def test_replan_keeps_fixed_rounds_verbatim(instance, held) -> None:
    people, k, rounds, seed = instance
    rounds = max(rounds, held + 1)
    first = plan_rotation(people, rounds, table_size=k, seed=seed, time_limit=0.2, max_steps=2000)
    # One person leaves and a newcomer of a fresh facility arrives after `held` rounds.
    late = [*people[1:], Participant(10_000, -1)]
    again = plan_rotation(late, rounds, table_size=k, seed=seed + 1, fixed_rounds=first.rounds[:held],
                          time_limit=0.2, max_steps=2000)
    assert again.rounds[:held] == first.rounds[:held]
    check_rules(again, late, -(-len(late) // k), skip=held)


@pytest.mark.parametrize(("q", "rows"), [(2, 2), (3, 3), (4, 3), (4, 4), (5, 3), (7, 4), (8, 4), (9, 5), (11, 6)])
def test_field_construction_has_no_repeats_for_q_rounds(q: int, rows: int) -> None:
    people = [Participant(i, i) for i in range(q * rows)]
    plan = plan_rotation(people, q, tables=q, seed=3)
    assert plan.repeat_pairs == 0
    assert plan.clash_free_rounds == q
    assert plan.method == f"gf({q}) construction"
    assert plan.search_steps == ()
    check_rules(plan, people, q)


@pytest.mark.parametrize(("q", "n"), [(7, 25), (8, 29), (5, 13)])
def test_field_construction_pads_with_ghost_places(q: int, n: int) -> None:
    people = [Participant(i, i) for i in range(n)]
    plan = plan_rotation(people, q, tables=q)
    assert plan.repeat_pairs == 0
    assert plan.method == f"gf({q}) construction"
    check_rules(plan, people, q)


def test_construction_packs_each_facility_in_a_row() -> None:
    # 7 tables, 28 staff from facilities of 7, 4, 3, 5, 2, 4, 3: they pack into 4 rows of 7.
    sizes = [7, 4, 3, 5, 2, 4, 3]
    people = [Participant(i, f) for i, f in enumerate(f for f, s in enumerate(sizes) for _ in range(s))]
    plan = plan_rotation(people, 7, tables=7)
    assert plan.method == "gf(7) construction"
    assert plan.repeat_pairs == 0
    check_rules(plan, people, 7)


def test_kirkman_row_split_round_and_social_golfer_8_4_9() -> None:
    people = [Participant(i, i) for i in range(32)]
    plan = plan_rotation(people, 9, table_size=4, seed=0)
    assert plan.repeat_pairs == 0
    assert plan.clash_free_rounds == 9
    assert plan.bound == 10
    check_rules(plan, people, 8)


def test_search_extends_past_the_construction() -> None:
    # 24 people in threes: GF(8) gives 8 rounds, the search must find the 9th.
    # (Kirkman's schoolgirls, the earlier example here, now come from a stored design.)
    people = [Participant(i, i) for i in range(24)]
    plan = plan_rotation(people, 9, table_size=3, seed=0, time_limit=60.0)
    assert plan.repeat_pairs == 0
    assert plan.method == "gf(8) construction + local search"
    check_rules(plan, people, 8)


@pytest.mark.parametrize(("groups", "size", "rounds", "kind"),
                         [(5, 3, 7, "cyclic"), (6, 3, 8, "cyclic"), (7, 3, 10, "cyclic"), (6, 4, 7, "cyclic"),
                          (7, 4, 9, "cyclic"), (8, 4, 10, "affine")])
def test_stored_designs_reach_the_bound_without_repeats(groups: int, size: int, rounds: int, kind: str) -> None:
    people = [Participant(i, i) for i in range(groups * size)]
    plan = plan_rotation(people, rounds, table_size=size, seed=0)
    assert plan.bound == rounds
    assert plan.repeat_pairs == 0
    assert plan.clash_free_rounds == rounds
    assert plan.method == f"{kind} design {groups}x{size}"
    assert plan.search_steps == ()
    assert max(meetings(plan.rounds).values()) == 1
    check_rules(plan, people, groups)


def test_stored_design_rounds_that_seat_colleagues_are_dropped() -> None:
    # Persons 0 and 1 are colleagues: in a Kirkman triple system they meet in exactly one round.
    people = [Participant(i, 0 if i < 2 else i) for i in range(15)]
    plan = plan_rotation(people, 6, table_size=3, seed=0)
    assert plan.method == "cyclic design 5x3"
    assert plan.repeat_pairs == 0
    check_rules(plan, people, 5)


def test_stored_designs_cover_each_pair_at_most_once() -> None:
    from events.rotation import _DESIGNS, _design_rounds

    assert {(8, 4), (5, 3), (6, 3), (7, 3), (6, 4), (7, 4)} <= set(_DESIGNS)  # 8-4-10 among them
    for (groups, size), design in _DESIGNS.items():
        rounds = _design_rounds(design)
        assert all(sorted(x for t in r for x in t) == list(range(groups * size)) for r in rounds)
        assert all(len(t) == size for r in rounds for t in r)
        assert max(meetings(rounds).values()) == 1
        assert len(rounds) == (groups * size - 1) // (size - 1)


def test_beyond_the_bound_repeats_are_spread() -> None:
    people = [Participant(i, i % 6) for i in range(24)]  # 6 facilities of 4, 6 tables of 4
    # the step budget, not the clock, ends the search: the same plan on a loaded CI machine as here
    plan = plan_rotation(people, 8, table_size=4, seed=1, time_limit=120.0, max_steps=3000)
    check_rules(plan, people, 6)
    assert plan.bound == 6  # (24 - 4) // 3
    assert plan.repeat_pairs > 0
    assert max(meetings(plan.rounds).values()) == 2  # no pair meets three times


def test_a_search_cut_by_the_clock_replays_exactly() -> None:
    # Two facilities as big as the number of tables make this tight: the clock cuts the search.
    sizes = [6, 6, 5, 3, 3, 3, 3, 2, 2, 2, 1]
    people = [Participant(i, f) for i, f in enumerate(f for f, s in enumerate(sizes) for _ in range(s))]
    cut = plan_rotation(people, 8, table_size=6, seed=11, time_limit=0.15)
    assert sum(cut.search_steps) > 0
    replay = plan_rotation(people, 8, table_size=6, seed=11, time_limit=30.0, replay_steps=cut.search_steps)
    assert replay.rounds == cut.rounds
    assert replay.search_steps == cut.search_steps
    check_rules(cut, people, 6)


def test_same_seed_same_plan_when_search_is_needed() -> None:
    people = [Participant(i, i % 5) for i in range(24)]  # 6 tables: not a prime power, pure search
    kwargs = {"table_size": 4, "seed": 5, "time_limit": 30.0, "max_steps": 600}
    first = plan_rotation(people, 5, **kwargs)
    assert first.method == "local search"
    assert sum(first.search_steps) > 0
    assert plan_rotation(people, 5, **kwargs) == first


def test_pairs_met_in_fixed_rounds_count_as_met() -> None:
    people = [Participant(i, i % 10) for i in range(40)]
    first = plan_rotation(people, 2, table_size=5, seed=2)
    again = plan_rotation(people, 5, table_size=5, seed=9, fixed_rounds=first.rounds)
    assert again.rounds[:2] == first.rounds
    assert again.repeat_pairs == 0
    assert again.clash_free_rounds == 5


def test_departed_people_stay_in_fixed_rounds_and_are_ignored() -> None:
    people = [Participant(i, i % 6) for i in range(30)]
    first = plan_rotation(people, 4, table_size=5, seed=4)
    stayed = [p for p in people if p.id not in (0, 7)]
    again = plan_rotation(stayed, 4, table_size=5, seed=4, fixed_rounds=first.rounds[:1])
    assert again.rounds[0] == first.rounds[0]
    for round_ in again.rounds[1:]:
        assert sorted(x for t in round_ for x in t) == sorted(p.id for p in stayed)


def test_prior_meetings_are_avoided_when_there_is_room() -> None:
    people = [Participant(i, i % 8) for i in range(48)]
    earlier = plan_rotation(people, 3, table_size=4, seed=1)
    prior = list(meetings(earlier.rounds))
    plain = plan_rotation(people, 3, table_size=4, seed=2)
    aware = plan_rotation(people, 3, table_size=4, seed=2, prior_meetings=prior, time_limit=30.0)
    assert aware.repeat_pairs == 0
    met_before_plain = sum(meetings(plain.rounds)[pair] for pair in prior)
    met_before_aware = sum(meetings(aware.rounds)[pair] for pair in prior)
    assert met_before_aware < met_before_plain
    assert met_before_aware == 0  # 48 people, 3 rounds of 4: plenty of strangers left


def test_tables_argument_and_table_balance() -> None:
    people = [Participant(i, i) for i in range(23)]
    plan = plan_rotation(people, 3, tables=5, seed=0)
    check_rules(plan, people, 5)
    assert sorted(len(t) for t in plan.rounds[0]) == [4, 4, 5, 5, 5]


def test_bound_formula() -> None:
    assert rotation_bound(32, 1, 4) == 10  # 8-4-10
    assert rotation_bound(15, 1, 3) == 7  # Kirkman's schoolgirls
    assert rotation_bound(25, 1, 5) == 6
    assert rotation_bound(28, 1, 4) == 9
    assert rotation_bound(40, 5, 4) == 11  # (40 - 5) // 3 with a facility of 5
    # The pair count bound is tighter when tables are uneven: 45 pairs, 8 per round.
    assert rotation_bound(10, 1, 2) == 9
    assert rotation_bound(10, 1, 2, sizes=table_sizes(10, 4)) == 5
    assert rotation_bound(5, 1, 1) == -1
    assert table_sizes(23, 5) == (5, 5, 5, 4, 4)


def test_count_repeats() -> None:
    rounds = [[[1, 2], [3, 4]], [[1, 3], [2, 4]], [[1, 2], [3, 4]], [[1, 4], [2, 3]]]
    assert count_repeats(rounds) == (2, 2)
    assert count_repeats([]) == (0, 0)


def test_facility_larger_than_tables_is_refused_with_numbers() -> None:
    people = [Participant(i, 0 if i < 5 else i) for i in range(16)]
    with pytest.raises(RotationError, match=r"facility 0 has 5 people but there are only 4 tables"):
        plan_rotation(people, 3, table_size=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"table_size": 4, "tables": 3}, "exactly one"),
        ({}, "exactly one"),
        ({"table_size": 0}, "table_size"),
        ({"tables": 0}, "tables"),
        ({"table_size": 4, "fixed_rounds": [[[1, 2]], [[1, 2]], [[1, 2]], [[1, 2]]]}, "fixed rounds"),
        ({"table_size": 4, "fixed_rounds": [[[1, 2], [2, 3]]]}, "twice"),
    ],
)
def test_invalid_input_is_refused(kwargs: dict, message: str) -> None:
    people = [Participant(i, i) for i in range(8)]
    with pytest.raises(RotationError, match=message):
        plan_rotation(people, 3, **kwargs)


def test_duplicate_ids_are_refused_and_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unique"):
        plan_rotation([Participant(1, 1), Participant(1, 2)], 2, table_size=2)


def test_empty_session() -> None:
    assert plan_rotation([], 2, table_size=4).rounds == (((),), ((),))
    assert plan_rotation([Participant(1, 1)], 0, table_size=4).rounds == ()


def test_facilities_as_large_as_the_table_count_are_seated_as_a_latin_square() -> None:
    # 14 tables (neither 14 nor 15 a prime power: the search seats everyone), two facilities of
    # 14: each table holds one of each in every round, and their members are pinned (facility 0
    # member i at table i, facility 1 shifted by the round).
    people = [Participant(i, 0 if i < 14 else 1 if i < 28 else i) for i in range(70)]
    plan = plan_rotation(people, 6, table_size=5, seed=0, time_limit=30.0)
    assert plan.method == "local search"
    check_rules(plan, people, 14)
    assert plan.repeat_pairs == 0
    assert plan.clash_free_rounds == 6
    for r, round_ in enumerate(plan.rounds):
        for table in round_:
            a = next(x for x in table if x < 14)
            b = next(x for x in table if 14 <= x < 28) - 14
            assert (a - b) % 14 == r  # table a holds facility 1's member a - r


@pytest.mark.parametrize(("sizes", "rounds"), [
    ([10, 10, 7, 5, 5, 5, 4, 4, 3, 3, 2, 1], 6),  # bench ward9: 59 people, 10 tables of 6 (one of 5)
    ([10, 10, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 1, 1], 6),  # bench ward11's people, two tables of 5
    ([10, 10] + [1] * 30, 7),  # 50 people in fives: 10 + 2 - 5 = 7 rounds
])
def test_line_construction_over_gf_tables_plus_one(sizes: list[int], rounds: int) -> None:
    # 10 tables: GF(11) with one symbol left out; facilities packed into classes of lines that never meet.
    people = [Participant(i, f) for i, f in enumerate(f for f, s in enumerate(sizes) for _ in range(s))]
    plan = plan_rotation(people, rounds, table_size=-(-len(people) // 10), seed=0)
    assert plan.method == "gf(11) line construction"
    assert plan.search_steps == ()
    assert plan.repeat_pairs == 0
    assert plan.clash_free_rounds == rounds
    check_rules(plan, people, 10)


def test_line_construction_gives_up_when_facilities_do_not_pack() -> None:
    from events.rotation import _line_construction

    fac = np.repeat(np.arange(6), [10, 10, 9, 7, 7, 7])  # 9 + 7 + 7 + 7 do not fit three classes of 10
    assert _line_construction(fac, 10) == []
    assert len(_line_construction(np.arange(50), 10)) == 7


def test_affine_lift_8_4_10_seats_two_person_facilities_on_pairs_that_never_meet() -> None:
    from events.rotation import _DESIGNS, _design_rounds

    met = meetings(_design_rounds(_DESIGNS[8, 4]))
    assert len(met) == 32 * 31 // 2 - 16
    assert all((s, s + 16) not in met for s in range(16))  # the only pairs that never meet
    people = [Participant(i, i // 2) for i in range(32)]  # 16 facilities of two
    plan = plan_rotation(people, 10, table_size=4, seed=0)
    assert plan.bound == 10
    assert plan.method == "affine design 8x4"
    assert plan.repeat_pairs == 0
    assert plan.clash_free_rounds == 10
    check_rules(plan, people, 8)


def test_two_full_facilities_reach_the_bound_within_time() -> None:
    people = [Participant(i, 0 if i < 6 else 1 if i < 12 else i) for i in range(24)]
    plan = plan_rotation(people, 5, table_size=4, seed=0, time_limit=30.0)
    check_rules(plan, people, 6)
    assert plan.bound == 6
    assert plan.clash_free_rounds == 5
