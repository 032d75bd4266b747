"""The verifiable draw (v2): priority respected, groups atomic, the commitment binds the seed, and the order can be
recomputed from public data only — by the standalone script too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from events.lottery import Allocation, Entry, allocate, commitment, ticket_order, verify_allocation

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=200, deadline=None)

entries_st = st.lists(
    st.builds(Entry, ticket=st.text("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=6, max_size=8),
              priority=st.integers(0, 3), size=st.integers(1, 3)),
    max_size=40, unique_by=lambda e: e.ticket)
seats_st = st.integers(0, 60)
seeds = st.text("0123456789abcdef", min_size=8, max_size=32)


@SETTINGS
@given(entries_st, seats_st, seeds)
def test_seats_never_exceeded_and_everyone_placed_once(entries, seats, seed):
    result = allocate(entries, seats, seed)
    size = {e.ticket: e.size for e in entries}
    assert sum(size[t] for t in result.winners) <= seats
    assert sorted(result.winners + result.waitlist) == sorted(size)


@SETTINGS
@given(entries_st, seats_st, seeds)
def test_priority_is_respected(entries, seats, seed):
    """No waiting entry of a higher group could have fitted where a lower group won."""
    result = allocate(entries, seats, seed)
    by_ticket = {e.ticket: e for e in entries}
    left = seats - sum(by_ticket[t].size for t in result.winners)
    for waiting in result.waitlist:
        for winner in result.winners:
            if by_ticket[winner].priority < by_ticket[waiting].priority:
                assert by_ticket[waiting].size > left + by_ticket[winner].size


@SETTINGS
@given(entries_st, seats_st, seeds)
def test_groups_win_or_wait_whole_and_the_order_is_kept(entries, seats, seed):
    result = allocate(entries, seats, seed)
    order = ticket_order(entries, seed)
    assert list(result.winners) == [t for t in order if t in result.winners]
    assert list(result.waitlist) == [t for t in order if t in result.waitlist]


@SETTINGS
@given(entries_st, seats_st, seeds, st.randoms(use_true_random=False))
def test_the_order_applications_arrive_in_does_not_matter(entries, seats, seed, shuffler):
    shuffled = list(entries)
    shuffler.shuffle(shuffled)
    assert allocate(entries, seats, seed) == allocate(shuffled, seats, seed)


@SETTINGS
@given(entries_st, seats_st, seeds, seeds)
def test_the_commitment_binds_the_seed(entries, seats, seed, other):
    published = commitment(seed)
    recorded = allocate(entries, seats, seed)
    assert verify_allocation(entries, seats, seed, published, recorded)
    if other != seed:  # another seed (even one giving the same order) is refused: it was not committed to
        assert not verify_allocation(entries, seats, other, published, allocate(entries, seats, other))


def test_tampering_is_detected_and_a_golden_value_pins_the_algorithm():
    entries = [Entry("AAAAAA", 1), Entry("BBBBBB", 0, 2), Entry("CCCCCC", 0), Entry("DDDDDD", 1)]
    seed = "00" * 16
    result = allocate(entries, 3, seed)
    # the pair BBBBBB comes before CCCCCC in the order but no longer fits; CCCCCC takes the last seat
    assert result == Allocation(seed, ("AAAAAA", "DDDDDD", "CCCCCC"), ("BBBBBB",))
    published = commitment(seed)
    assert published == "84e0c0eafaa95a34c293f278ac52e45ce537bab5e752a00e6959a13ae103b65a"
    forged = Allocation(seed, ("DDDDDD", "AAAAAA", "CCCCCC"), ("BBBBBB",))
    assert not verify_allocation(entries, 3, seed, published, forged)
    assert not verify_allocation(entries, 3, seed, "", result)  # no commitment, no proof


def test_the_standalone_script_recomputes_from_the_public_record(tmp_path):
    entries = [Entry(f"T{i:05d}", i % 3, 1 + (i % 4 == 0)) for i in range(40)]
    seed = "ab" * 16
    result = allocate(entries, 12, seed)
    record = {"commitment": commitment(seed), "seed": seed, "seats": 12,
              "entries": [{"ticket": e.ticket, "priority": e.priority, "size": e.size} for e in entries],
              "winners": list(result.winners), "waitlist": list(result.waitlist)}
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record))
    ok = subprocess.run([sys.executable, str(ROOT / "scripts/verify_lottery.py"), str(path), "--ticket",
                         result.waitlist[0]], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("OK") and "waiting list, position 1" in ok.stdout
    record["winners"] = record["winners"][::-1]  # negative control: a reordered record is caught
    path.write_text(json.dumps(record))
    bad = subprocess.run([sys.executable, str(ROOT / "scripts/verify_lottery.py"), str(path)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout.startswith("MISMATCH")
