"""Visit rounds (opened by a coordinator) and the slots host families offer in them."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from events import access, audit
from events.access import Actor
from events.db import utcnow, write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.visits.tables import LIVE_MATCH_STATES, ROUND_STATES, Household, VisitMatch, VisitRound, VisitSlot

MAX_SLOT_HOURS = 8


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise Invalid("日時にはタイムゾーン（例：+09:00）を付けてください。", code="naive_datetime", field=field)
    return value


async def create_round(
    actor: Actor, *, name: str, requests_open_at: datetime, requests_close_at: datetime,
    description: str = "", status: str = "open", seed: int | None = None,
) -> int:
    access.require_staff(actor)
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise Invalid("回の名前を入力してください（200文字以内）。", code="invalid_round_name", field="name")
    _aware(requests_open_at, "requests_open_at")
    _aware(requests_close_at, "requests_close_at")
    if requests_close_at <= requests_open_at:
        raise Invalid("申込の締切は受付開始より後にしてください。", code="invalid_request_window",
                      field="requests_close_at")
    if status not in ROUND_STATES:
        raise Invalid("状態が正しくありません。", code="invalid_round_status", field="status")
    if seed is not None and not 0 <= seed < 2**31:
        raise Invalid("シードは0以上 2147483647 以下の整数です。", code="invalid_seed", field="seed")
    async with write_transaction():
        row = await VisitRound.insert(VisitRound(
            name=name, description=description.strip(), requests_open_at=requests_open_at,
            requests_close_at=requests_close_at, status=status,
            seed=secrets.randbelow(2**31) if seed is None else seed, created_by=actor.person_id, created_at=utcnow(),
        )).returning(VisitRound.id)
        await audit.record(actor, "visit_round_created", subject_type="visit_round",
                           subject_id=row[0]["id"], detail={"name": name})
    return row[0]["id"]


async def set_round_status(actor: Actor, round_id: int, status: str) -> None:
    access.require_staff(actor)
    if status not in ROUND_STATES:
        raise Invalid("状態が正しくありません。", code="invalid_round_status", field="status")
    async with write_transaction():
        await get_round(round_id)
        await VisitRound.update({VisitRound.status: status}).where(VisitRound.id == round_id)
        await audit.record(actor, "visit_round_status", subject_type="visit_round",
                           subject_id=round_id, detail={"status": status})


async def get_round(round_id: int) -> dict[str, Any]:
    row = await VisitRound.select().where(VisitRound.id == round_id).first()
    if row is None:
        raise NotFound("その訪問回は見つかりません。", code="round_not_found")
    return row


async def list_rounds(*, open_only: bool = False) -> list[dict[str, Any]]:
    query = VisitRound.select().order_by(VisitRound.id, ascending=False)
    if open_only:
        query = query.where(VisitRound.status == "open")
    return await query


def accepting_requests(round_row: dict[str, Any], now: datetime | None = None) -> bool:
    now = now or utcnow()
    return round_row["status"] == "open" and round_row["requests_open_at"] <= now < round_row["requests_close_at"]


async def offer_slot(person_id: int, round_id: int, *, starts_at: datetime, ends_at: datetime, capacity: int) -> int:
    _aware(starts_at, "starts_at")
    _aware(ends_at, "ends_at")
    if not 1 <= capacity <= 4:
        raise Invalid("受け入れ人数は1〜4人です。", code="invalid_capacity", field="capacity")
    if ends_at <= starts_at:
        raise Invalid("終了時刻は開始時刻より後にしてください。", code="invalid_slot_time", field="ends_at")
    if ends_at - starts_at > timedelta(hours=MAX_SLOT_HOURS):
        raise Invalid(f"1回の訪問は{MAX_SLOT_HOURS}時間以内にしてください。", code="slot_too_long", field="ends_at")
    if starts_at <= utcnow():
        raise Invalid("これから先の日時を選んでください。", code="slot_in_past", field="starts_at")
    async with write_transaction():
        household = await Household.select(Household.id).where(Household.person == person_id).first()
        if household is None:
            raise Invalid("先に家庭のプロフィールを登録してください。", code="household_required")
        round_row = await get_round(round_id)
        if round_row["status"] not in ("open", "closed"):
            raise Conflict("この訪問回には現在、枠を追加できません。", code="round_not_open")
        overlapping = await VisitSlot.exists().where(
            (VisitSlot.household == household["id"]) & (VisitSlot.status == "offered")
            & (VisitSlot.starts_at < ends_at) & (VisitSlot.ends_at > starts_at)
        )
        if overlapping:
            raise Conflict("同じ時間帯に既に枠があります。", code="slot_overlaps", field="starts_at")
        row = await VisitSlot.insert(VisitSlot(
            round=round_id, household=household["id"], starts_at=starts_at, ends_at=ends_at, capacity=capacity,
            created_at=utcnow(),
        )).returning(VisitSlot.id)
    return row[0]["id"]


async def withdraw_slot(person_id: int, slot_id: int, *, as_coordinator: bool = False) -> None:
    async with write_transaction():
        slot = await VisitSlot.select(VisitSlot.id, VisitSlot.household.person.as_alias("owner")).where(
            VisitSlot.id == slot_id).first()
        if slot is None or (slot["owner"] != person_id and not as_coordinator):
            raise NotFound("その枠は見つかりません。", code="slot_not_found")
        if await VisitMatch.exists().where((VisitMatch.slot == slot_id) & VisitMatch.status.is_in(LIVE_MATCH_STATES)):
            raise Conflict("この枠には訪問予定の学生がいます。取り消す場合は区の担当者にご連絡ください。",
                           code="slot_has_visit")
        await VisitSlot.update({VisitSlot.status: "withdrawn"}).where(VisitSlot.id == slot_id)


async def view_slots(round_id: int, *, actor: Actor) -> list[dict[str, Any]]:
    """Every household's slots of a round, for staff (audited: which family offers when)."""
    access.require_staff(actor)
    return await audit.viewed(actor, "staff_viewed_visit_slots", lambda: slots_of_round(round_id),
                              subject_type="visit_round", subject_id=round_id)


