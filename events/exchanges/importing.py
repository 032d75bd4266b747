"""Import facilities and their staff from CSV (UTF-8, UTF-8 with BOM, Shift_JIS/cp932, UTF-16) or XLSX.

Coordinators receive lists from facilities as Excel files, so Japanese headers (施設名, 種別, 地区 /
氏名, ふりがな, メールアドレス, 施設名, 職種) are accepted as well as English ones. Every bad row is
reported with its line number (the spreadsheet row, header = its own line) and a reason, and nothing is
written unless the whole file is valid: `check_*` validates without writing, `import_*` validates
again inside the one write transaction and writes every row or none. An import that writes records its
audit entry (imported_facilities / imported_staff) in that same transaction, with the actor who asked.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from events import access, audit, sheets
from events.access import Actor
from events.core.tables import Facility, Person, PersonRole, StaffMembership
from events.db import utcnow, write_transaction
from events.errors import Invalid
from events.people import clean_kana, facility_key, normalize_email

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 5000
CHUNK = 150  # 150 rows x 5 columns stays under the oldest SQLite limit of 999 parameters
Progress = Callable[[int, int], None]

FACILITY_COLUMNS = {
    "name": ("施設名", "名称", "施設", "施設の名称", "name", "facility", "facility name", "facility_name"),
    "kind": ("種別", "施設種別", "種類", "kind", "type", "facility type"),
    "area": ("地区", "地域", "エリア", "所在地区", "area", "district"),
    "kana": ("ふりがな", "フリガナ", "よみがな", "ヨミガナ", "施設名ふりがな", "施設名(ふりがな)", "kana", "reading"),
}
FACILITY_REQUIRED = ("name",)
STAFF_COLUMNS = {
    "name": ("氏名", "名前", "お名前", "職員名", "name", "full name", "full_name"),
    "kana": ("ふりがな", "フリガナ", "よみがな", "ヨミガナ", "氏名(ふりがな)", "kana", "reading"),
    "email": ("メールアドレス", "メール", "eメール", "電子メール", "email", "e-mail", "mail", "email address"),
    "facility": ("施設名", "所属施設", "所属", "施設", "facility", "facility name", "facility_name"),
    "job_title": ("職種", "職名", "役職", "job", "job title", "job_title", "position"),
    "locale": ("言語", "locale", "language"),
}
STAFF_REQUIRED = ("name", "email", "facility")
COLUMN_LABELS = {
    "name": "施設名/氏名", "kind": "種別", "area": "地区", "kana": "ふりがな", "email": "メールアドレス",
    "facility": "施設名", "job_title": "職種", "locale": "言語",
}

KIND_WORDS = {
    "nursery": ("保育園", "保育所", "認可保育所", "認可保育園", "nursery"),
    "kindergarten": ("幼稚園", "kindergarten"),
    "certified_childcare": ("認定こども園", "こども園", "certified_childcare", "certified childcare"),
    "small_childcare": ("小規模保育", "小規模保育事業", "小規模保育室", "small_childcare", "small childcare"),
    "school": ("学校", "小学校", "中学校", "高等学校", "高校", "大学", "school"),
    "other": ("その他", "other"),
}
KIND_LABELS = {
    "nursery": "保育園", "kindergarten": "幼稚園", "certified_childcare": "認定こども園",
    "small_childcare": "小規模保育", "school": "学校", "other": "その他",
}


def _key(text: str) -> str:
    """Header / lookup key: NFKC (full-width to half-width), lower case, no spaces or 'required' marks."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    text = re.sub(r"[\s*＊※]|\(必須\)|\(任意\)", "", text)
    return text


_KIND_BY_WORD = {_key(w): kind for kind, words in KIND_WORDS.items() for w in words}


@dataclass(frozen=True)
class RowError:
    line: int  # 0: the file as a whole; 1 (usually): the header row
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.line}行目: {self.message}" if self.line else self.message


