"""Lottery (抽選) draws for events with allocation=lottery, around the pure core events.lottery.

Public functions:

- `draw_lottery(event_id, *, actor=None, entropy=None) -> dict`   a coordinator (or the worker) draws; a coordinator
      may draw before the window closes, which closes it. Codes: not_a_lottery, lottery_already_drawn,
      event_not_published. Returns {"event_id", "seed", "algorithm", "winners", "waitlist", "seats"}.
- `draw_due_lotteries(now=None) -> int`      worker job: draws every published lottery whose window has closed.
- `lottery_record(event_id) -> dict | None`  the recorded draw (seed, algorithm, applications, winners, waitlist).
- `verify_draw(event_id) -> dict`            re-runs the recorded draw: {"ok", "seed", "algorithm", ...}.

The seed is written and committed in its own transaction before the draw, once; a failed or repeated draw
reuses it, so nobody can re-roll. Winners take seats (pending_consent for minors), the rest join the waiting
list in draw order; every applicant gets one result mail.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from events import access, audit, lottery, places
from events.access import Actor
from events.db import utcnow, write_transaction
from events.errors import Conflict, NotFound
from events.seminars.tables import Event, LotteryDraw, Registration


async def _ensure_seed(event_id: int, entropy: bytes | None) -> str:
    async with write_transaction():
        await Event.update({Event.lottery_seed: lottery.new_seed(entropy or os.urandom(16))}).where(
            (Event.id == event_id) & (Event.lottery_seed == "")
        )
        row = await Event.select(Event.lottery_seed).where(Event.id == event_id).first()
    return row["lottery_seed"]


async def draw_lottery(event_id: int, *, actor: Actor | None = None, entropy: bytes | None = None) -> dict[str, Any]:
    """Draw now (a coordinator; `actor` None is the worker at the window's close)."""
    if actor is not None:
        access.require_staff(actor)
    event = await places.event_row(event_id)
    if event["allocation"] != "lottery":
        raise Conflict("このイベントは抽選ではありません。", code="not_a_lottery")
    if event["status"] != "published":
        raise Conflict("公開中のイベントだけ抽選できます。", code="event_not_published")
    if event["lottery_drawn_at"]:
        raise Conflict("このイベントは既に抽選済みです。", code="lottery_already_drawn")
    seed = await _ensure_seed(event_id, entropy)
    async with write_transaction():
        await places.lock_event(event_id)
        now = utcnow()
        claimed = await Event.update({Event.lottery_drawn_at: now, Event.updated_at: now}).where(
            (Event.id == event_id) & Event.lottery_drawn_at.is_null()
        ).returning(Event.id)
        if not claimed:
            raise Conflict("このイベントは既に抽選済みです。", code="lottery_already_drawn")
        event = await places.event_row(event_id)
        if event["registration_closes_at"] is None or event["registration_closes_at"] > now:
            await Event.update({Event.registration_closes_at: now}).where(Event.id == event_id)
        applied = await Registration.select(Registration.id).where(
            (Registration.event == event_id) & (Registration.status == "applied")
        ).order_by(Registration.id)
        applications = [lottery.Application(id=row["id"]) for row in applied]
        seats = max(event["capacity"] - event["taken"], 0)
        result = lottery.draw(applications, seats, seed)
        by = actor.person_id if actor else None
        await LotteryDraw.insert(LotteryDraw(
            event=event_id, seed=seed, algorithm=lottery.ALGORITHM, capacity=seats,
            applications=[[a.id, a.priority] for a in applications], winners=list(result.winners),
            waitlist=list(result.waitlist), drawn_at=now, drawn_by=by,
        ))
        await places.draw(event_id, list(result.winners), list(result.waitlist))
        await audit.record(actor, "lottery_drawn", subject_type="event", subject_id=event_id,
                           detail={"seed": seed, "winners": len(result.winners), "applications": len(applications)})
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


async def verify_draw(event_id: int) -> dict[str, Any]:
    record = await lottery_record(event_id)
    if record is None:
        raise NotFound("このイベントの抽選記録はありません。", code="lottery_not_drawn")
    if record["algorithm"] != lottery.ALGORITHM:
        return {"ok": False, "reason": f"unknown algorithm {record['algorithm']}", **record}
    applications = [lottery.Application(id=int(i), priority=int(p)) for i, p in record["applications"]]
    recorded = lottery.DrawResult(seed=record["seed"], winners=tuple(record["winners"]), waitlist=tuple(record["waitlist"]))
    ok = lottery.verify(applications, record["capacity"], record["seed"], recorded)
    return {"ok": ok, "event_id": event_id, "seed": record["seed"], "algorithm": record["algorithm"],
            "capacity": record["capacity"], "applications": len(applications), "winners": record["winners"],
            "waitlist": record["waitlist"], "drawn_at": record["drawn_at"]}
