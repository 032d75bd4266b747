"""Facilities and their staff as coordinators list and edit them (imports: events.exchanges.importing)."""

from __future__ import annotations

from typing import Any

from events.core.tables import FACILITY_KINDS, Facility, Person, PersonRole, StaffMembership
from events.db import write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.exchanges.importing import facility_key


async def facilities_with_counts() -> list[dict[str, Any]]:
    facilities = await Facility.select().order_by(Facility.name)
    counts: dict[int, int] = {}
    for row in await StaffMembership.select(StaffMembership.facility):
        counts[row["facility"]] = counts.get(row["facility"], 0) + 1
    for f in facilities:
        f["staff"] = counts.get(f["id"], 0)
    return facilities


async def get_facility(facility_id: int) -> dict[str, Any]:
    facility = await Facility.select().where(Facility.id == facility_id).first()
    if facility is None:
        raise NotFound("その施設は見つかりません。", code="facility_not_found")
    return facility


async def update_facility(facility_id: int, *, name: str, kind: str, area: str) -> None:
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise Invalid("施設名を入力してください（200文字以内）。", code="invalid_facility_name", field="name")
    if kind not in FACILITY_KINDS:
        raise Invalid(f"施設の種別が正しくありません: {kind}", code="invalid_facility_kind", field="kind")
    async with write_transaction():
        await get_facility(facility_id)
        for other in await Facility.select(Facility.id, Facility.name).where(Facility.id != facility_id):
            if facility_key(other["name"]) == facility_key(name):
                raise Conflict("同じ名前の施設が既にあります。", code="facility_exists", field="name")
        await Facility.update({Facility.name: name, Facility.kind: kind, Facility.area: " ".join(area.split())[:64]}
                              ).where(Facility.id == facility_id)


async def list_staff(*, facility_id: int | None = None, query: str = "") -> list[dict[str, Any]]:
    """Staff (role facility_staff) with their facility; people without a facility have facility None."""
    staff_ids = [r["person"] for r in await PersonRole.select(PersonRole.person).where(PersonRole.role == "facility_staff")]
    select = Person.select(Person.id, Person.name, Person.kana, Person.email, Person.locale, Person.active).where(
        Person.id.is_in(staff_ids or [-1])).order_by(Person.kana).order_by(Person.name)
    if query:
        like = f"%{query}%"
        select = select.where(Person.name.ilike(like) | Person.kana.ilike(like) | Person.email.ilike(like))
    people = await select
    memberships: dict[int, dict[str, Any]] = {}
    for m in await StaffMembership.select(
        StaffMembership.person, StaffMembership.job_title, StaffMembership.facility.id.as_alias("facility_id"),
        StaffMembership.facility.name.as_alias("facility_name"),
    ).where(StaffMembership.person.is_in([p["id"] for p in people] or [-1])).order_by(StaffMembership.id):
        memberships.setdefault(m["person"], m)
    result = []
    for p in people:
        m = memberships.get(p["id"])
        p["facility_id"] = m["facility_id"] if m else None
        p["facility_name"] = m["facility_name"] if m else ""
        p["job_title"] = m["job_title"] if m else ""
        if facility_id is None or p["facility_id"] == facility_id:
            result.append(p)
    return result


async def get_staff(person_id: int) -> dict[str, Any]:
    found = [p for p in await list_staff() if p["id"] == person_id]
    if not found:
        raise NotFound("その職員は見つかりません。", code="staff_not_found")
    return found[0]


async def update_staff(person_id: int, *, name: str, kana: str, facility_id: int, job_title: str) -> None:
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise Invalid("お名前を入力してください（200文字以内）。", code="invalid_name", field="name")
    async with write_transaction():
        await get_staff(person_id)
        await get_facility(facility_id)
        await Person.update({Person.name: name, Person.kana: " ".join(kana.split())[:200]}).where(Person.id == person_id)
        await StaffMembership.delete().where(StaffMembership.person == person_id)
        await StaffMembership.insert(StaffMembership(person=person_id, facility=facility_id,
                                                     job_title=" ".join(job_title.split())[:100]))
