"""Students' visit requests, and the guardian consent a minor needs before any match.

The consent follows the seminars' consent flow: a random token mailed to the guardian, only its
SHA-256 stored, a page that shows what / where (district only) / when, and buttons that POST.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from events import people, timefmt
from events.config import config
from events.core.tables import WARD_AREAS, Person, StudentProfile
from events.db import utcnow, write_transaction
from events.errors import Conflict, Forbidden, Invalid, NotFound
from events.mail import queue_mail
from events.timefmt import TOKYO
from events.visits.rounds import accepting_requests, get_round
from events.visits.tables import (
    HOUSEHOLD_TAGS,
    LIVE_MATCH_STATES,
    VisitConsent,
    VisitMatch,
    VisitRequest,
)

CONSENT_TEXT_VERSION = "visit-consent-2026-1"
MAX_WINDOWS = 20
MAX_WINDOW = timedelta(days=14)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class RequestInput:
    windows: list[tuple[datetime, datetime]]
    districts: list[str] = field(default_factory=list)
    wanted_tags: list[str] = field(default_factory=list)
    avoided_tags: list[str] = field(default_factory=list)
    note: str = ""

    def validated(self, now: datetime) -> RequestInput:
        if not self.windows:
            raise Invalid("訪問できる日時を1つ以上入力してください。", code="windows_required", field="windows")
        if len(self.windows) > MAX_WINDOWS:
            raise Invalid(f"日時は{MAX_WINDOWS}件までです。", code="too_many_windows", field="windows")
        for start, end in self.windows:
            if start.tzinfo is None or end.tzinfo is None:
                raise Invalid("日時にはタイムゾーン（例：+09:00）を付けてください。", code="naive_datetime",
                              field="windows")
            if end <= start or end - start > MAX_WINDOW:
                raise Invalid("終了は開始より後、期間は14日以内にしてください。", code="invalid_window",
                              field="windows")
            if end <= now:
                raise Invalid("これから先の日時を入力してください。", code="window_in_past", field="windows")
        if set(self.districts) - set(WARD_AREAS):
            raise Invalid("地区の指定が正しくありません。", code="invalid_district", field="districts")
        unknown = (set(self.wanted_tags) | set(self.avoided_tags)) - set(HOUSEHOLD_TAGS)
        if unknown:
            raise Invalid(f"不明な条件です: {', '.join(sorted(unknown))}", code="invalid_tag", field="wanted_tags")
        if set(self.wanted_tags) & set(self.avoided_tags):
            raise Invalid("同じ条件を「希望」と「避けたい」の両方に選ぶことはできません。", code="tag_conflict",
                          field="avoided_tags")
        if len(self.note) > 1000:
            raise Invalid("メモは1000文字以内にしてください。", code="too_long", field="note")
        windows = sorted({(s.astimezone(TOKYO), e.astimezone(TOKYO)) for s, e in self.windows})
        return RequestInput(windows=windows, districts=sorted(set(self.districts)),
                            wanted_tags=sorted(set(self.wanted_tags)), avoided_tags=sorted(set(self.avoided_tags)),
                            note=self.note.strip())


def windows_of(row: dict[str, Any]) -> list[tuple[datetime, datetime]]:
    return [(datetime.fromisoformat(s), datetime.fromisoformat(e)) for s, e in row["windows"]]


def describe_windows(windows: list[tuple[datetime, datetime]], locale: str = "ja") -> list[str]:
    return [timefmt.span(start, end, locale) for start, end in windows]


async def submit_request(student_id: int, round_id: int, data: RequestInput) -> int:
    """Create the student's request in a round, or replace its content while it is not matched."""
    now = utcnow()
    data = data.validated(now)
    profile = await StudentProfile.select().where(StudentProfile.person == student_id).first()
    if profile is None:
        raise Forbidden("学生として登録された方のみ申し込めます。", code="not_student")
    first_day = min(start for start, _ in data.windows).astimezone(TOKYO).date()
    is_minor = people.age_on(profile["birth_date"], first_day) < 18
    if is_minor and not profile["guardian_email"]:
        raise Invalid("18歳未満の方は、プロフィールに保護者のメールアドレスが必要です。", code="guardian_required")
    values = {
        VisitRequest.windows: [[s.isoformat(), e.isoformat()] for s, e in data.windows],
        VisitRequest.districts: data.districts, VisitRequest.wanted_tags: data.wanted_tags,
        VisitRequest.avoided_tags: data.avoided_tags, VisitRequest.note: data.note,
        VisitRequest.is_minor: is_minor, VisitRequest.updated_at: now,
    }
    async with write_transaction():
        round_row = await get_round(round_id)
        if not accepting_requests(round_row, now):
            raise Conflict("この訪問回は現在、申込を受け付けていません。", code="round_not_accepting")
        existing = await VisitRequest.select(VisitRequest.id).where(
            (VisitRequest.round == round_id) & (VisitRequest.student == student_id)
            & (VisitRequest.status == "active")).first()
        if existing:
            request_id = existing["id"]
            if await VisitMatch.exists().where((VisitMatch.request == request_id)
                                               & VisitMatch.status.is_in(LIVE_MATCH_STATES)):
                raise Conflict("訪問先が決まっているため、申込内容は変更できません。", code="request_matched")
            await VisitRequest.update(values).where(VisitRequest.id == request_id)
        else:
            row = await VisitRequest.insert(VisitRequest(
                round=round_id, student=student_id, created_at=now, **{c._meta.name: v for c, v in values.items()}
            )).returning(VisitRequest.id)
            request_id = row[0]["id"]
        if is_minor:
            await _ask_consent(request_id, student_id, profile, round_row, data)
    return request_id


