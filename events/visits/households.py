"""Host households: profile, vetting, and the home address behind one audited door (`read_address`).

The rule this module owns: **a home address (and a visiting student's contact) is read only by coordinators,
or by the other side of a visit both sides confirmed, until a week after it; every view and every refusal is
audited in the same transaction.** A vetting that changes is re-checked against confirmed visits at once
(the safeguarding invariant, events.safeguarding, through the place ledger).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from events import access, audit, people, places, timefmt
from events.access import Actor
from events.core.tables import WARD_AREAS, Person, StudentProfile
from events.db import utcnow, write_transaction
from events.errors import Forbidden, Invalid, NotFound
from events.phones import normalize_phone
from events.visits.tables import (
    HOUSEHOLD_TAGS,
    LANGUAGES,
    Household,
    HouseholdAddress,
    VisitMatch,
    VisitSlot,
)

# A confirmed visit opens the address (and the student's contact) until this long after it ends.
DISCLOSURE_AFTER_VISIT = timedelta(days=7)


@dataclass(frozen=True)
class HouseholdProfile:
    display_name: str
    district: str
    children_ages: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    pets: str = ""
    allergy_notes: str = ""
    languages: list[str] = field(default_factory=lambda: ["ja"])
    introduction: str = ""

    def validated(self) -> HouseholdProfile:
        name = " ".join(self.display_name.split())
        if not name or len(name) > 100:
            raise Invalid("表示名（例：山田家）を100文字以内で入力してください。", code="invalid_display_name",
                          field="display_name")
        if self.district not in WARD_AREAS:
            raise Invalid("お住まいの地区を選んでください。", code="invalid_district", field="district")
        if len(self.children_ages) > 12 or any(not 0 <= age <= 25 for age in self.children_ages):
            raise Invalid("お子さんの年齢は0〜25の数字で入力してください。", code="invalid_children_ages",
                          field="children_ages")
        unknown = set(self.tags) - set(HOUSEHOLD_TAGS)
        if unknown:
            raise Invalid(f"不明な世帯の特徴です: {', '.join(sorted(unknown))}", code="invalid_tag", field="tags")
        bad_languages = set(self.languages) - set(LANGUAGES)
        if bad_languages or not self.languages:
            raise Invalid("使用する言語を選んでください。", code="invalid_language", field="languages")
        if len(self.pets) > 300 or len(self.allergy_notes) > 2000 or len(self.introduction) > 2000:
            raise Invalid("入力が長すぎます。", code="too_long")
        tags = sorted(set(self.tags))
        # A family that names its pets carries the pets tag, so students avoiding pets never go there.
        if self.pets.strip() and "pets" not in tags:
            tags.append("pets")
        return HouseholdProfile(
            display_name=name, district=self.district, children_ages=sorted(self.children_ages), tags=sorted(tags),
            pets=self.pets.strip(), allergy_notes=self.allergy_notes.strip(), languages=sorted(set(self.languages)),
            introduction=self.introduction.strip(),
        )


@dataclass(frozen=True)
class Address:
    postal_code: str
    address: str
    directions: str = ""
    phone: str = ""

    def validated(self) -> Address:
        postal = self.postal_code.strip().replace("〒", "")
        if postal and not (len(postal.replace("-", "")) == 7 and postal.replace("-", "").isdigit()):
            raise Invalid("郵便番号は7桁の数字で入力してください。", code="invalid_postal_code", field="postal_code")
        address = " ".join(self.address.split())
        if not address or len(address) > 300:
            raise Invalid("住所を入力してください（300文字以内）。", code="invalid_address", field="address")
        return Address(postal, address, self.directions.strip()[:1000], normalize_phone(self.phone))


async def _require_role(person_id: int, role: str) -> None:
    if role not in await people.roles_of(person_id):
        raise Forbidden("ホストファミリーとして登録された方のみ利用できます。", code="not_host_family")


async def household_of(person_id: int) -> dict[str, Any] | None:
    return await Household.select().where(Household.person == person_id).output(load_json=True).first()


async def get_household(household_id: int) -> dict[str, Any]:
    row = await Household.select(
        Household.all_columns(), Household.person.name.as_alias("person_name")
    ).where(Household.id == household_id).output(load_json=True).first()
    if row is None:
        raise NotFound("その家庭は見つかりません。", code="household_not_found")
    return row


async def save_household(person_id: int, profile: HouseholdProfile) -> int:
    """Create or update the family's own profile."""
    profile = profile.validated()
    values = {
        Household.display_name: profile.display_name, Household.district: profile.district,
        Household.children_ages: profile.children_ages, Household.tags: profile.tags, Household.pets: profile.pets,
        Household.allergy_notes: profile.allergy_notes, Household.languages: profile.languages,
        Household.introduction: profile.introduction, Household.updated_at: utcnow(),
    }
    async with write_transaction():
        await _require_role(person_id, "host_family")
        existing = await Household.select(Household.id).where(Household.person == person_id).first()
        if existing:
            await Household.update(values).where(Household.id == existing["id"])
            return existing["id"]
        row = await Household.insert(
            Household(person=person_id, created_at=utcnow(), **{col._meta.name: v for col, v in values.items()})
        ).returning(Household.id)
        return row[0]["id"]