@dataclass
class ImportReport:
    what: str  # facilities | staff
    encoding: str = ""
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    written: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what, "encoding": self.encoding, "rows": self.rows, "ok": self.ok, "written": self.written,
            "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
            "errors": [{"line": e.line, "code": e.code, "message": e.message} for e in self.errors],
        }


@dataclass(frozen=True)
class Sheet:
    encoding: str  # utf-8, utf-8-sig, cp932, utf-16, xlsx
    rows: list[tuple[int, list[str]]]  # (line number, cells), empty rows dropped


class FileRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------- reading files


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError:
            raise FileRejected("bad_encoding", "UTF-8（BOM付き）として読めない文字があります。ファイルが壊れていないかご確認ください。") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise FileRejected("bad_encoding", "UTF-16 として読めない文字があります。") from None
    if b"\x00" in data:
        raise FileRejected("bad_encoding", "文字コードを判別できません。CSV（UTF-8 または Shift_JIS）か Excel（.xlsx）で保存してください。")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp932")
    except UnicodeDecodeError:
        raise FileRejected(
            "bad_encoding",
            "文字コードを判別できません（UTF-8 でも Shift_JIS でもありません）。"
            "Excel で「CSV UTF-8（コンマ区切り）」として保存し直してください。",
        ) from None
    if any("\ue000" <= ch <= "\uf8ff" for ch in text):  # user-defined area: not text a person typed
        raise FileRejected("bad_encoding", "文字コードを判別できません。UTF-8 で保存し直してください。")
    return text, "cp932"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_xlsx(data: bytes) -> Sheet:
    try:
        found = sheets.xlsx_rows(data, max_rows=MAX_ROWS + 1)  # bounded unzipping (events.sheets)
    except sheets.SheetRejected as exc:
        raise FileRejected(exc.code, exc.message) from None
    rows = [(number, cells) for number, values in found if any(cells := [_cell(v) for v in values])]
    return Sheet("xlsx", rows)


def read_sheet(data: bytes, filename: str = "") -> Sheet:
    """Rows of a CSV or XLSX file with their line numbers. Raises FileRejected for unreadable files."""
    if len(data) > MAX_BYTES:
        raise FileRejected("too_large", f"ファイルが大きすぎます（上限 {MAX_BYTES // 1024 // 1024}MB）。")
    if not data.strip():
        raise FileRejected("empty_file", "ファイルが空です。")
    if data.startswith(b"PK\x03\x04"):
        return _read_xlsx(data)
    if data.startswith(b"\xd0\xcf\x11\xe0") or filename.lower().endswith(".xls"):
        raise FileRejected("xls_not_supported", "古い Excel 形式（.xls）は読めません。.xlsx か CSV で保存してください。")
    text, encoding = _decode(data)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    line = 1
    try:
        for record in reader:
            cells = [c.strip() for c in record]
            if any(cells):
                rows.append((line, cells))
            line = reader.line_num + 1
            if len(rows) > MAX_ROWS + 1:
                break
    except csv.Error as exc:
        raise FileRejected("bad_csv", f"{line}行目: CSV の形式が正しくありません（{exc}）。") from None
    return Sheet(encoding, rows)


def _map_header(cells: list[str], columns: dict[str, tuple[str, ...]]) -> tuple[dict[str, int], list[str]]:
    wanted = {_key(alias): name for name, aliases in columns.items() for alias in aliases}
    found: dict[str, int] = {}
    twice: list[str] = []
    for index, cell in enumerate(cells):
        name = wanted.get(_key(cell))
        if name is None:
            continue
        if name in found:
            twice.append(cell)
        else:
            found[name] = index
    return found, twice


async def _audit_import(actor: Actor, report: ImportReport, filename: str) -> None:
    await audit.record(actor, f"imported_{report.what}", subject_type=report.what,
                       detail={"file": filename[:200], "encoding": report.encoding, "rows": report.rows,
                               "created": report.created, "updated": report.updated,
                               "unchanged": report.unchanged})


