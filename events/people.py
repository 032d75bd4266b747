"""People, roles, student profiles, facilities and staff membership."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
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
from events.phones import normalize_phone

_EMAIL = re.compile(r"^[^@\s<>\"(),;:\x00-\x1f\x7f]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
LOCALES = ("ja", "en")
# ふりがな: hiragana, katakana (small letters and ヴ included), the long mark, iteration marks, ・ and spaces.
_KANA = re.compile(r"^[\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fb\u30fc\u30fd\u30fe ]*$")


def normalize_email(raw: object, field: str = "email") -> str:
    email = str(raw or "").strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise Invalid("メールアドレスの形式が正しくありません。", code="invalid_email", field=field)
    return email


def clean_kana(raw: object, field: str = "kana") -> str:
    """ふりがな in hiragana or katakana (half-width katakana widened), spaces collapsed; '' when not given."""
    kana = " ".join(unicodedata.normalize("NFKC", str(raw or "")).split())
    if len(kana) > 200 or not _KANA.match(kana):
        raise Invalid("ふりがなは、ひらがなかカタカナで入力してください。", code="invalid_kana", field=field)
    return kana


def kana_key(text: str) -> str:
    """For 五十音順: NFKC, no spaces, katakana folded to hiragana."""
    folded = "".join(unicodedata.normalize("NFKC", text or "").split())
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in folded)


@dataclass(frozen=True)
class StudentInfo:
    school_level: str  # high_school | university
    school_name: str
    grade: int
    birth_date: date
    guardian_email: str = ""
    guardian_name: str = ""
    guardian_phone: str = ""

    def validated(self, today: date) -> StudentInfo:
        """The profile as stored; the first problem raises (`problems` lists them all)."""
        found = self.problems(today)
        if found:
            raise found[0]
        guardian = self.guardian_email.strip()
        return StudentInfo(
            school_level=self.school_level,
            school_name=one_line(self.school_name, "school_name"),
            grade=self.grade,
            birth_date=self.birth_date,
            guardian_email=normalize_email(guardian) if guardian else "",
            guardian_name=one_line(self.guardian_name, "guardian_name"),  # it becomes a mail's To: display name
            guardian_phone=normalize_phone(self.guardian_phone, "guardian_phone"),
        )

    def problems(self, today: date) -> list[Invalid]:
        """Every problem of the profile, in the order of the form."""
        guardian = self.guardian_email.strip()

        def level() -> None:
            if self.school_level not in ("high_school", "university"):
                raise Invalid("学校の種別を選んでください。", code="invalid_school_level", field="school_level")

        def grade() -> None:
            if not 1 <= self.grade <= 6:
                raise Invalid("学年は1〜6で入力してください。", code="invalid_grade", field="grade")

        def birth() -> None:
            if not date(1900, 1, 1) < self.birth_date < today:
                raise Invalid("生年月日が正しくありません。", code="invalid_birth_date", field="birth_date")

        def guardian_email() -> None:
            if is_minor(self.birth_date, today) and not guardian:
                raise Invalid(
                    "18歳未満の方は保護者のメールアドレスが必要です。", code="guardian_required", field="guardian_email"
                )
            if guardian:
                normalize_email(guardian, "guardian_email")

        return _problems(level, lambda: one_line(self.school_name, "school_name"), grade, birth,
                         lambda: one_line(self.guardian_name, "guardian_name"), guardian_email,
                         lambda: normalize_phone(self.guardian_phone, "guardian_phone"))


def _problems(*checks: Callable[[], object]) -> list[Invalid]:
    """Run every check; the Invalid each raised, in order."""
    found = []
    for check in checks:
        try:
            check()
        except Invalid as exc:
            found.append(exc)
    return found


def student_info_from(fields: Mapping[str, Any], *, problems: list[Invalid] | None = None) -> StudentInfo:
    """A student profile from a form or a JSON body (birth_date as YYYY-MM-DD); validated later. A birth date or
    grade that does not parse raises — or, given `problems`, is added there and a harmless value stands in."""
    found: list[Invalid] = []

    def birth() -> date:
        try:
            return date.fromisoformat(str(fields.get("birth_date") or "").strip())
        except ValueError:
            raise Invalid("生年月日を入力してください（例: 2009-04-01）。", code="invalid_birth_date",
                          field="birth_date") from None

    def grade() -> int:
        try:
            return int(fields.get("grade") or 1)
        except (TypeError, ValueError):
            raise Invalid("学年は数字で入力してください。", code="invalid_grade", field="grade") from None

    values: list[Any] = []
    for parse, stand_in in ((birth, date(2000, 1, 1)), (grade, 1)):
        try:
            values.append(parse())
        except Invalid as exc:
            if problems is None:
                raise
            found.append(exc)
            values.append(stand_in)
    if problems is not None:
        problems.extend(found)
    return StudentInfo(
        school_level=str(fields.get("school_level") or ""), school_name=str(fields.get("school_name") or ""),
        grade=values[1], birth_date=values[0], guardian_email=str(fields.get("guardian_email") or ""),
        guardian_name=str(fields.get("guardian_name") or ""), guardian_phone=str(fields.get("guardian_phone") or ""),
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
    phone: str = "",
    locale: str = "ja",
    roles: tuple[str, ...] = (),
    student: StudentInfo | None = None,
    facility_id: int | None = None,
) -> int:
    email = normalize_email(email)
    name = _clean_name(name)
    kana = clean_kana(kana)
    phone = normalize_phone(phone)
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
            Person(email=email, name=name, kana=kana, phone=phone, locale=locale, created_at=utcnow())
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
    phone: str = "",
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
        email, name, kana=kana, phone=phone, locale=locale, roles=(role,), student=student, facility_id=facility_id
    )


def sign_up_problems(fields: Mapping[str, Any], today: date) -> list[Invalid]:
    """Every problem of a sign-up form at once, each naming its field (the page marks
    them all); `sign_up` checks the same rules again. Whether the facility exists is for `sign_up` to say. A staff
    role is Forbidden at once."""
    role = str(fields.get("role") or "")

    if role and role not in SELF_SIGNUP_ROLES:
        raise Forbidden("この種類のアカウントは自分では作成できません。", code="role_not_self_service")

    def role_check() -> None:
        if not role:
            raise Invalid("参加のしかたを選んでください。", code="role_required", field="role")

    found = _problems(role_check, lambda: _clean_name(fields.get("name")), lambda: clean_kana(fields.get("kana")),
                      lambda: normalize_email(fields.get("email")), lambda: normalize_phone(fields.get("phone")))
    if role == "student":
        unparsed: list[Invalid] = []
        student = student_info_from(fields, problems=unparsed)
        failed = {p.extra.get("field") for p in unparsed}
        found += unparsed + [p for p in student.problems(today) if p.extra.get("field") not in failed]
        if not str(fields.get("grade") or "").strip() and "grade" not in failed:  # the form asks; 1 is no answer
            found.append(Invalid("学年を入力してください。", code="invalid_grade", field="grade"))
    facility = str(fields.get("facility") or "")
    if role == "facility_staff" and not (facility.isdigit() and len(facility) <= 9):  # an id within 32 bits
        found.append(Invalid("所属施設を選んでください。", code="facility_required", field="facility"))
    return found


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


async def update_profile(person_id: int, *, name: str, kana: str, reminders: bool | None = None,
                         phone: str | None = None, guardian_phone: str | None = None) -> None:
    """One's own name, kana and phone (and, for a student, the guardian's phone); None leaves a value as it is."""
    values: dict[Any, Any] = {Person.name: _clean_name(name), Person.kana: clean_kana(kana)}
    if reminders is not None:
        values[Person.reminders] = reminders
    if phone is not None:
        values[Person.phone] = normalize_phone(phone)
    guardian = normalize_phone(guardian_phone, "guardian_phone") if guardian_phone is not None else None
    async with write_transaction():
        await Person.update(values).where(Person.id == person_id)
        if guardian is not None:
            await StudentProfile.update({StudentProfile.guardian_phone: guardian}).where(
                StudentProfile.person == person_id)


async def add_account(actor: Actor, email: str, name: str, *, roles: tuple[str, ...], kana: str = "",
                      phone: str = "", locale: str = "ja", student: StudentInfo | None = None,
                      facility_id: int | None = None) -> int:
    """An admin (or the CLI) creates any account, coordinators and admins included (audited); a student needs
    their school and birth date, facility staff their facility."""
    access.require_admin(actor)
    async with write_transaction():
        person_id = await create_person(email, name, kana=kana, phone=phone, locale=locale, roles=roles,
                                        student=student, facility_id=facility_id)
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


async def create_facility(name: str, kind: str, area: str, kana: str = "") -> int:
    name = " ".join(name.split())
    kana = clean_kana(kana)
    if not name or len(name) > 200:
        raise Invalid("施設名を入力してください（200文字以内）。", code="invalid_facility_name", field="name")
    area = one_line(area, "area", 64)
    if kind not in FACILITY_KINDS:
        raise Invalid(f"施設の種別が正しくありません: {kind}", code="invalid_facility_kind", field="kind")
    async with write_transaction():
        if await Facility.exists().where(Facility.name == name):
            raise Conflict("同じ名前の施設が既にあります。", code="facility_exists", field="name")
        row = await Facility.insert(Facility(name=name, kana=kana, kind=kind, area=area.strip())).returning(
            Facility.id)
    return row[0]["id"]


def facility_key(name: str) -> str:
    """How facility names are compared (the staff import, renames, the CLI): NFKC, spaces collapsed, lower case."""
    return unicodedata.normalize("NFKC", " ".join(name.split())).lower()


async def find_facility(given: str) -> int | None:
    """The facility a name (compared by `facility_key`) or its number stands for; None when none does."""
    key = facility_key(given)
    for facility in await Facility.select(Facility.id, Facility.name):
        if facility_key(facility["name"]) == key:
            return facility["id"]
    given = given.strip()
    if given.isdigit() and await Facility.exists().where(Facility.id == int(given)):
        return int(given)
    return None


async def list_facilities() -> list[dict[str, Any]]:
    """In 五十音順 by their reading; a facility without one after them, by name."""
    return sorted(await Facility.select(), key=lambda f: (not f["kana"], kana_key(f["kana"]) or f["name"], f["id"]))


async def facilities_of(person_id: int) -> list[dict[str, Any]]:
    return await StaffMembership.select(
        StaffMembership.facility.id.as_alias("id"),
        StaffMembership.facility.name.as_alias("name"),
        StaffMembership.facility.kind.as_alias("kind"),
        StaffMembership.facility.area.as_alias("area"),
    ).where(StaffMembership.person == person_id)
