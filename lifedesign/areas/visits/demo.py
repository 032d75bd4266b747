"""Demo data of home visits: a round with vetted households in 能見台, 六浦, 金沢文庫 …, their slots, and requests.

Idempotent: households are keyed by their account, the round by its name, slots by (household, start).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta

from events import people
from events.access import Actor
from events.db import utcnow
from events.errors import Conflict, DomainError
from events.timefmt import TOKYO
from events.visits import households, requests, rounds
from events.visits.tables import VisitRound, VisitSlot

COORDINATOR = "coordinator@kanazawa-ward.example.jp"

# (e-mail, name, display name, district, children's ages, tags, pets, address, vetted, slots: (day, start, end, cap))
HOUSEHOLDS = [
    ("yamada.family@example.jp", "山田 真理子", "山田家", "能見台", [1, 4], ["dual_income", "infant"], "",
     "横浜市金沢区能見台通1-1", True, [(0, 10, 13, 2), (7, 13, 16, 3)]),
    ("nakamura.family@example.jp", "中村 健一", "中村家", "六浦", [6, 6], ["twins", "grandparents"], "猫1匹",
     "横浜市金沢区六浦1-2-3", True, [(1, 10, 12, 2)]),
    ("kimura.family@example.jp", "木村 さやか", "木村家", "金沢文庫", [0], ["single_parent", "infant", "parental_leave"],
     "", "横浜市金沢区谷津町1-4", True, [(0, 14, 16, 2), (2, 10, 12, 1)]),
    ("hayashi.family@example.jp", "林 大輔", "林家", "釜利谷", [3, 7, 10], ["many_children", "remote_work"], "",
     "横浜市金沢区釜利谷東2-1", True, [(8, 10, 13, 4)]),
    ("mori.family@example.jp", "森 美咲", "森家", "富岡", [2], ["dual_income"], "犬1匹",
     "横浜市金沢区富岡西3-5", False, [(1, 13, 15, 2)]),
]

# demo students of lifedesign/demo.py and what they ask for (day offset, from, to)
REQUESTS = [
    ("sato.yui@student.example.jp", [(0, 9, 17)], ["能見台", "金沢文庫"], ["infant"], []),
    ("takahashi.ren@student.example.jp", [(0, 9, 17), (1, 9, 17)], ["能見台"], ["dual_income"], []),
    ("suzuki.aoi@univ.example.jp", [(0, 9, 18), (2, 9, 13)], ["金沢文庫"], ["single_parent"], ["pets"]),
    ("ito.haruto@univ.example.jp", [(1, 9, 17), (8, 9, 17)], ["六浦", "釜利谷"], ["twins"], []),
]


def _season(month: int) -> str:
    return "春" if 3 <= month <= 5 else "夏" if 6 <= month <= 8 else "秋" if 9 <= month <= 11 else "冬"


def _at(first_day: datetime, offset: int, hour: int) -> datetime:
    return datetime.combine((first_day + timedelta(days=offset)).date(), time(hour), tzinfo=TOKYO)


async def load(progress: Callable[[str], None] = print) -> dict[str, int]:
    coordinator = await people.find_by_email(COORDINATOR)
    actor = Actor(coordinator["id"], frozenset({"coordinator"}), "demo") if coordinator else None
    if coordinator is None:
        return {}
    first_day = (utcnow() + timedelta(days=21)).astimezone(TOKYO)
    while first_day.weekday() != 5:  # visits start on a Saturday
        first_day += timedelta(days=1)
    name = f"{first_day.year}年 {_season(first_day.month)}の家庭訪問"
    existing = await VisitRound.select(VisitRound.id).where(VisitRound.name == name).first()
    if existing:
        round_id = existing["id"]
    else:
        round_id = await rounds.create_round(
            actor, name=name, description="区内の子育て家庭を訪問し、仕事と子育ての両立を身近に感じるプログラムです。",
            requests_open_at=utcnow() - timedelta(days=1), requests_close_at=utcnow() + timedelta(days=14),
            seed=20260601)
    slots_made = 0
    for email, person_name, display, district, ages, tags, pets, address, vetted, slot_specs in HOUSEHOLDS:
        try:
            person_id = await people.create_person(email, person_name, roles=("host_family",))
        except Conflict:
            person_id = (await people.find_by_email(email))["id"]
            await people.grant_role(person_id, "host_family")
        household_id = await households.save_household(person_id, households.HouseholdProfile(
            display_name=display, district=district, children_ages=ages, tags=tags, pets=pets))
        await households.save_address(person_id, households.Address("236-0000", address, "最寄り駅から徒歩10分",
                                                                      "045-000-0000"))
        if vetted:
            today = utcnow().date()
            await households.record_vetting(actor, household_id, interviewed_on=today - timedelta(days=30),
                                            valid_until=today + timedelta(days=335))
        for offset, start, end, capacity in slot_specs:
            starts_at = _at(first_day, offset, start)
            if await VisitSlot.exists().where((VisitSlot.household == household_id)
                                              & (VisitSlot.starts_at == starts_at)):
                continue
            try:
                await rounds.offer_slot(person_id, round_id, starts_at=starts_at, ends_at=_at(first_day, offset, end),
                                        capacity=capacity)
                slots_made += 1
            except DomainError:
                pass
        progress(f"visits: household {display} ({district})")
    asked = 0
    for email, windows, districts, wanted, avoided in REQUESTS:
        student = await people.find_by_email(email)
        if student is None:
            continue
        try:
            await requests.submit_request(student["id"], round_id, requests.RequestInput(
                windows=[(_at(first_day, d, s), _at(first_day, d, e)) for d, s, e in windows], districts=districts,
                wanted_tags=wanted, avoided_tags=avoided))
            asked += 1
        except DomainError:
            pass
    progress(f"visits: round 「{name}」 with {len(HOUSEHOLDS)} households, {slots_made} new slots, {asked} requests")
    return {"visit_households": len(HOUSEHOLDS), "visit_slots_created": slots_made, "visit_requests": asked}
