"""Facilities and their staff as coordinators list and edit them (imports: events.exchanges.importing).

Every service here takes the `actor` who asks and refuses anyone who is not staff. The staff list and one
staff member's page are staff views of personal data (names, e-mail addresses): each is one audited read.
Edits write their audit entry in the edit's transaction.
"""

from __future__ import annotations

from typing import Any

from events import access, audit
from events.access import Actor
from events.core.tables import FACILITY_KINDS, Facility, Person, PersonRole, StaffMembership
from events.db import write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.people import clean_kana, facility_key

# ---------------------------------------------------------------- facilities


async def facilities_with_counts(*, actor: Actor) -> list[dict[str, Any]]:
    """Facilities with their number of staff (no personal data: not audited)."""
    access.require_staff(actor)
    facilities = await Facility.select().order_by(Facility.name)
    counts: dict[int, int] = {}
    for row in await StaffMembership.select(StaffMembership.facility):
        counts[row["facility"]] = counts.get(row["facility"], 0) + 1
    for f in facilities:
        f["staff"] = counts.get(f["id"], 0)
    return facilities


async def _facility(facility_id: int) -> dict[str, Any]:
    facility = await Facility.select().where(Facility.id == facility_id).first()
    if facility is None:
        raise NotFound("その施設は見つかりません。", code="facility_not_found")
    return facility


async def get_facility(facility_id: int, *, actor: Actor) -> dict[str, Any]:
    access.require_staff(actor)
    return await _facility(facility_id)


async def update_facility(facility_id: int, *, actor: Actor, name: str, kind: str, area: str,
                          kana: str | None = None) -> None:
    access.require_staff(actor)
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise Invalid("施設名を入力してください（200文字以内）。", code="invalid_facility_name", field="name")
    if kind not in FACILITY_KINDS:
        raise Invalid(f"施設の種別が正しくありません: {kind}", code="invalid_facility_kind", field="kind")
    area = " ".join(area.split())[:64]
    changes: dict[Any, Any] = {Facility.name: name, Facility.kind: kind, Facility.area: area}
    if kana is not None:  # the reading, for 五十音順 (None: unchanged)
        changes[Facility.kana] = clean_kana(kana)
    async with write_transaction():
        before = await _facility(facility_id)
        for other in await Facility.select(Facility.id, Facility.name).where(Facility.id != facility_id):
            if facility_key(other["name"]) == facility_key(name):
                raise Conflict("同じ名前の施設が既にあります。", code="facility_exists", field="name")
        await Facility.update(changes).where(Facility.id == facility_id)
        after = {column._meta.name: value for column, value in changes.items()}
        await audit.record(actor, "exchange_facility_updated", subject_type="facility", subject_id=facility_id,
                           detail={"changed": sorted(k for k, v in after.items() if before[k] != v), **after})


# ---------------------------------------------------------------- staff


async def staff_rows(*, facility_id: int | None = None, query: str = "") -> list[dict[str, Any]]:
    """Staff (role facility_staff) with their facility; people without a facility have facility None.

    Unaudited: for services that audit their own read (`list_staff`, `get_staff`, the met view)."""
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


async def _staff_member(person_id: int) -> dict[str, Any]:
    found = [p for p in await staff_rows() if p["id"] == person_id]
    if not found:
        raise NotFound("その職員は見つかりません。", code="staff_not_found")
    return found[0]


async def list_staff(*, actor: Actor, facility_id: int | None = None, query: str = "") -> list[dict[str, Any]]:
    """The staff list for a coordinator (names and e-mail addresses: audited)."""
    access.require_staff(actor)
    return await audit.viewed(actor, "staff_viewed_staff_list", lambda: staff_rows(facility_id=facility_id, query=query),
                              subject_type="people",
                              detail=lambda found: {"q": query, "facility": facility_id, "count": len(found)})


async def get_staff(person_id: int, *, actor: Actor) -> dict[str, Any]:
    """One staff member's page for a coordinator (audited)."""
    access.require_staff(actor)
    return await audit.viewed(actor, "staff_viewed_person", lambda: _staff_member(person_id), subject_type="person",
                              subject_id=person_id)


async def update_staff(person_id: int, *, actor: Actor, name: str, kana: str, facility_id: int, job_title: str) -> None:
    access.require_staff(actor)
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise Invalid("お名前を入力してください（200文字以内）。", code="invalid_name", field="name")
    kana = " ".join(kana.split())[:200]
    job_title = " ".join(job_title.split())[:100]
    async with write_transaction():
        before = await _staff_member(person_id)
        await _facility(facility_id)
        await Person.update({Person.name: name, Person.kana: kana}).where(Person.id == person_id)
        await StaffMembership.delete().where(StaffMembership.person == person_id)
        await StaffMembership.insert(StaffMembership(person=person_id, facility=facility_id, job_title=job_title))
        after = {"name": name, "kana": kana, "facility_id": facility_id, "job_title": job_title}
        await audit.record(actor, "exchange_staff_updated", subject_type="person", subject_id=person_id,
                           detail={"changed": sorted(k for k, v in after.items() if before[k] != v),
                                   "facility": facility_id})