def _records(sheet: Sheet, columns: dict[str, tuple[str, ...]], required: tuple[str, ...],
             report: ImportReport) -> list[tuple[int, dict[str, str]]]:
    report.encoding = sheet.encoding
    if not sheet.rows:
        report.errors.append(RowError(0, "empty_file", "ファイルにデータがありません。"))
        return []
    header_line, header = sheet.rows[0]
    found, twice = _map_header(header, columns)
    if not found and sheet.encoding == "cp932" and any(not c.isascii() for c in "".join(header)):
        report.errors.append(RowError(0, "bad_encoding", "見出し行を読み取れません。文字コードをご確認ください（UTF-8 または Shift_JIS）。"))
        return []
    missing = [COLUMN_LABELS[name] for name in required if name not in found]
    if missing:
        report.errors.append(RowError(header_line, "missing_columns", "必須の列がありません: " + "、".join(missing)))
    for cell in twice:
        report.errors.append(RowError(header_line, "duplicate_column", f"同じ意味の列が2つあります: {cell}"))
    if report.errors:
        return []
    data_rows = sheet.rows[1:]
    if len(data_rows) > MAX_ROWS:
        report.errors.append(RowError(0, "too_many_rows", f"一度に取り込めるのは {MAX_ROWS} 行までです。"))
        return []
    report.rows = len(data_rows)
    records = []
    for line, cells in data_rows:
        records.append((line, {name: (cells[i] if i < len(cells) else "") for name, i in found.items()}))
    return records


# ---------------------------------------------------------------- facilities


@dataclass(frozen=True)
class FacilityRow:
    line: int
    name: str
    kind: str
    area: str
    kana: str = ""  # the reading, for 五十音順 (kept as it was when the column is absent or the cell empty)


def parse_kind(raw: str) -> str | None:
    return _KIND_BY_WORD.get(_key(raw))


def _facility_rows(sheet: Sheet, report: ImportReport) -> list[FacilityRow]:
    records = _records(sheet, FACILITY_COLUMNS, FACILITY_REQUIRED, report)
    rows: list[FacilityRow] = []
    seen: dict[str, int] = {}
    for line, record in records:
        name = " ".join(record["name"].split())
        if not name:
            report.errors.append(RowError(line, "missing_value", "施設名が空です。"))
            continue
        if len(name) > 200:
            report.errors.append(RowError(line, "too_long", "施設名が長すぎます（200文字以内）。"))
            continue
        key = facility_key(name)
        if key in seen:
            report.errors.append(RowError(line, "duplicate_facility", f"施設「{name}」が重複しています（{seen[key]}行目と同じ）。"))
            continue
        seen[key] = line
        kind = "other"
        if "kind" in record:
            parsed = parse_kind(record["kind"])
            if parsed is None:
                shown = record["kind"] or "（空欄）"
                report.errors.append(RowError(
                    line, "unknown_kind",
                    f"種別「{shown}」が分かりません（保育園・幼稚園・認定こども園・小規模保育・学校・その他）。"))
                continue
            kind = parsed
        try:
            kana = clean_kana(record.get("kana", ""))[:200]
        except Invalid as exc:
            report.errors.append(RowError(line, exc.code, exc.message))
            continue
        rows.append(FacilityRow(line, name, kind, " ".join(record.get("area", "").split())[:64], kana))
    return rows


async def _apply_facilities(rows: list[FacilityRow], report: ImportReport, progress: Progress | None) -> None:
    existing = {facility_key(f["name"]): f for f in await Facility.select()}
    for done, row in enumerate(rows, start=1):
        current = existing.get(facility_key(row.name))
        kana = row.kana or (current["kana"] if current else "")
        if current is None:
            await Facility.insert(Facility(name=row.name, kind=row.kind, area=row.area, kana=kana))
            report.created += 1
        elif (current["kind"], current["area"], current["kana"]) != (row.kind, row.area, kana):
            await Facility.update({Facility.kind: row.kind, Facility.area: row.area, Facility.kana: kana}).where(
                Facility.id == current["id"])
            report.updated += 1
        else:
            report.unchanged += 1
        if progress:
            progress(done, len(rows))