async def save_address(person_id: int, address: Address) -> None:
    address = address.validated()
    async with write_transaction():
        household = await Household.select(Household.id).where(Household.person == person_id).first()
        if household is None:
            raise Invalid("先に家庭のプロフィールを登録してください。", code="household_required")
        values = {HouseholdAddress.postal_code: address.postal_code, HouseholdAddress.address: address.address,
                  HouseholdAddress.directions: address.directions, HouseholdAddress.phone: address.phone,
                  HouseholdAddress.updated_at: utcnow()}
        if await HouseholdAddress.exists().where(HouseholdAddress.household == household["id"]):
            await HouseholdAddress.update(values).where(HouseholdAddress.household == household["id"])
        else:
            await HouseholdAddress.insert(
                HouseholdAddress(household=household["id"], **{c._meta.name: v for c, v in values.items()})
            )


async def own_address(person_id: int) -> dict[str, Any] | None:
    """The family's own address, for their own form (their own data: no audit entry)."""
    household = await Household.select(Household.id).where(Household.person == person_id).first()
    if household is None:
        return None
    return await HouseholdAddress.select(
        HouseholdAddress.postal_code, HouseholdAddress.address, HouseholdAddress.directions, HouseholdAddress.phone
    ).where(HouseholdAddress.household == household["id"]).first()


async def record_vetting(actor: Actor, household_id: int, *, interviewed_on: date, valid_until: date) -> None:
    access.require_staff(actor)
    if valid_until < interviewed_on:
        raise Invalid("有効期限は面談日より後の日付にしてください。", code="invalid_vetting_dates", field="valid_until")
    if interviewed_on > utcnow().date() + timedelta(days=1):
        raise Invalid("面談日が未来の日付になっています。", code="invalid_vetting_dates", field="interviewed_on")
    async with write_transaction():
        await get_household(household_id)
        await Household.update({Household.vetted_on: interviewed_on, Household.vetted_until: valid_until,
                                Household.vetted_by: actor.person_id, Household.updated_at: utcnow()}).where(
            Household.id == household_id)
        await audit.record(actor, "visit_household_vetted", subject_type="visit_household", subject_id=household_id,
                           detail={"interviewed_on": interviewed_on.isoformat(), "valid_until": valid_until.isoformat()})
        for event_id in await _upcoming_visit_events(household_id=household_id):
            await places.recheck(event_id, by=actor.person_id)


async def list_households(*, actor: Actor) -> list[dict[str, Any]]:
    """For coordinators: profiles and the contact person, never addresses (audited)."""
    access.require_staff(actor)
    return await audit.viewed(actor, "staff_viewed_households", household_rows, subject_type="visit_household",
                              detail=lambda rows: {"count": len(rows)})


async def household_rows() -> list[dict[str, Any]]:
    """Profiles and contact persons, never addresses (callers audit the view)."""
    return await Household.select(
        Household.all_columns(), Household.person.name.as_alias("person_name"),
        Household.person.email.as_alias("person_email"),
    ).order_by(Household.district).order_by(Household.id).output(load_json=True)


async def view_household(household_id: int, *, actor: Actor) -> dict[str, Any]:
    """One household's profile for a coordinator (audited; the address stays behind `read_address`)."""
    access.require_staff(actor)
    return await audit.viewed(actor, "staff_viewed_household", lambda: get_household(household_id),
                              subject_type="visit_household", subject_id=household_id)


async def _upcoming_visit_events(*, household_id: int | None = None, vetted_before_day: bool = False) -> list[int]:
    """Events of this household's (or every household's) visits still to come."""
    query = VisitSlot.select(VisitSlot.event, VisitSlot.starts_at, VisitSlot.household.vetted_until.as_alias("until")).where(
        VisitSlot.event.is_not_null() & (VisitSlot.ends_at > utcnow()) & (VisitSlot.event.status == "published"))
    if household_id is not None:
        query = query.where(VisitSlot.household == household_id)
    rows = await query
    if vetted_before_day:
        rows = [r for r in rows if r["until"] is None or r["until"] < timefmt.tokyo_date(r["starts_at"])]
    return sorted({r["event"] for r in rows})


