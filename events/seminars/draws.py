"""Lottery (抽選) draws for events with allocation=lottery, around the pure core events.lottery.

Public functions:

- `draw_lottery(event_id, *, actor=None) -> dict`   a coordinator (or the worker at the window's close) draws; a
      coordinator may draw before the window closes, which closes it. Codes: not_a_lottery, lottery_already_drawn,
      event_not_published. Returns {"event_id", "seed", "algorithm", "winners", "waitlist", "seats"} (tickets).
- `draw_due_lotteries(now=None) -> int`      worker job: draws every published lottery whose window has closed.
- `public_record(event_id) -> dict`          what anyone may see and recompute: the commitment (from the opening),
      and after the draw the seed, the seats, every ticket with its priority group and size, winners and waiting list.
- `verify_draw(event_id) -> dict`            re-runs the recorded draw from the public record: {"ok", ...}.
- `cancel_draw(event_id, *, actor, reason)`  declares a draw void (audited, shown on the public page); a draw is
      never run twice.

The seed was committed to (sha256) when registration opened (events.seminars.allocation.ensure_commitment), so it
cannot be chosen after seeing the applications. Winners take seats (pending_consent for minors), the rest join the
waiting list in draw order, groups of companions together; every applicant gets one result mail with their ticket.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events import access, audit, lottery, places
from events.access import Actor
from events.db import utcnow, write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.seminars import allocation
from events.seminars.tables import Event, LotteryDraw, Registration


async def draw_lottery(event_id: int, *, actor: Actor | None = None, entropy: bytes | None = None) -> dict[str, Any]:
    """Draw now (a coordinator; `actor` None is the worker at the window's close)."""
    if actor is not None:
        access.require_staff(actor)
    event = await places.event_row(event_id)
    if event["allocation"] != "lottery":
        raise Conflict("このイベントは抽選ではありません。", code="not_a_lottery")
    if event["status"] != "published":
        raise Conflict("公開中のイベントだけ抽選できます。", code="event_not_published")
    if event["lottery_drawn_at"] or await LotteryDraw.exists().where(LotteryDraw.event == event_id):
        raise Conflict("このイベントは既に抽選済みです。", code="lottery_already_drawn")
    async with write_transaction():
        await places.lock_event(event_id)
        commitment = await allocation.ensure_commitment(event_id, entropy=entropy)
        now = utcnow()
        claimed = await Event.update({Event.lottery_drawn_at: now, Event.updated_at: now}).where(
            (Event.id == event_id) & Event.lottery_drawn_at.is_null()
        ).returning(Event.id)
        if not claimed:
            raise Conflict("このイベントは既に抽選済みです。", code="lottery_already_drawn")
        event = await places.event_row(event_id)
        seed = event["lottery_seed"]
        if event["registration_closes_at"] is None or event["registration_closes_at"] > now:
            await Event.update({Event.registration_closes_at: now}).where(Event.id == event_id)
        applied = await Registration.select(
            Registration.id, Registration.lottery_ticket, Registration.priority,
        ).where((Registration.event == event_id) & (Registration.status == "applied")).order_by(Registration.id)
        members: dict[str, list[int]] = {}
        priority: dict[str, int] = {}
        for row in applied:
            ticket = row["lottery_ticket"] or f"R{row['id']}"  # applications made before tickets existed
            members.setdefault(ticket, []).append(row["id"])
            priority[ticket] = min(priority.get(ticket, row["priority"]), row["priority"])  # a group: its lowest
        entries = [lottery.Entry(t, priority[t], len(ids)) for t, ids in members.items()]
        seats = max(event["capacity"] - event["taken"], 0)
        result = lottery.allocate(entries, seats, seed)
        await LotteryDraw.insert(LotteryDraw(
            event=event_id, seed=seed, commitment=commitment, algorithm=lottery.ALGORITHM, capacity=seats,
            applications=[[e.ticket, e.priority, e.size] for e in entries], winners=list(result.winners),
            waitlist=list(result.waitlist), drawn_at=now, drawn_by=actor.person_id if actor else None,
        ))
        await places.draw(event_id, [r for t in result.winners for r in members[t]],
                          [r for t in result.waitlist for r in members[t]])
        await audit.record(actor, "lottery_drawn", subject_type="event", subject_id=event_id,
                           detail={"seed": seed, "winners": len(result.winners), "applications": len(entries)})
    return {"event_id": event_id, "seed": seed, "algorithm": lottery.ALGORITHM, "seats": seats,
            "winners": list(result.winners), "waitlist": list(result.waitlist)}


async def draw_due_lotteries(now: datetime | None = None) -> int:
    now = now or utcnow()
    due = await Event.select(Event.id).where(
        (Event.allocation == "lottery") & (Event.status == "published") & Event.lottery_drawn_at.is_null()
        & (Event.registration_closes_at <= now)
    )
    drawn = 0
    for row in due:
        try:
            await draw_lottery(row["id"])
            drawn += 1
        except Conflict:
            continue  # another worker drew it first
    return drawn


async def lottery_record(event_id: int) -> dict[str, Any] | None:
    return await LotteryDraw.select().where(LotteryDraw.event == event_id).output(load_json=True).first()


async def public_record(event_id: int) -> dict[str, Any]:
    """Everything anyone needs to recompute the draw (no names, no ids of people)."""
    event = await Event.select(Event.id, Event.allocation, Event.lottery_commitment, Event.lottery_drawn_at).where(
        Event.id == event_id).first()
    if event is None or event["allocation"] != "lottery":
        raise NotFound("このイベントは抽選ではありません。", code="not_a_lottery")
    record = await lottery_record(event_id)
    out: dict[str, Any] = {"event_id": event_id, "algorithm": lottery.ALGORITHM,
                           "commitment": event["lottery_commitment"], "seed": None, "seats": None, "entries": [],
                           "winners": [], "waitlist": [], "drawn_at": None, "cancelled_at": None, "cancel_reason": ""}
    if record is None:
        return out
    out.update(algorithm=record["algorithm"], seed=record["seed"], seats=record["capacity"],
               drawn_at=record["drawn_at"], winners=record["winners"], waitlist=record["waitlist"],
               commitment=record["commitment"] or event["lottery_commitment"],
               cancelled_at=record["cancelled_at"], cancel_reason=record["cancel_reason"])
    if record["algorithm"] == lottery.ALGORITHM:
        out["entries"] = [{"ticket": t, "priority": p, "size": n} for t, p, n in record["applications"]]
    else:
        out["entries"] = [{"application": i, "priority": p} for i, p in record["applications"]]
    return out


async def verify_draw(event_id: int) -> dict[str, Any]:
    record = await lottery_record(event_id)
    if record is None:
        raise NotFound("このイベントの抽選記録はありません。", code="lottery_not_drawn")
    common = {"event_id": event_id, "seed": record["seed"], "algorithm": record["algorithm"],
              "capacity": record["capacity"], "applications": len(record["applications"]),
              "winners": record["winners"], "waitlist": record["waitlist"], "drawn_at": record["drawn_at"],
              "commitment": record["commitment"]}
    if record["algorithm"] == lottery.ALGORITHM:
        entries = [lottery.Entry(str(t), int(p), int(n)) for t, p, n in record["applications"]]
        recorded = lottery.Allocation(record["seed"], tuple(record["winners"]), tuple(record["waitlist"]))
        ok = lottery.verify_allocation(entries, record["capacity"], record["seed"], record["commitment"], recorded)
        return {"ok": ok, **common}
    if record["algorithm"] == lottery.ALGORITHM_V1:  # recorded before tickets and commitments
        applications = [lottery.Application(id=int(i), priority=int(p)) for i, p in record["applications"]]
        recorded_v1 = lottery.DrawResult(seed=record["seed"], winners=tuple(record["winners"]),
                                         waitlist=tuple(record["waitlist"]))
        return {"ok": lottery.verify(applications, record["capacity"], record["seed"], recorded_v1), **common}
    return {"ok": False, "reason": f"unknown algorithm {record['algorithm']}", **common}


async def cancel_draw(event_id: int, *, actor: Actor, reason: str) -> None:
    """Declare a draw void: audited and shown on the public page. It is never drawn again."""
    access.require_staff(actor)
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise Invalid("取り消しの理由を入力してください（公開されます）。", code="reason_required", field="reason")
    async with write_transaction():
        updated = await LotteryDraw.update({LotteryDraw.cancelled_at: utcnow(), LotteryDraw.cancel_reason: reason[:2000]}).where(
            (LotteryDraw.event == event_id) & LotteryDraw.cancelled_at.is_null()).returning(LotteryDraw.id)
        if not updated:
            raise Conflict("取り消せる抽選がありません。", code="no_draw_to_cancel")
        await audit.record(actor, "lottery_cancelled", subject_type="event", subject_id=event_id,
                           detail={"reason": reason[:200]})