async def _ask_consent(request_id: int, student_id: int, profile: dict[str, Any], round_row: dict[str, Any],
                       data: RequestInput) -> None:
    live = await VisitConsent.exists().where(
        (VisitConsent.request == request_id) & VisitConsent.decision.is_in(["pending", "given"]))
    if live:
        return
    student = await Person.select(Person.name, Person.locale).where(Person.id == student_id).first()
    raw_token = secrets.token_urlsafe(32)
    now = utcnow()
    expires = max(now + timedelta(hours=config().consent_expiry_hours), round_row["requests_close_at"])
    where = "、".join(data.districts) if data.districts else "金沢区内"
    purpose = (f"{student['name']}さんが「{round_row['name']}」で、金沢区内の子育て家庭（{where}）を"
               "他の学生と一緒に数時間訪問すること")
    await VisitConsent.insert(VisitConsent(
        request=request_id, student=student_id, guardian_email=profile["guardian_email"],
        guardian_name=profile["guardian_name"], token_hash=digest(raw_token), text_version=CONSENT_TEXT_VERSION,
        purpose=purpose, created_at=now, expires_at=expires,
    ))
    await queue_mail(
        "visit_consent_request", to_email=profile["guardian_email"], to_name=profile["guardian_name"],
        locale=student["locale"],
        context={"student_name": student["name"], "round_name": round_row["name"], "districts": where,
                 "windows": describe_windows(data.windows, student["locale"]),
                 "link": f"{config().base_url}/visits/consent/{raw_token}", "expires_at": expires},
        key=f"visit-consent:{digest(raw_token)}",
    )


async def withdraw_request(student_id: int, request_id: int) -> None:
    async with write_transaction():
        row = await VisitRequest.select(VisitRequest.student, VisitRequest.status).where(
            VisitRequest.id == request_id).first()
        if row is None or row["student"] != student_id:
            raise NotFound("その申込は見つかりません。", code="request_not_found")
        if await VisitMatch.exists().where((VisitMatch.request == request_id)
                                           & VisitMatch.status.is_in(LIVE_MATCH_STATES)):
            raise Conflict("訪問先が決まっています。訪問をお断りする場合は「訪問予定」から辞退してください。",
                           code="request_matched")
        await VisitRequest.update({VisitRequest.status: "withdrawn", VisitRequest.updated_at: utcnow()}).where(
            VisitRequest.id == request_id)
        await VisitMatch.update({VisitMatch.status: "superseded"}).where(
            (VisitMatch.request == request_id) & (VisitMatch.status == "proposed"))


def _request_columns():
    return (VisitRequest.all_columns(), VisitRequest.round.name.as_alias("round_name"),
            VisitRequest.student.name.as_alias("student_name"))


async def get_request(request_id: int, *, viewer_id: int, staff: bool) -> dict[str, Any]:
    """A student sees only their own request; staff see any (the caller audits staff views of minors)."""
    row = await VisitRequest.select(*_request_columns()).where(VisitRequest.id == request_id).output(
        load_json=True).first()
    if row is None or (not staff and row["student"] != viewer_id):
        raise NotFound("その申込は見つかりません。", code="request_not_found")
    row["consent"] = await consent_status(request_id)
    return row


async def requests_of_student(student_id: int) -> list[dict[str, Any]]:
    rows = await VisitRequest.select(*_request_columns()).where(VisitRequest.student == student_id).order_by(
        VisitRequest.id, ascending=False).output(load_json=True)
    for row in rows:
        row["consent"] = await consent_status(row["id"]) if row["is_minor"] else "not_needed"
    return rows


