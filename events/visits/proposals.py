"""Matching runs: solver input from the database, a stored proposal, pins/forbids, and its confirmation.

The solver (events.matching) runs outside any write transaction (it may take seconds); the proposal is
saved only if the input is unchanged (same digest) and `check_assignment` finds no violation.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events import access, audit, matching
from events.access import Actor
from events.core.tables import Person
from events.db import is_sqlite, raw, utcnow, write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.visits import confirmations, households, requests, rounds
from events.visits.requests import consent_decisions, windows_of
from events.visits.rounds import get_round
from events.visits.tables import (
    LIVE_MATCH_STATES,
    Household,
    VisitMatch,
    VisitPairRule,
    VisitProposal,
    VisitRequest,
    VisitRound,
    VisitSlot,
)

# Why a student is unmatched, in words a coordinator reads (English in visits.po).
REASON_LABELS = {
    matching.NO_CONSENT: "保護者の同意がまだ得られていません",
    matching.NO_SLOT_AT_THEIR_TIMES: "希望の時間帯に枠がありません",
    matching.ONLY_UNVETTED_HOUSEHOLDS: "希望の時間帯には、面談（確認）が済んでいない家庭しかありません",
    matching.AVOIDED_TAGS_EVERYWHERE: "希望の時間帯の家庭は、すべて避けたい条件（ペットなど）に当てはまります",
    matching.FORBIDDEN: "組み合わせ禁止の設定により、候補の家庭がありません",
    matching.WOULD_BE_LONE_MINOR: "18歳未満の方が一人で訪問することになるため、割り当てられません",
    matching.ALL_COMPATIBLE_SLOTS_FULL: "条件に合う枠がすべて埋まっています",
    matching.PIN_INFEASIBLE: "固定した組み合わせを実現できません",
    matching.NOT_CHOSEN: "計算時間内に割り当てられませんでした",
}
DEFAULT_TIME_LIMIT = 10.0


@dataclass
class SolverInput:
    round_id: int
    slots: list[matching.Slot]
    requests: list[matching.Request]
    pinned: set[tuple[int, int]]
    forbidden: set[tuple[int, int]]
    request_ids: dict[int, int]  # student_id -> request id
    digest: str


def _digest(slots: list[matching.Slot], requests: list[matching.Request], pinned: set, forbidden: set) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, (set, frozenset)):
            return sorted(plain(v) for v in value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value if value is None or isinstance(value, (int, str, bool, float)) else str(value)

    body = {
        "slots": [[plain(getattr(s, f)) for f in s.__dataclass_fields__] for s in sorted(slots, key=lambda s: s.id)],
        "requests": [[plain(getattr(r, f)) for f in r.__dataclass_fields__]
                     for r in sorted(requests, key=lambda r: r.student_id)],
        "pinned": plain(pinned), "forbidden": plain(forbidden),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


async def solver_input(round_id: int) -> SolverInput:
    """Everything the solver needs, read from the database; live matches are pinned to their exact slot."""
    slot_rows = await VisitSlot.select(
        VisitSlot.id, VisitSlot.household, VisitSlot.starts_at, VisitSlot.ends_at, VisitSlot.capacity,
        VisitSlot.household.district.as_alias("district"), VisitSlot.household.tags.as_alias("tags"),
        VisitSlot.household.vetted_until.as_alias("vetted_until"),
    ).where((VisitSlot.round == round_id) & (VisitSlot.status == "offered")).output(load_json=True)
    slots = [matching.Slot(
        id=row["id"], household_id=row["household"], district=row["district"], starts_at=row["starts_at"],
        ends_at=row["ends_at"], capacity=row["capacity"], household_tags=frozenset(row["tags"]),
        vetted_until=row["vetted_until"],
    ) for row in slot_rows]
    slot_by_id = {s.id: s for s in slots}
    request_rows = await VisitRequest.select().where(
        (VisitRequest.round == round_id) & (VisitRequest.status == "active")).output(load_json=True)
    decisions = await consent_decisions(round_id)
    match_rows = await VisitMatch.select(VisitMatch.student, VisitMatch.slot, VisitMatch.household,
                                         VisitMatch.status).where(
        (VisitMatch.round == round_id) & VisitMatch.status.is_in([*LIVE_MATCH_STATES, "declined"]))
    live = {row["student"]: row["slot"] for row in match_rows if row["status"] in LIVE_MATCH_STATES}
    forbidden = {(row["student"], row["household"]) for row in match_rows if row["status"] == "declined"}
    pinned: set[tuple[int, int]] = set()
    for row in await VisitPairRule.select().where(VisitPairRule.round == round_id):
        (pinned if row["kind"] == "pin" else forbidden).add((row["student"], row["household"]))
    priority = await _previous_unmatched(round_id, [row["student"] for row in request_rows])
    requests = []
    every_slot = tuple(sorted({(s.starts_at, s.ends_at) for s in slots}))
    for row in request_rows:
        # "any slot": every slot offered in the round is one of the student's windows
        windows = tuple(sorted({*windows_of(row), *every_slot})) if row["any_time"] else tuple(windows_of(row))
        student = row["student"]
        if student in live and live[student] in slot_by_id:
            # keep an offered or accepted visit exactly where it is
            slot = slot_by_id[live[student]]
            windows = ((slot.starts_at, slot.ends_at),)
            pinned = {p for p in pinned if p[0] != student} | {(student, slot.household_id)}
            forbidden.discard((student, slot.household_id))
        requests.append(matching.Request(
            student_id=student, is_minor=row["is_minor"],
            has_consent=not row["is_minor"] or decisions.get(row["id"]) == "given",
            windows=windows, districts=frozenset(row["districts"]), wanted_tags=frozenset(row["wanted_tags"]),
            avoided_tags=frozenset(row["avoided_tags"]), priority=priority.get(student, 0),
        ))
    students = {r.student_id for r in requests}
    pinned = {p for p in pinned if p[0] in students}
    forbidden = {p for p in forbidden if p[0] in students}
    return SolverInput(round_id=round_id, slots=slots, requests=requests, pinned=pinned, forbidden=forbidden,
                       request_ids={row["student"]: row["id"] for row in request_rows},
                       digest=_digest(slots, requests, pinned, forbidden))


async def _previous_unmatched(round_id: int, students: list[int]) -> dict[int, int]:
    """Fairness: how many earlier (closed) rounds each student asked in and did not get a visit."""
    if not students:
        return {}
    earlier = await VisitRequest.select(VisitRequest.id, VisitRequest.student).where(
        (VisitRequest.round < round_id) & VisitRequest.student.is_in(students) & (VisitRequest.status == "active")
        & VisitRequest.round.status.is_in(["closed", "completed"]))
    if not earlier:
        return {}
    visited = {row["request"] for row in await VisitMatch.select(VisitMatch.request).where(
        VisitMatch.request.is_in([r["id"] for r in earlier]) & (VisitMatch.status == "accepted"))}
    counts: dict[int, int] = {}
    for row in earlier:
        if row["id"] not in visited:
            counts[row["student"]] = counts.get(row["student"], 0) + 1
    return counts


async def run_matching(round_id: int, actor: Actor, *, seed: int | None = None,
                       time_limit: float = DEFAULT_TIME_LIMIT) -> int:
    """Propose an assignment for the round and store it as a draft proposal (earlier drafts are superseded)."""
    access.require_staff(actor)
    round_row = await get_round(round_id)
    if round_row["status"] == "completed":
        raise Conflict("この訪問回は終了しています。", code="round_completed")
    if seed is not None and not 0 <= seed < 2**31:
        raise Invalid("シードは0以上 2147483647 以下の整数です。", code="invalid_seed", field="seed")
    seed = round_row["seed"] if seed is None else seed
    data = await solver_input(round_id)
    result = await asyncio.to_thread(
        matching.propose_matches, data.slots, data.requests, forbidden=data.forbidden, pinned=data.pinned,
        seed=seed, time_limit=time_limit,
    )
    violations = matching.check_assignment(data.slots, data.requests, result.assignments, data.forbidden,
                                           _honoured_pins(data.pinned, result))
    if violations:  # never store a proposal that breaks a hard rule
        raise Conflict("割り当て結果の検証に失敗しました: " + "; ".join(violations[:3]),
                       code="assignment_invalid", status=500)
    slot_by_id = {s.id: s for s in data.slots}
    request_by_student = {r.student_id: r for r in data.requests}
    now = utcnow()
    async with write_transaction():
        await _lock_round(round_id)
        if (await solver_input(round_id)).digest != data.digest:
            raise Conflict("計算中に応募や枠が変わりました。もう一度マッチングを実行してください。",
                           code="input_changed")
        await _supersede_drafts(round_id)
        row = await VisitProposal.insert(VisitProposal(
            round=round_id, seed=seed, method=result.method, optimal=result.optimal, gap=result.gap,
            matched_count=result.matched_count, request_count=len(data.requests),
            preference_score=result.preference_score, priority_score=result.priority_score,
            seconds=round(result.seconds, 3),
            unmatched={str(student): {"reason": why.reason, "details": dict(why.details)}
                       for student, why in result.unmatched.items()},
            rules={"pinned": sorted(data.pinned), "forbidden": sorted(data.forbidden),
                   "infeasible_pins": sorted(result.infeasible_pins)},
            input_digest=data.digest, created_by=actor.person_id, created_at=now,
        )).returning(VisitProposal.id)
        proposal_id = row[0]["id"]
        rows = [VisitMatch(
            proposal=proposal_id, round=round_id, slot=slot_id, request=data.request_ids[student], student=student,
            household=slot_by_id[slot_id].household_id, status="proposed",
            preference_points=matching.preference_points(request_by_student[student], slot_by_id[slot_id]),
            created_at=now,
        ) for student, slot_id in result.assignments.items()]
        for start in range(0, len(rows), 200):  # one statement per batch, not per match
            await VisitMatch.insert(*rows[start:start + 200])
        await audit.record(actor, "visit_matching_run", subject_type="visit_round",
                           subject_id=round_id, detail={"proposal": proposal_id, "seed": seed,
                                                        "matched": result.matched_count,
                                                        "requests": len(data.requests), "optimal": result.optimal})
    return proposal_id


async def _lock_round(round_id: int) -> None:
    """Runs and confirmations of one round go one at a time (PostgreSQL; SQLite writers already queue)."""
    if not is_sqlite():
        await raw("SELECT id FROM visit_round WHERE id = {} FOR UPDATE", round_id)


def _honoured_pins(pinned: set[tuple[int, int]], result: matching.Proposal) -> set[tuple[int, int]]:
    # An infeasible pin is reported by the solver, not a violation of the proposal it returns.
    return {p for p in pinned if p not in result.infeasible_pins and p[0] in result.assignments}


async def _supersede_drafts(round_id: int) -> None:
    drafts = [r["id"] for r in await VisitProposal.select(VisitProposal.id).where(
        (VisitProposal.round == round_id) & (VisitProposal.status == "draft"))]
    if drafts:
        await VisitProposal.update({VisitProposal.status: "superseded"}).where(VisitProposal.id.is_in(drafts))
        await VisitMatch.update({VisitMatch.status: "superseded"}).where(
            VisitMatch.proposal.is_in(drafts) & (VisitMatch.status == "proposed"))


async def set_rule(actor: Actor, round_id: int, *, student_id: int, household_id: int, kind: str) -> None:
    access.require_staff(actor)
    """Pin or forbid a (student, household) pair for the next runs; kind 'none' removes the rule."""
    if kind not in ("pin", "forbid", "none"):
        raise Invalid("固定・禁止・解除のいずれかを選んでください。", code="invalid_rule_kind", field="kind")
    async with write_transaction():
        await get_round(round_id)
        if not await VisitRequest.exists().where((VisitRequest.round == round_id)
                                                 & (VisitRequest.student == student_id)):
            raise NotFound("この回にその学生の申込はありません。", code="request_not_found")
        if not await Household.exists().where(Household.id == household_id):
            raise NotFound("その家庭は見つかりません。", code="household_not_found")
        await VisitPairRule.delete().where((VisitPairRule.round == round_id) & (VisitPairRule.student == student_id)
                                           & (VisitPairRule.household == household_id))
        if kind != "none":
            await VisitPairRule.insert(VisitPairRule(round=round_id, student=student_id, household=household_id,
                                                     kind=kind, created_by=actor.person_id, created_at=utcnow()))
        await audit.record(actor, "visit_pair_rule", subject_type="visit_round",
                           subject_id=round_id, detail={"student": student_id, "household": household_id,
                                                        "kind": kind})


async def rules_of_round(round_id: int, *, actor: Actor) -> list[dict[str, Any]]:
    """Pins and forbids of a round, with student names (audited)."""
    access.require_staff(actor)
    return await audit.viewed(actor, "staff_viewed_pair_rules", lambda: _rules(round_id), subject_type="visit_round",
                              subject_id=round_id)


async def _rules(round_id: int) -> list[dict[str, Any]]:
    return await VisitPairRule.select(
        VisitPairRule.all_columns(), VisitPairRule.student.name.as_alias("student_name"),
        VisitPairRule.household.display_name.as_alias("household_name"),
    ).where(VisitPairRule.round == round_id).order_by(VisitPairRule.id)


async def latest_proposal_id(round_id: int) -> int | None:
    row = await VisitProposal.select(VisitProposal.id).where(VisitProposal.round == round_id).order_by(
        VisitProposal.id, ascending=False).first()
    return row["id"] if row else None


async def proposal_view(proposal_id: int, *, actor: Actor) -> dict[str, Any]:
    """The review: who visits whom, where and when, the fit, the live state, and why others are unmatched
    (student names and minors: audited)."""
    access.require_staff(actor)
    return await audit.viewed(actor, "staff_viewed_proposal", lambda: _proposal_view(proposal_id),
                              subject_type="visit_proposal", subject_id=proposal_id,
                              detail=lambda view: {"matches": len(view["matches"])})


async def _proposal_view(proposal_id: int) -> dict[str, Any]:
    proposal = await VisitProposal.select().where(VisitProposal.id == proposal_id).output(load_json=True).first()
    if proposal is None:
        raise NotFound("その提案は見つかりません。", code="proposal_not_found")
    rows = await VisitMatch.select(
        VisitMatch.all_columns(), VisitMatch.student.name.as_alias("student_name"),
        VisitMatch.request.is_minor.as_alias("is_minor"),
        VisitMatch.household.display_name.as_alias("household_name"),
        VisitMatch.household.district.as_alias("district"), VisitMatch.slot.starts_at.as_alias("starts_at"),
        VisitMatch.slot.ends_at.as_alias("ends_at"), VisitMatch.slot.capacity.as_alias("capacity"),
    ).where(VisitMatch.proposal == proposal_id).order_by(VisitMatch.slot.starts_at).order_by(VisitMatch.slot)
    live = {row["student"]: row for row in await VisitMatch.select(
        VisitMatch.id, VisitMatch.student, VisitMatch.slot, VisitMatch.status).where(
        (VisitMatch.round == proposal["round"]) & VisitMatch.status.is_in(LIVE_MATCH_STATES))}
    for row in rows:
        current = live.get(row["student"])
        same_slot = bool(current and current["slot"] == row["slot"])
        row["kept"] = same_slot and current["id"] != row["id"]  # an earlier offer this proposal keeps
        row["live_status"] = current["status"] if same_slot else ""
        row["live_id"] = current["id"] if same_slot else None  # the visit a coordinator may call off
    names = {}
    unmatched_ids = [int(s) for s in proposal["unmatched"]]
    if unmatched_ids:
        names = {p["id"]: p["name"] for p in await Person.select(Person.id, Person.name).where(
            Person.id.is_in(unmatched_ids))}
    unmatched = [
        {"student_id": int(student), "student_name": names.get(int(student), ""), "reason": why["reason"],
         "reason_label": REASON_LABELS.get(why["reason"], why["reason"]), "details": why["details"]}
        for student, why in sorted(proposal["unmatched"].items(), key=lambda kv: int(kv[0]))
    ]
    round_row = await VisitRound.select(VisitRound.name).where(VisitRound.id == proposal["round"]).first()
    return {"proposal": proposal, "matches": rows, "unmatched": unmatched, "round_name": round_row["name"]}


async def confirmation_preview(proposal_id: int, *, actor: Actor) -> dict[str, Any]:
    """What confirming the proposal would do, in numbers for the confirmation step: new offers (students and
    families mailed), kept offers, live visits called off (both sides and guardians told), and minors among the
    new offers (their guardians are mailed too). Counts only, no names."""
    access.require_staff(actor)
    proposal = await VisitProposal.select().where(VisitProposal.id == proposal_id).first()
    if proposal is None:
        raise NotFound("その提案は見つかりません。", code="proposal_not_found")
    rows = await VisitMatch.select(VisitMatch.id, VisitMatch.student, VisitMatch.slot, VisitMatch.household,
                                   VisitMatch.request.is_minor.as_alias("is_minor")).where(
        (VisitMatch.proposal == proposal_id) & (VisitMatch.status == "proposed"))
    live = {row["student"]: row for row in await VisitMatch.select(
        VisitMatch.id, VisitMatch.student, VisitMatch.slot, VisitMatch.household,
        VisitMatch.request.is_minor.as_alias("is_minor")).where(
        (VisitMatch.round == proposal["round"]) & VisitMatch.status.is_in(LIVE_MATCH_STATES))}
    assignment = {row["student"]: row["slot"] for row in rows}
    new = [row for row in rows if not (live.get(row["student"]) and live[row["student"]]["slot"] == row["slot"])]
    dropped = [row for student, row in live.items() if assignment.get(student) != row["slot"]]
    return {"proposal": proposal, "round": proposal["round"], "offers": len(new),
            "families": len({row["household"] for row in new}), "minors": sum(1 for row in new if row["is_minor"]),
            "kept": len(rows) - len(new), "cancelled": len(dropped),
            "cancelled_families": len({row["household"] for row in dropped}),
            "cancelled_minors": sum(1 for row in dropped if row["is_minor"]),
            "unmatched": len(json.loads(proposal["unmatched"]) if isinstance(proposal["unmatched"], str)
                             else proposal["unmatched"])}


async def confirm_proposal(proposal_id: int, actor: Actor) -> dict[str, int]:
    """Offer the proposal to both sides: new matches are mailed, kept ones stay, dropped live ones are cancelled."""
    access.require_staff(actor)
    async with write_transaction():
        proposal = await VisitProposal.select().where(VisitProposal.id == proposal_id).first()
        if proposal is None:
            raise NotFound("その提案は見つかりません。", code="proposal_not_found")
        await _lock_round(proposal["round"])
        await confirmations.lock_slots("round = {}", proposal["round"])
        proposal = await VisitProposal.select().where(VisitProposal.id == proposal_id).first()  # after the lock
        if proposal["status"] != "draft" or await latest_proposal_id(proposal["round"]) != proposal_id:
            raise Conflict("この提案は最新ではありません。最新の提案を確認してください。", code="proposal_not_latest")
        data = await solver_input(proposal["round"])
        if data.digest != proposal["input_digest"]:
            raise Conflict("提案の作成後に応募や枠が変わりました。もう一度マッチングを実行してください。",
                           code="input_changed")
        rows = await VisitMatch.select().where((VisitMatch.proposal == proposal_id)
                                               & (VisitMatch.status == "proposed"))
        assignment = {row["student"]: row["slot"] for row in rows}
        pins = {p for p in data.pinned if p[0] in assignment}
        violations = matching.check_assignment(data.slots, data.requests, assignment, data.forbidden, pins)
        if violations:
            raise Conflict("提案が現在の条件を満たしません: " + "; ".join(violations[:3]), code="assignment_invalid")
        live = {row["student"]: row for row in await VisitMatch.select().where(
            (VisitMatch.round == proposal["round"]) & VisitMatch.status.is_in(LIVE_MATCH_STATES))}
        now = utcnow()
        touched_slots: set[int] = set()
        cancelled = 0
        moved: dict[int, int] = {}  # student -> the live match a new offer replaces (one guardian mail, not two)
        for student, current in live.items():
            if assignment.get(student) != current["slot"]:
                await VisitMatch.update({VisitMatch.status: "cancelled", VisitMatch.responded_at: now}).where(
                    VisitMatch.id == current["id"])
                if student in assignment:
                    moved[student] = current["id"]
                await confirmations.tell_cancelled(current["id"], reason="rematch", guardian=student not in moved)
                touched_slots.add(current["slot"])
                cancelled += 1
        kept = {row["id"] for row in rows
                if live.get(row["student"]) and live[row["student"]]["slot"] == row["slot"]}
        new = [row["id"] for row in rows if row["id"] not in kept]
        if kept:
            await VisitMatch.update({VisitMatch.status: "superseded"}).where(VisitMatch.id.is_in(sorted(kept)))
        if new:
            await VisitMatch.update({VisitMatch.status: "confirmed_by_coordinator", VisitMatch.offered_at: now}).where(
                VisitMatch.id.is_in(new))
        # a visit on hold is resolved by the re-match: its student has a new offer (or stays unmatched, reported)
        await VisitMatch.update({VisitMatch.status: "cancelled"}).where(
            (VisitMatch.round == proposal["round"]) & (VisitMatch.status == "on_hold")
            & VisitMatch.student.is_in(list(assignment) or [-1]))
        offered = len(new)
        await confirmations.tell_offers(proposal_id, moved=moved)
        for slot_id in sorted(touched_slots):
            await confirmations.sync_slot_visit(slot_id, by=actor.person_id)
        await VisitProposal.update({VisitProposal.status: "confirmed", VisitProposal.confirmed_at: now}).where(
            VisitProposal.id == proposal_id)
        await audit.record(actor, "visit_proposal_confirmed", subject_type="visit_proposal",
                           subject_id=proposal_id, detail={"offered": offered, "cancelled": cancelled})
    return {"offered": offered, "cancelled": cancelled, "kept": len(rows) - offered}


async def round_review(round_id: int, *, actor: Actor) -> dict[str, Any]:
    """Everything the coordinator's round page shows — slots, requests (minors, consent), the latest proposal,
    pins and forbids, households, and the visits that need attention — read and audited in one transaction."""
    access.require_staff(actor)

    async def read() -> dict[str, Any]:
        round_row = await get_round(round_id)
        proposal_id = await latest_proposal_id(round_id)
        return {
            "round": round_row, "slots": await rounds.slots_of_round(round_id),
            "requests": await requests.requests_of_round(round_id),
            "review": await _proposal_view(proposal_id) if proposal_id else None, "rules": await _rules(round_id),
            "households": await households.household_rows(), "attention": await needing_attention(round_id),
        }

    return await audit.viewed(actor, "staff_viewed_round", read, subject_type="visit_round", subject_id=round_id,
                              detail=lambda view: {"requests": len(view["requests"])})


async def needing_attention(round_id: int) -> list[dict[str, Any]]:
    """Visits the safeguarding invariant put on hold: each waits for one action, a re-match."""
    return await VisitMatch.select(
        VisitMatch.id, VisitMatch.student, VisitMatch.student.name.as_alias("student_name"),
        VisitMatch.request.is_minor.as_alias("is_minor"), VisitMatch.household.display_name.as_alias("household_name"),
        VisitMatch.household.district.as_alias("district"), VisitMatch.slot.starts_at.as_alias("starts_at"),
        VisitMatch.slot.ends_at.as_alias("ends_at"), VisitMatch.responded_at,
    ).where((VisitMatch.round == round_id) & (VisitMatch.status == "on_hold")).order_by(VisitMatch.id)


async def view_match(match_id: int, *, actor: Actor) -> dict[str, Any]:
    """One visit for the coordinator's cancellation step: who, where, when, its state (audited)."""
    access.require_staff(actor)

    async def read() -> dict[str, Any]:
        row = await VisitMatch.select(
            VisitMatch.id, VisitMatch.round, VisitMatch.slot, VisitMatch.status, VisitMatch.student,
            VisitMatch.student.name.as_alias("student_name"), VisitMatch.request.is_minor.as_alias("is_minor"),
            VisitMatch.household.display_name.as_alias("household_name"),
            VisitMatch.household.district.as_alias("district"), VisitMatch.slot.starts_at.as_alias("starts_at"),
            VisitMatch.slot.ends_at.as_alias("ends_at"),
        ).where(VisitMatch.id == match_id).first()
        if row is None:
            raise NotFound("その訪問は見つかりません。", code="match_not_found")
        return row

    return await audit.viewed(actor, "staff_viewed_visit", read, subject_type="visit_match", subject_id=match_id)