async def import_facilities(data: bytes, filename: str = "", *, actor: Actor, dry_run: bool = False,
                            progress: Progress | None = None) -> ImportReport:
    """Create or update facilities by name. With errors (or dry_run) nothing is written."""
    access.require_staff(actor)
    report = ImportReport("facilities")
    try:
        sheet = await asyncio.to_thread(read_sheet, data, filename)  # parsing blocks: not on the event loop
    except FileRejected as exc:
        report.errors.append(RowError(0, exc.code, exc.message))
        return report
    rows = _facility_rows(sheet, report)
    if not report.ok:
        return report
    if dry_run:
        existing = {facility_key(f["name"]): f for f in await Facility.select()}
        for row in rows:
            current = existing.get(facility_key(row.name))
            if current is None:
                report.created += 1
            elif (current["kind"], current["area"]) != (row.kind, row.area):
                report.updated += 1
            else:
                report.unchanged += 1
        return report
    async with write_transaction():
        await _apply_facilities(rows, report, progress)
        await _audit_import(actor, report, filename)
    report.written = True
    return report


# ---------------------------------------------------------------- staff


@dataclass(frozen=True)
class StaffRow:
    line: int
    name: str
    kana: str
    email: str
    facility_id: int
    job_title: str
    locale: str


async def _staff_rows(sheet: Sheet, report: ImportReport) -> list[StaffRow]:
    records = _records(sheet, STAFF_COLUMNS, STAFF_REQUIRED, report)
    facilities = {facility_key(f["name"]): f["id"] for f in await Facility.select(Facility.id, Facility.name)}
    rows: list[StaffRow] = []
    seen: dict[str, int] = {}
    for line, record in records:
        problems: list[RowError] = []
        name = " ".join(record["name"].split())
        if not name:
            problems.append(RowError(line, "missing_value", "氏名が空です。"))
        elif len(name) > 200:
            problems.append(RowError(line, "too_long", "氏名が長すぎます（200文字以内）。"))
        raw_email = unicodedata.normalize("NFKC", record["email"]).strip()
        email = ""
        if not raw_email:
            problems.append(RowError(line, "missing_value", "メールアドレスが空です。"))
        else:
            try:
                email = normalize_email(raw_email)
            except Invalid:
                problems.append(RowError(line, "bad_email", f"メールアドレス「{raw_email}」の形式が正しくありません。"))
        if email:
            if email in seen:
                problems.append(RowError(line, "duplicate_email",
                                         f"メールアドレス {email} が重複しています（{seen[email]}行目と同じ）。"))
            else:
                seen[email] = line
        facility_name = " ".join(record["facility"].split())
        facility_id = facilities.get(facility_key(facility_name)) if facility_name else None
        if not facility_name:
            problems.append(RowError(line, "missing_value", "施設名が空です。"))
        elif facility_id is None:
            problems.append(RowError(line, "unknown_facility",
                                     f"施設「{facility_name}」が登録されていません。先に施設を取り込んでください。"))
        locale = _key(record.get("locale", "")) or "ja"
        locale = {"日本語": "ja", "japanese": "ja", "英語": "en", "english": "en"}.get(locale, locale)
        if locale not in ("ja", "en"):
            problems.append(RowError(line, "bad_locale", "言語は「日本語」か「英語」（ja / en）で入力してください。"))
        if problems:
            report.errors.extend(problems)
            continue
        rows.append(StaffRow(line, name, " ".join(record.get("kana", "").split())[:200], email, int(facility_id or 0),
                             " ".join(record.get("job_title", "").split())[:100], locale))
    return rows


