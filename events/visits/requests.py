"""Students' visit requests, and what the guardian's consent to a home visit means (subject `visit_request`).

The consent itself is the kernel's (events.consent: one table, one token flow, one expiry job, one page);
this module tells it what a visit request is about (round, districts only, the student's dates) and acts
on the answer: the student is told, and a revoked consent stops the student's confirmed visit at once (the
place ledger's safeguarding invariant puts it on hold) and withdraws offered ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from events import access, audit, consent, places, timefmt
from events.access import Actor
from events.core.tables import WARD_AREAS, StudentProfile
from events.db import utcnow, write_transaction
from events.errors import Conflict, Forbidden, Invalid, NotFound
from events.mail import queue_mail
from events.timefmt import TOKYO
from events.visits import guardians
from events.visits.rounds import accepting_requests, get_round
from events.visits.tables import (
    CONSENT_SUBJECT,
    HOUSEHOLD_TAGS,
    LIVE_MATCH_STATES,
    VisitMatch,
    VisitRequest,
    VisitSlot,
)

CONSENT_TEXT_VERSION = "visit-consent-2026-2"
MAX_WINDOWS = 20
MAX_WINDOW = timedelta(days=14)


@dataclass(frozen=True)
class RequestInput:
    windows: list[tuple[datetime, datetime]]
    districts: list[str] = field(default_factory=list)
    wanted_tags: list[str] = field(default_factory=list)
    avoided_tags: list[str] = field(default_factory=list)
    note: str = ""
    any_time: bool = False  # any slot families offer in the round will do

    def validated(self, now: datetime) -> RequestInput:
        if not self.windows and not self.any_time:
            raise Invalid("訪問できる枠か日時を1つ以上選ぶか、「どの枠でもよい」を選んでください。",
                          code="windows_required", field="windows")
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
                            note=self.note.strip(), any_time=bool(self.any_time))


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
    # under 18 on the first day they can visit; "any slot" could be as early as today
    first_day = min([start.astimezone(TOKYO).date() for start, _ in data.windows]
                    + ([timefmt.tokyo_date(now)] if data.any_time else []))
    is_minor = consent.is_minor(profile["birth_date"], first_day)
    if is_minor and not profile["guardian_email"]:
        raise Invalid("18歳未満の方は、プロフィールに保護者のメールアドレスが必要です。", code="guardian_required")
    values = {
        VisitRequest.windows: [[s.isoformat(), e.isoformat()] for s, e in data.windows],
        VisitRequest.districts: data.districts, VisitRequest.wanted_tags: data.wanted_tags,
        VisitRequest.avoided_tags: data.avoided_tags, VisitRequest.note: data.note,
        VisitRequest.any_time: data.any_time, VisitRequest.is_minor: is_minor, VisitRequest.updated_at: now,
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
            await _ask_consent(request_id, student_id, round_row, data)
    return request_id


async def _ask_consent(request_id: int, student_id: int, round_row: dict[str, Any], data: RequestInput) -> None:
    # The guardian has at least until requests close to answer, and never past the first day asked for
    # ("any slot": until requests close).
    first_day = None if data.any_time else min(start for start, _ in data.windows)
    await consent.request(consent.Subject(CONSENT_SUBJECT, request_id), student_id,
                          not_before=round_row["requests_close_at"], not_after=first_day)


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
        await consent.withdraw(consent.Subject(CONSENT_SUBJECT, request_id), ended_by="student")


def _request_columns():
    return (VisitRequest.all_columns(), VisitRequest.round.name.as_alias("round_name"),
            VisitRequest.student.name.as_alias("student_name"))


async def get_request(request_id: int, *, actor: Actor) -> dict[str, Any]:
    """A student sees only their own request; staff see any (audited: it may be a minor's)."""
    row = await VisitRequest.select(*_request_columns()).where(VisitRequest.id == request_id).output(
        load_json=True).first()
    if row is None or (not actor.staff and row["student"] != actor.person_id):
        raise NotFound("その申込は見つかりません。", code="request_not_found")
    if actor.staff and row["student"] != actor.person_id:
        async with write_transaction():
            await audit.record(actor, "staff_viewed_visit_request", subject_type="visit_request", subject_id=request_id,
                               detail={"minor": row["is_minor"]})
    row["consent"] = await consent_status(request_id)
    return row


async def is_minor_request(match_id: int) -> bool:
    """Whether the match's request is a minor's (their guardian is told of every change)."""
    row = await VisitMatch.select(VisitMatch.request.is_minor.as_alias("minor")).where(VisitMatch.id == match_id).first()
    return bool(row and row["minor"])


async def requests_of_student(student_id: int) -> list[dict[str, Any]]:
    rows = await VisitRequest.select(*_request_columns()).where(VisitRequest.student == student_id).order_by(
        VisitRequest.id, ascending=False).output(load_json=True)
    for row in rows:
        row["consent"] = await consent_status(row["id"]) if row["is_minor"] else "not_needed"
    return rows


async def view_requests(round_id: int, *, actor: Actor) -> list[dict[str, Any]]:
    """A round's requests for staff (names, minors, consent): audited."""
    access.require_staff(actor)
    return await audit.viewed(actor, "staff_viewed_visit_requests", lambda: requests_of_round(round_id),
                              subject_type="visit_round", subject_id=round_id,
                              detail=lambda rows: {"count": len(rows), "minors": sum(1 for r in rows if r["is_minor"])})


async def requests_of_round(round_id: int) -> list[dict[str, Any]]:
    rows = await VisitRequest.select(*_request_columns()).where(
        (VisitRequest.round == round_id) & (VisitRequest.status == "active")).order_by(VisitRequest.id).output(
        load_json=True)
    decisions = await consent_decisions(round_id)
    for row in rows:
        row["consent"] = decisions.get(row["id"], "pending") if row["is_minor"] else "not_needed"
    return rows


async def consent_status(request_id: int) -> str:
    state = await consent.state_of(consent.Subject(CONSENT_SUBJECT, request_id))
    return "pending" if state == "none" else state


async def consent_decisions(round_id: int) -> dict[int, str]:
    """The latest consent decision of each request in the round."""
    ids = [r["id"] for r in await VisitRequest.select(VisitRequest.id).where(VisitRequest.round == round_id)]
    return await consent.states_of(CONSENT_SUBJECT, ids)


# ------------------------------------------------------------------------- the consent subject


class VisitRequestConsent(consent.ConsentSubject):
    async def describe(self, subject_id: int) -> consent.Description:
        row = await VisitRequest.select(
            VisitRequest.windows, VisitRequest.any_time, VisitRequest.districts, VisitRequest.round,
            VisitRequest.round.name.as_alias("round_name"), VisitRequest.student.name.as_alias("student_name"),
        ).where(VisitRequest.id == subject_id).output(load_json=True).first()
        if row is None:
            raise NotFound("このリンクは無効です。", code="consent_not_found")
        windows = windows_of(row)
        where = "、".join(row["districts"]) if row["districts"] else "金沢区内"
        when = "、".join(describe_windows(windows, "ja"))
        if row["any_time"]:
            when = "受け入れ家庭が用意した枠のどれでも" + (f"（ほかに {when}）" if when else "")
        # consent can be revoked until the last day the visit could take place
        last = [end for _, end in windows]
        if row["any_time"]:
            slot = await VisitSlot.select(VisitSlot.ends_at).where(VisitSlot.round == row["round"]).order_by(
                VisitSlot.ends_at, ascending=False).first()
            last += [slot["ends_at"]] if slot else []
        contact = guardians.ward_contact()
        return consent.Description(
            title=row["round_name"],
            asks=f"「{row['round_name']}」（家庭訪問）への参加申込がありました。",
            facts=(("内容", "区内の子育て家庭を、他の学生と一緒に数時間訪問し、日常の子育ての様子を見せていただきます。"),
                   ("場所", f"{where}（訪問先のご住所は、訪問が確定した後に生徒さんにお知らせします）"),
                   ("訪問できる日時（ご本人の希望）", when),
                   ("一緒に訪問する学生", "18歳以上の学生が必ず1人以上一緒に訪問します（組み合わせが決まったら、お名前をお知らせします）"),
                   ("受け入れ家庭に伝わる情報", "お名前・学校名・学年（訪問が確定した後は、当日の連絡のためメールアドレスも）"),
                   ("主催", "横浜市金沢区 こども家庭支援課（金沢若者ライフデザイン事業）"),
                   ("お問い合わせ", f"{contact['name']}（{contact['email']}）")),
            notes=("18歳未満の方が一人で訪問することはありません。必ず18歳以上の学生と一緒に訪問します。",
                   "受け入れ家庭は、区の担当者が事前に面談して確認しています。",
                   "組み合わせが決まったとき・確定したとき・変更や取りやめのときは、保護者の方にもメールでお知らせします。"
                   "訪問の予定は、メールのリンクのページでいつでもご確認いただけます（ログインは不要です）。",
                   "同意いただいた後でも、訪問の開始前であれば、このページから同意を取り消せます。"),
            purpose=(f"{row['student_name']}さんが「{row['round_name']}」で、金沢区内の子育て家庭（{where}）を"
                     "他の学生と一緒に数時間訪問すること"),
            starts_at=max(last) if last else None, text_version=CONSENT_TEXT_VERSION,
        )

    async def outcome_context(self, subject_id: int, decision: str) -> dict[str, Any]:
        """The guardian's confirmation of their consent carries the link to the visit-status page."""
        if decision != "given":
            return {}
        guardian = await guardians.guardian_of_request(subject_id)
        if guardian is None:
            return {}
        return {"status_link": await guardians.new_link(subject_id, guardian["email"])}

    async def decided(self, subject_id: int, decision: str) -> None:
        if decision == "revoked":
            await _stop_visits(subject_id)
        row = await VisitRequest.select(
            VisitRequest.student.email.as_alias("email"), VisitRequest.student.name.as_alias("name"),
            VisitRequest.student.locale.as_alias("locale"), VisitRequest.round.name.as_alias("round_name"),
        ).where(VisitRequest.id == subject_id).first()
        await queue_mail(
            "visit_consent_outcome", to_email=row["email"], to_name=row["name"], locale=row["locale"],
            context={"round_name": row["round_name"], "decision": decision},
            key=f"visit-consent-outcome:{subject_id}:{decision}:{utcnow().isoformat()}",
        )


async def _stop_visits(request_id: int) -> None:
    """The guardian revoked consent: an offered visit is withdrawn, a confirmed one goes on hold (the ledger's
    safeguarding invariant sees the consent gone)."""
    matches = await VisitMatch.select(VisitMatch.id, VisitMatch.status, VisitMatch.slot.event.as_alias("event")).where(
        (VisitMatch.request == request_id) & VisitMatch.status.is_in(LIVE_MATCH_STATES))
    for match in matches:
        if match["event"] is not None:
            await places.recheck(match["event"])
    await VisitMatch.update({VisitMatch.status: "cancelled", VisitMatch.responded_at: utcnow()}).where(
        (VisitMatch.request == request_id) & VisitMatch.status.is_in(LIVE_MATCH_STATES))


consent.register_subject(CONSENT_SUBJECT, VisitRequestConsent())