async def requests_of_round(round_id: int) -> list[dict[str, Any]]:
    rows = await VisitRequest.select(*_request_columns()).where(
        (VisitRequest.round == round_id) & (VisitRequest.status == "active")).order_by(VisitRequest.id).output(
        load_json=True)
    decisions = await consent_decisions(round_id)
    for row in rows:
        row["consent"] = decisions.get(row["id"], "pending") if row["is_minor"] else "not_needed"
    return rows


async def consent_status(request_id: int) -> str:
    rows = await VisitConsent.select(VisitConsent.decision).where(VisitConsent.request == request_id).order_by(
        VisitConsent.id, ascending=False)
    return rows[0]["decision"] if rows else "pending"


async def consent_decisions(round_id: int) -> dict[int, str]:
    """The latest consent decision of each request in the round."""
    rows = await VisitConsent.select(VisitConsent.request, VisitConsent.decision).where(
        VisitConsent.request.round == round_id).order_by(VisitConsent.id)
    return {row["request"]: row["decision"] for row in rows}


# ------------------------------------------------------------------------- guardian consent


async def consent_info(raw_token: str) -> dict[str, Any] | None:
    """What the guardian's page shows: who, what, where (districts only), when, and the current decision."""
    row = await VisitConsent.select(
        VisitConsent.id, VisitConsent.purpose, VisitConsent.decision, VisitConsent.expires_at,
        VisitConsent.guardian_name, VisitConsent.request.windows.as_alias("windows"),
        VisitConsent.request.districts.as_alias("districts"),
        VisitConsent.request.round.name.as_alias("round_name"), VisitConsent.student.name.as_alias("student_name"),
        VisitConsent.student.locale.as_alias("locale"),
    ).where(VisitConsent.token_hash == digest(raw_token)).output(load_json=True).first()
    if row is None:
        return None
    row["expired"] = row["decision"] == "pending" and row["expires_at"] <= utcnow()
    row["window_lines"] = describe_windows(windows_of(row), "ja")
    row["window_lines_en"] = describe_windows(windows_of(row), "en")
    return row


async def decide_consent(raw_token: str, decision: str, *, client: str = "") -> str:
    """The guardian's answer; a token is used once (a conditional UPDATE), then the student is told."""
    if decision not in ("given", "refused"):
        raise Invalid("「同意する」または「同意しない」を選んでください。", code="invalid_decision")
    now = utcnow()
    async with write_transaction():
        rows = await VisitConsent.update({VisitConsent.decision: decision, VisitConsent.decided_at: now,
                                          VisitConsent.decided_from: client[:64]}).where(
            (VisitConsent.token_hash == digest(raw_token)) & (VisitConsent.decision == "pending")
            & (VisitConsent.expires_at > now)
        ).returning(VisitConsent.id, VisitConsent.student, VisitConsent.request)
        if not rows:
            raise Invalid("このリンクは使えません（回答済み、または期限切れ）。区の担当者にお問い合わせください。",
                          code="consent_link_invalid", status=400)
        await _tell_student(rows[0]["id"], decision)
    return decision


async def _tell_student(consent_id: int, decision: str) -> None:
    row = await VisitConsent.select(
        VisitConsent.student.email.as_alias("email"), VisitConsent.student.name.as_alias("name"),
        VisitConsent.student.locale.as_alias("locale"), VisitConsent.request.round.name.as_alias("round_name"),
    ).where(VisitConsent.id == consent_id).first()
    await queue_mail(
        "visit_consent_outcome", to_email=row["email"], to_name=row["name"], locale=row["locale"],
        context={"round_name": row["round_name"], "decision": decision},
        key=f"visit-consent-outcome:{consent_id}:{decision}",
    )


async def expire_consents() -> int:
    """Worker job: pending consents past their date become expired; the student is told. Cheap when none."""
    now = utcnow()
    due = await VisitConsent.select(VisitConsent.id).where(
        (VisitConsent.decision == "pending") & (VisitConsent.expires_at <= now)).limit(100)
    if not due:
        return 0
    async with write_transaction():
        rows = await VisitConsent.update({VisitConsent.decision: "expired", VisitConsent.decided_at: now}).where(
            VisitConsent.id.is_in([r["id"] for r in due]) & (VisitConsent.decision == "pending")
        ).returning(VisitConsent.id)
        for row in rows:
            await _tell_student(row["id"], "expired")
    return len(rows)