async def _apply_staff(rows: list[StaffRow], report: ImportReport, progress: Progress | None) -> None:
    emails = [row.email for row in rows]
    people = {p["email"]: p for p in await Person.select().where(Person.email.is_in(emails or [""]))}
    ids = [p["id"] for p in people.values()] or [-1]
    staff_role = {r["person"] for r in await PersonRole.select(PersonRole.person).where(
        PersonRole.person.is_in(ids) & (PersonRole.role == "facility_staff"))}
    memberships: dict[int, list[dict[str, Any]]] = {}
    for m in await StaffMembership.select().where(StaffMembership.person.is_in(ids)):
        memberships.setdefault(m["person"], []).append(m)
    now = utcnow()
    fresh = [row for row in rows if row.email not in people]
    done = 0
    for start in range(0, len(fresh), CHUNK):
        # New accounts in batches: one INSERT per table per chunk instead of three per person.
        chunk = fresh[start:start + CHUNK]
        inserted = await Person.insert(*[
            Person(email=row.email, name=row.name, kana=row.kana, locale=row.locale, created_at=now) for row in chunk
        ]).returning(Person.id, Person.email)
        new_ids = {r["email"]: r["id"] for r in inserted}
        await PersonRole.insert(*[PersonRole(person=new_ids[row.email], role="facility_staff") for row in chunk])
        await StaffMembership.insert(*[
            StaffMembership(person=new_ids[row.email], facility=row.facility_id, job_title=row.job_title)
            for row in chunk
        ])
        report.created += len(chunk)
        done += len(chunk)
        if progress:
            progress(done, len(rows))
    for row in rows:
        person = people.get(row.email)
        if person is None:
            continue
        person_id = person["id"]
        changed = False
        if (person["name"], person["kana"]) != (row.name, row.kana or person["kana"]):
            await Person.update({Person.name: row.name, Person.kana: row.kana or person["kana"]}).where(
                Person.id == person_id)
            changed = True
        if person_id not in staff_role:
            await PersonRole.insert(PersonRole(person=person_id, role="facility_staff"))
            changed = True
        current = memberships.get(person_id, [])
        if [(m["facility"], m["job_title"]) for m in current] != [(row.facility_id, row.job_title)]:
            # The file is the facility's current list: a transfer (異動) replaces the old membership.
            await StaffMembership.delete().where(StaffMembership.person == person_id)
            await StaffMembership.insert(StaffMembership(person=person_id, facility=row.facility_id,
                                                         job_title=row.job_title))
            changed = True
        if changed:
            report.updated += 1
        else:
            report.unchanged += 1
        done += 1
        if progress:
            progress(done, len(rows))


async def import_staff(data: bytes, filename: str = "", *, actor: Actor, dry_run: bool = False,
                       progress: Progress | None = None) -> ImportReport:
    """Create staff accounts (role facility_staff) with their facility, or update them by e-mail."""
    access.require_staff(actor)
    report = ImportReport("staff")
    try:
        sheet = await asyncio.to_thread(read_sheet, data, filename)  # parsing blocks: not on the event loop
    except FileRejected as exc:
        report.errors.append(RowError(0, exc.code, exc.message))
        return report
    if dry_run:
        rows = await _staff_rows(sheet, report)
        if report.ok:
            known = {p["email"] for p in await Person.select(Person.email).where(
                Person.email.is_in([r.email for r in rows] or [""]))}
            report.created = sum(1 for r in rows if r.email not in known)
            report.updated = len(rows) - report.created  # may be unchanged; the real import tells
        return report
    async with write_transaction():
        # Validated again inside the transaction: a facility deleted meanwhile cannot slip through.
        rows = await _staff_rows(sheet, report)
        if not report.ok:
            return report
        await _apply_staff(rows, report, progress)
        await _audit_import(actor, report, filename)
    report.written = True
    return report
