"""Shared helpers of the seminars tests (events, students, minors, mail counts)."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta

from events import people
from events.seminars import schedule
from tests.conftest import as_staff, make_person


def soon(days: float = 10, hours: float = 0) -> datetime:
    base = datetime.now(UTC).replace(microsecond=0)
    return base + timedelta(days=days, hours=hours)


async def coordinator() -> int:
    return await make_person("coordinator", f"coord-{secrets.token_hex(3)}@ward.example.jp", name="金沢 花子")


async def new_event(by: int | None = None, *, publish: bool = True, **fields) -> int:
    actor = as_staff(by or await coordinator())
    start = fields.pop("starts_at", soon(10))
    values = {"title": "ライフデザインセミナー", "venue": "金沢公会堂", "starts_at": start.isoformat(),
              "ends_at": (start + timedelta(hours=2)).isoformat(), "capacity": 2, **fields}
    event_id = await schedule.create_event(values, actor=actor)
    if publish:
        await schedule.publish_event(event_id, actor=actor)
    return event_id


async def adult(name: str = "鈴木 葵", **kwargs) -> int:
    return await make_person("student", f"adult-{secrets.token_hex(4)}@univ.example.jp", name=name, **kwargs)


async def minor(name: str = "佐藤 結衣", guardian: str | None = None) -> int:
    birth = date.today().replace(year=date.today().year - 16)
    info = people.StudentInfo("high_school", "横浜市立金沢高等学校", 2, birth,
                              guardian or f"guardian-{secrets.token_hex(3)}@example.jp", "佐藤 恵")
    return await make_person("student", f"minor-{secrets.token_hex(4)}@school.example.jp", name=name, student=info)


async def email_of(person_id: int) -> str:
    return (await people.get_person(person_id))["email"]