async def enforce_vetting() -> int:
    """Worker job: a visit whose household's vetting no longer covers its day is put on hold (the ledger's
    safeguarding invariant). Cheap when nothing is due: one query over upcoming confirmed visits."""
    events = await _upcoming_visit_events(vetted_before_day=True)
    held = 0
    for event_id in events:
        async with write_transaction():
            held += len(await places.recheck(event_id))
    return held


def vetting_valid(household: dict[str, Any], on: date) -> bool:
    return household.get("vetted_until") is not None and on <= household["vetted_until"]


async def _confirmed_visit(*, household_id: int, student_id: int) -> bool:
    """Both sides confirmed a visit (a confirmed registration exists) and it ended less than a week ago."""
    rows = await VisitMatch.select(VisitMatch.slot.ends_at.as_alias("ends_at")).where(
        (VisitMatch.household == household_id) & (VisitMatch.student == student_id)
        & (VisitMatch.status == "accepted") & VisitMatch.registration.is_not_null()
        & VisitMatch.registration.status.is_in(["confirmed", "attended"])
    )
    now = utcnow()
    return any(now <= row["ends_at"] + DISCLOSURE_AFTER_VISIT for row in rows)


GUARDIAN_ROLE = "guardian"  # an Actor without an account: a minor's guardian, vouched for by their link


def guardian_actor(client: str = "") -> Actor:
    """Who reads when a guardian opens their status page (events.visits.guardians checks the link first)."""
    return Actor(None, frozenset({GUARDIAN_ROLE}), client[:64])


async def read_address(household_id: int, *, actor: Actor, on_behalf_of: int | None = None) -> dict[str, Any]:
    """The only way to read a home address: coordinators, or a student whose visit there both sides confirmed,
    until a week after it — or that student's guardian (`on_behalf_of` the student, from the guardian's status
    page), on exactly the student's terms. Every view is audited."""
    async with write_transaction():
        staff = access.is_staff(await people.roles_of(actor.person_id)) if actor.person_id else False
        guardian = not staff and on_behalf_of is not None and GUARDIAN_ROLE in actor.roles
        student_id = on_behalf_of if guardian else actor.person_id
        allowed = staff or (student_id is not None
                            and await _confirmed_visit(household_id=household_id, student_id=student_id))
        if allowed:
            household = await get_household(household_id)
            address = await HouseholdAddress.select(
                HouseholdAddress.postal_code, HouseholdAddress.address, HouseholdAddress.directions,
                HouseholdAddress.phone,
            ).where(HouseholdAddress.household == household_id).first()
            await audit.record(actor, "viewed_address", subject_type="visit_household", subject_id=household_id,
                               detail={"as": "staff" if staff else "guardian" if guardian else "student",
                                       **({"student": student_id} if guardian else {})})
        else:  # the refusal is recorded too, in the same transaction, and then reported
            await audit.record(actor, "address_refused", subject_type="visit_household", subject_id=household_id,
                               detail={"as": "guardian", "student": student_id} if guardian else None)
    if not allowed:
        raise Forbidden("この住所を表示する権限がありません。訪問が双方で確定すると表示されます。",
                        code="address_hidden")
    return {"household_id": household_id, "display_name": household["display_name"],
            "district": household["district"], **(address or {"postal_code": "", "address": "", "directions": "",
                                                            "phone": ""})}


async def read_student_contact(student_id: int, *, actor: Actor) -> dict[str, Any]:
    """A student's contact details: coordinators, or the host family of a visit both sides confirmed."""
    async with write_transaction():
        staff = access.is_staff(await people.roles_of(actor.person_id)) if actor.person_id else False
        allowed = staff
        if not allowed:
            household = await Household.select(Household.id).where(Household.person == actor.person_id).first()
            allowed = household is not None and await _confirmed_visit(household_id=household["id"],
                                                                       student_id=student_id)
        person = await Person.select(Person.name, Person.email, Person.phone).where(Person.id == student_id).first()
        if allowed and person is not None:
            profile = await StudentProfile.select(StudentProfile.school_name, StudentProfile.school_level,
                                                  StudentProfile.grade).where(
                StudentProfile.person == student_id).first() or {}
            await audit.record(actor, "viewed_student_contact", subject_type="person", subject_id=student_id,
                               detail={"as": "staff" if staff else "host_family"})
        elif not allowed:  # the refusal is recorded, then reported
            await audit.record(actor, "student_contact_refused", subject_type="person", subject_id=student_id)
    if not allowed:
        raise Forbidden("この方の連絡先を表示する権限がありません。", code="contact_hidden")
    if person is None:
        raise NotFound("その利用者は見つかりません。", code="person_not_found")
    return {"student_id": student_id, "name": person["name"], "email": person["email"], "phone": person["phone"],
            **profile}