async def slots_of_round(round_id: int, *, household_id: int | None = None) -> list[dict[str, Any]]:
    """A round's slots (only `household_id`'s, for a family's own page); staff views go through view_slots."""
    query = VisitSlot.select(
        VisitSlot.all_columns(), VisitSlot.household.display_name.as_alias("household_name"),
        VisitSlot.household.district.as_alias("district"),
    ).where(VisitSlot.round == round_id).order_by(VisitSlot.starts_at).order_by(VisitSlot.id)
    if household_id is not None:
        query = query.where(VisitSlot.household == household_id)
    return await query


async def slots_of_person(person_id: int) -> list[dict[str, Any]]:
    return await VisitSlot.select(
        VisitSlot.all_columns(), VisitSlot.round.name.as_alias("round_name"),
    ).where(VisitSlot.household.person == person_id).order_by(VisitSlot.starts_at)



async def slots_to_choose(round_id: int) -> list[dict[str, Any]]:
    """What a student may ask for: the round's slots still offered and still to come — date, time and district,
    never the household (who hosts whom is the matching's, after both sides agree)."""
    return await VisitSlot.select(
        VisitSlot.id, VisitSlot.starts_at, VisitSlot.ends_at, VisitSlot.household.district.as_alias("district"),
    ).where((VisitSlot.round == round_id) & (VisitSlot.status == "offered") & (VisitSlot.starts_at > utcnow())
            ).order_by(VisitSlot.starts_at).order_by(VisitSlot.id)


async def slot_of_event(event_id: int) -> dict[str, Any] | None:
    """The slot whose confirmed visit is this event (its round, for the coordinator's page)."""
    return await VisitSlot.select(VisitSlot.id, VisitSlot.round).where(VisitSlot.event == event_id).first()
