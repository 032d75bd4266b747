"""What a home visit's state means to each person who looks at it (pure): the student, the host family, the
guardian of a minor. One code from both sides' answers and the place, so no page says 「双方が確定」 while one
side has not answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SIDES = ("student", "family", "guardian")
# answer_needed: offered, this side has not answered; waiting_other: this side said yes, the other not yet;
# offered (guardian): both sides asked; waiting_group: both said yes, the place waits for an adult co-visitor
# (or the guardian's consent); confirmed: the place is confirmed; declined_by_*: one side said no;
# cancelled: called off by the ward (re-match, cancellation); on_hold: stopped for safety, waiting for a re-match.
STATES = ("answer_needed", "waiting_other", "offered", "waiting_group", "confirmed", "declined_by_you",
          "declined_by_other", "declined_by_student", "declined_by_family", "cancelled", "on_hold")


def visit_state(match: Mapping[str, Any], side: str) -> str:
    """The state of one match as `side` sees it; `match` has status, student_response, family_response and
    place_confirmed (the student's place on the visit is confirmed)."""
    if side not in SIDES:
        raise ValueError(f"unknown side {side!r}")
    status = match["status"]
    if status in ("on_hold", "cancelled"):
        return status
    if status == "declined":
        by = "student" if match["student_response"] == "declined" else "family"
        if side == "guardian":
            return f"declined_by_{by}"
        return "declined_by_you" if by == side else "declined_by_other"
    if status == "accepted":
        return "confirmed" if match.get("place_confirmed") else "waiting_group"
    if side == "guardian":
        return "offered"
    mine = match["student_response"] if side == "student" else match["family_response"]
    return "answer_needed" if mine != "accepted" else "waiting_other"
