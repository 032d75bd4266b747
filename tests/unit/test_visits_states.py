"""events.visits.states: what a visit's state means to each side, from both answers and the place (pure)."""

from __future__ import annotations

import pytest

from events.visits.states import STATES, visit_state


def match(status: str, student: str = "pending", family: str = "pending", place: bool = False) -> dict:
    return {"status": status, "student_response": student, "family_response": family, "place_confirmed": place}


def test_the_student_who_said_yes_waits_for_the_family_and_is_never_told_both_confirmed():
    offered = match("confirmed_by_coordinator", student="accepted")
    assert visit_state(offered, "student") == "waiting_other"
    assert visit_state(offered, "family") == "answer_needed"
    assert visit_state(offered, "guardian") == "offered"
    both = match("accepted", "accepted", "accepted")
    assert visit_state(both, "student") == "waiting_group"  # no place yet: an adult co-visitor is missing
    assert visit_state({**both, "place_confirmed": True}, "student") == "confirmed"


@pytest.mark.parametrize(("student", "family", "side", "expected"), [
    ("declined", "accepted", "student", "declined_by_you"), ("declined", "accepted", "family", "declined_by_other"),
    ("accepted", "declined", "student", "declined_by_other"), ("accepted", "declined", "family", "declined_by_you"),
    ("declined", "pending", "guardian", "declined_by_student"), ("pending", "declined", "guardian", "declined_by_family"),
])
def test_a_decline_says_who_declined(student, family, side, expected):
    assert visit_state(match("declined", student, family), side) == expected


def test_every_state_of_every_side_is_a_known_code():
    for status in ("confirmed_by_coordinator", "accepted", "declined", "cancelled", "on_hold"):
        for student in ("pending", "accepted", "declined"):
            for family in ("pending", "accepted", "declined"):
                for side in ("student", "family", "guardian"):
                    for place in (False, True):
                        assert visit_state(match(status, student, family, place), side) in STATES
    with pytest.raises(ValueError):
        visit_state(match("accepted"), "coordinator")
