"""People, roles, student profiles, facilities and staff membership."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from events import access, audit
from events.access import Actor
from events.consent import is_minor
from events.core.tables import (
    FACILITY_KINDS,
    ROLES,
    SELF_SIGNUP_ROLES,
    Facility,
    Person,
    PersonRole,
    StaffMembership,
    StudentProfile,
    WebSession,
)
from events.db import utcnow, write_transaction
from events.errors import Conflict, Forbidden, Invalid, NotFound

_EMAIL = re.compile(r"^[^@\s<>\"(),;:\x00-\x1f\x7f]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
LOCALES = ("ja", "en")


def normalize_email(raw: object) -> str:
    email = str(raw or "").strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise Invalid("メールアドレスの形式が正しくありません。", code="invalid_email", field="email")
    return email


@dataclass(frozen=True)
class StudentInfo:
    school_level: str  # high_school | university
    school_name: str
    grade: int
    birth_date: date
    guardian_email: str = ""
    guardian_name: str = ""

    def validated(self, today: date) -> StudentInfo:
        if self.school_level not in ("high_school", "university"):
            raise Invalid("学校の種別を選んでください。", code="invalid_school_level", field="school_level")
        if not 1 <= self.grade <= 6:
            raise Invalid("学年は1〜6で入力してください。", code="invalid_grade", field="grade")
        if not date(1900, 1, 1) < self.birth_date < today:
            raise Invalid("生年月日が正しくありません。", code="invalid_birth_date", field="birth_date")
        guardian = self.guardian_email.strip()
        if is_minor(self.birth_date, today) and not guardian:
            raise Invalid(
                "18歳未満の方は保護者のメールアドレスが必要です。", code="guardian_required", field="guardian_email"
            )
        return StudentInfo(
            school_level=self.school_level,
            school_name=one_line(self.school_name, "school_name"),
            grade=self.grade,
            birth_date=self.birth_date,
            guardian_email=normalize_email(guardian) if guardian else "",
            guardian_name=one_line(self.guardian_name, "guardian_name"),  # it becomes a mail's To: display name
        )


def student_info_from(fields: Mapping[str, Any]) -> StudentInfo:
    """A student profile from a form or a JSON body (birth_date as YYYY-MM-DD); validated later."""
    try:
        birth = date.fromisoformat(str(fields.get("birth_date") or "").strip())
    except ValueError:
        raise Invalid("生年月日を入力してください（例: 2009-04-01）。", code="invalid_birth_date", field="birth_date") from None
    try:
        grade = int(fields.get("grade") or 1)
    except (TypeError, ValueError):
        raise Invalid("学年は数字で入力してください。", code="invalid_grade", field="grade") from None
    return StudentInfo(
        school_level=str(fields.get("school_level") or ""), school_name=str(fields.get("school_name") or ""),
        grade=grade, birth_date=birth, guardian_email=str(fields.get("guardian_email") or ""),
        guardian_name=str(fields.get("guardian_name") or ""),
    )


def one_line(value: object, field: str, limit: int = 200) -> str:
    """Free text that may reach a mail header (a display name, a subject): one line, spaces collapsed."""
    text = " ".join(str(value or "").split())
    if len(text) > limit:
        raise Invalid(f"{limit}文字以内で入力してください。", code="too_long", field=field)
    return text


def _clean_name(name: object, field: str = "name") -> str:
    value = " ".join(str(name or "").split())
    if not value or len(value) > 200:
        raise Invalid("お名前を入力してください（200文字以内）。", code="invalid_name", field=field)
    return value


async def find_by_email(email: str) -> dict[str, Any] | None:
    return await Person.select().where(Person.email == email.strip().lower()).first()


async def get_person(person_id: int) -> dict[str, Any]:
    person = await Person.select().where(Person.id == person_id).first()
    if person is None:
        raise NotFound("その利用者は見つかりません。", code="person_not_found")
    person["roles"] = sorted(await roles_of(person_id))
    return person


async def roles_of(person_id: int) -> set[str]:
    rows = await PersonRole.select(PersonRole.role).where(PersonRole.person == person_id)
    return {row["role"] for row in rows}


async def create_person(
    email: str,
    name: str,
    *,
    kana: str = "",
    locale: str = "ja",
    roles: tuple[str, ...] = (),
    student: StudentInfo | None = None,
    facility_id: int | None = None,
) -> int:
    email = normalize_email(email)
    name = _clean_name(name)
    if locale not in LOCALES:
        raise Invalid("言語は ja か en です。", code="invalid_locale", field="locale")
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise Invalid(f"不明な役割です: {', '.join(sorted(unknown))}", code="invalid_role", field="role")
    if "student" in roles and student is None:
        raise Invalid("学生の方は学校と生年月日を入力してください。", code="student_profile_required")
    if student is not None:
        student = student.validated(utcnow().date())
    async with write_transaction():
        if await Person.exists().where(Person.email == email):
            raise Conflict("このメールアドレスは既に登録されています。", code="email_taken", field="email")
        if facility_id is not None and not await Facility.exists().where(Facility.id == facility_id):
            raise Invalid("施設が見つかりません。", code="unknown_facility", field="facility")
        row = await Person.insert(
            Person(email=email, name=name, kana=" ".join(kana.split()), locale=locale, created_at=utcnow())
        ).returning(Person.id)
        person_id = row[0]["id"]
        for role in dict.fromkeys(roles):
            await PersonRole.insert(PersonRole(person=person_id, role=role))
        if student is not None:
            await StudentProfile.insert(StudentProfile(person=person_id, **student.__dict__))
        if facility_id is not None:
            await StaffMembership.insert(StaffMembership(person=person_id, facility=facility_id))
    return person_id


async def sign_up(
    email: str,
    name: str,
    *,
    role: str,
    kana: str = "",
    locale: str = "ja",
    student: StudentInfo | None = None,
    facility_id: int | None = None,
) -> int:
    """Self sign-up: only students, host families and facility staff; never staff accounts."""
    if role not in SELF_SIGNUP_ROLES:
        raise Forbidden("この種類のアカウントは自分では作成できません。", code="role_not_self_service")
    if role == "facility_staff" and facility_id is None:
        raise Invalid("所属施設を選んでください。", code="facility_required", field="facility")
    return await create_person(
        email, name, kana=kana, locale=locale, roles=(role,), student=student, facility_id=facility_id
    )


async def add_student_profile(person_id: int, student: StudentInfo) -> None:
    """A person first known without one (e.g. registered at the counter) becomes a student."""
    student = student.validated(utcnow().date())
    async with write_transaction():
        if await StudentProfile.exists().where(StudentProfile.person == person_id):
            raise Conflict("この方の学生情報は既に登録されています。", code="student_profile_exists")
        await StudentProfile.insert(StudentProfile(person=person_id, **student.__dict__))
        if not await PersonRole.exists().where((PersonRole.person == person_id) & (PersonRole.role == "student")):
            await PersonRole.insert(PersonRole(person=person_id, role="student"))


async def grant_role(person_id: int, role: str) -> None:
    if role not in ROLES:
        raise Invalid(f"不明な役割です: {role}", code="invalid_role", field="role")
    async with write_transaction():
        if not await PersonRole.exists().where((PersonRole.person == person_id) & (PersonRole.role == role)):
            await PersonRole.insert(PersonRole(person=person_id, role=role))


async def set_locale(person_id: int, locale: str) -> None:
    if locale not in LOCALES:
        raise Invalid("言語は ja か en です。", code="invalid_locale", field="locale")
    async with write_transaction():
        await Person.update({Person.locale: locale}).where(Person.id == person_id)


async def update_profile(person_id: int, *, name: str, kana: str, reminders: bool | None = None) -> None:
    values: dict[Any, Any] = {Person.name: _clean_name(name), Person.kana: " ".join(kana.split())}
    if reminders is not None:
        values[Person.reminders] = reminders
    async with write_transaction():
        await Person.update(values).where(Person.id == person_id)


async def add_account(actor: Actor, email: str, name: str, *, roles: tuple[str, ...], kana: str = "",
                      locale: str = "ja", student: StudentInfo | None = None, facility_id: int | None = None) -> int:
    """An admin (or the CLI) creates any account, coordinators and admins included (audited); a student needs
    their school and birth date, facility staff their facility."""
    access.require_admin(actor)
    async with write_transaction():
        person_id = await create_person(email, name, kana=kana, locale=locale, roles=roles, student=student,
                                        facility_id=facility_id)
        await audit.record(actor, "admin_user_added", subject_type="person", subject_id=person_id,
                           detail={"roles": list(roles)})
    return person_id


async def set_active(actor: Actor, person_id: int, active: bool) -> None:
    """Disabling an account ends all its sessions on the server at once (audited)."""
    access.require_admin(actor)
    async with write_transaction():
        await get_person(person_id)
        await Person.update({Person.active: active}).where(Person.id == person_id)
        if not active:
            await WebSession.update({WebSession.ended_at: utcnow()}).where(
                (WebSession.person == person_id) & WebSession.ended_at.is_null()
            )
        await audit.record(actor, "admin_user_enabled" if active else "admin_user_disabled", subject_type="person",
                           subject_id=person_id)


async def student_profile(person_id: int) -> dict[str, Any] | None:
    return await StudentProfile.select().where(StudentProfile.person == person_id).first()


async def view_people(actor: Actor, *, role: str | None = None, query: str = "", limit: int = 200) -> list[dict[str, Any]]:
    """Accounts with their e-mail addresses, for staff (audited)."""
    access.require_staff(actor)
    return await audit.viewed(actor, "staff_viewed_people", lambda: list_people(role=role, query=query, limit=limit),
                              subject_type="people", detail=lambda found: {"role": role, "q": query[:100],
                                                                           "count": len(found)})


async def list_people(*, role: str | None = None, query: str = "", limit: int = 200) -> list[dict[str, Any]]:
    select = Person.select().order_by(Person.id).limit(limit)
    if role:
        ids = PersonRole.select(PersonRole.person).where(PersonRole.role == role)
        select = select.where(Person.id.is_in([r["person"] for r in await ids] or [-1]))
    if query:
        like = f"%{query}%"
        select = select.where(Person.name.ilike(like) | Person.kana.ilike(like) | Person.email.ilike(like))
    people = await select
    role_rows = await PersonRole.select().where(PersonRole.person.is_in([p["id"] for p in people] or [-1]))
    by_person: dict[int, list[str]] = {}
    for row in role_rows:
        by_person.setdefault(row["person"], []).append(row["role"])
    for person in people:
        person["roles"] = sorted(by_person.get(person["id"], []))
    return people


async def create_facility(name: str, kind: str, area: str) -> int:
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise Invalid("施設名を入力してください（200文字以内）。", code="invalid_facility_name", field="name")
    area = one_line(area, "area", 64)
    if kind not in FACILITY_KINDS:
        raise Invalid(f"施設の種別が正しくありません: {kind}", code="invalid_facility_kind", field="kind")
    async with write_transaction():
        if await Facility.exists().where(Facility.name == name):
            raise Conflict("同じ名前の施設が既にあります。", code="facility_exists", field="name")
        row = await Facility.insert(Facility(name=name, kind=kind, area=area.strip())).returning(Facility.id)
    return row[0]["id"]


async def list_facilities() -> list[dict[str, Any]]:
    return await Facility.select().order_by(Facility.name)


async def facilities_of(person_id: int) -> list[dict[str, Any]]:
    return await StaffMembership.select(
        StaffMembership.facility.id.as_alias("id"),
        StaffMembership.facility.name.as_alias("name"),
        StaffMembership.facility.kind.as_alias("kind"),
        StaffMembership.facility.area.as_alias("area"),
    ).where(StaffMembership.person == person_id)
