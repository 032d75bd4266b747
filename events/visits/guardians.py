"""Guardians of minors as participants of home visits: a status page without an account, and a mail whenever
the child's visit is matched, confirmed, changed (who goes with the child) or cancelled.

Who the guardian is: the one whose consent to the visit request stands (events.consent's record, decision
`given`). What a mail says: the date and time, the household's *area* (district), the names of the adult
students going with the child, and whom to call at the ward — never the home address. The status page
(`/visits/guardian/<token>`) shows the same, and the address only once the ward releases it to the student
(both sides confirmed, until a week after the visit), read through `households.read_address` on the
student's behalf and audited there.

A link is a random token whose digest is kept (events.tokens), one per mail; it works until it expires and
while its guardian is still the one whose consent stands. The guardian's original consent link opens the
status page too. Everything runs in the caller's write transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from events import consent, timefmt
from events.config import config
from events.core.tables import Person
from events.db import utcnow, write_transaction
from events.errors import DomainError, Forbidden, NotFound
from events.mail import queue_mail
from events.seminars.tables import GuardianConsent
from events.tokens import digest, new_token
from events.visits import households
from events.visits.states import visit_state
from events.visits.tables import (
    CONSENT_SUBJECT,
    LIVE_MATCH_STATES,
    VisitGuardianLink,
    VisitMatch,
    VisitRequest,
)

LINK_DAYS = timedelta(days=30)  # a link in a mail works at least this long
AFTER_VISIT = timedelta(days=7)  # and until a week after the visit it is about (as the address is shown)
KINDS = ("matched", "confirmed", "changed", "cancelled")
SHOWN_STATES = (*LIVE_MATCH_STATES, "declined", "cancelled", "on_hold")


def ward_contact(coordinator_name: str = "") -> dict[str, str]:
    """Whom a guardian calls or writes to: the ward's division (the mail sender) and the round's coordinator."""
    return {"name": config().mail_from_name, "email": config().mail_from, "coordinator": coordinator_name}


async def guardian_of_request(request_id: int) -> dict[str, str] | None:
    """The guardian whose consent to this request stands, or None (an adult's request, or no consent now)."""
    rows = await consent.records(consent.Subject(CONSENT_SUBJECT, request_id))
    if not rows or rows[-1]["decision"] != "given" or not rows[-1]["guardian_email"]:
        return None
    return {"email": rows[-1]["guardian_email"], "name": rows[-1]["guardian_name"] or ""}


async def new_link(request_id: int, guardian_email: str, *, visit_ends_at: datetime | None = None) -> str:
    """A fresh status-page link for the guardian (only its digest is stored)."""
    now = utcnow()
    expires = max(now + LINK_DAYS, (visit_ends_at or now) + AFTER_VISIT)
    token = new_token()
    await VisitGuardianLink.insert(VisitGuardianLink(request=request_id, token_hash=digest(token),
                                                     guardian_email=guardian_email, created_at=now,
                                                     expires_at=expires))
    return f"{config().base_url}/visits/guardian/{token}"


async def _adult_names(student_ids: list[int], day: Any) -> list[str]:
    if not student_ids:
        return []
    minors = await consent.minors_among(student_ids, day)
    adults = [s for s in student_ids if s not in minors]
    if not adults:
        return []
    names = {r["id"]: r["name"] for r in await Person.select(Person.id, Person.name).where(Person.id.is_in(adults))}
    return [names[s] for s in adults if s in names]


async def companions(slot_id: int, student_id: int, *, confirmed_only: bool,
                     leaving: int | None = None) -> list[str]:
    """The adult students going with this student: those with a confirmed place (or, before the visit is
    confirmed, those offered the same slot), never the student themself nor `leaving` (whose place is ending)."""
    query = VisitMatch.select(VisitMatch.student, VisitMatch.slot.starts_at.as_alias("starts_at"),
                              VisitMatch.registration.status.as_alias("place")).where(
        (VisitMatch.slot == slot_id) & VisitMatch.status.is_in(
            ["accepted"] if confirmed_only else list(LIVE_MATCH_STATES))).order_by(VisitMatch.id)
    rows = [r for r in await query if r["student"] not in (student_id, leaving)
            and (not confirmed_only or r["place"] == "confirmed")]
    if not rows:
        return []
    return await _adult_names([r["student"] for r in rows], timefmt.tokyo_date(rows[0]["starts_at"]))


async def _match(match_id: int) -> dict[str, Any] | None:
    return await VisitMatch.select(
        VisitMatch.id, VisitMatch.request, VisitMatch.slot, VisitMatch.student, VisitMatch.status,
        VisitMatch.student.name.as_alias("student_name"), VisitMatch.request.is_minor.as_alias("is_minor"),
        VisitMatch.household.district.as_alias("district"), VisitMatch.slot.starts_at.as_alias("starts_at"),
        VisitMatch.slot.ends_at.as_alias("ends_at"), VisitMatch.round.name.as_alias("round_name"),
        VisitMatch.round.created_by.name.as_alias("coordinator_name"),
    ).where(VisitMatch.id == match_id).first()


async def tell(match_id: int, kind: str, *, reason: str = "", note: str = "", leaving: int | None = None,
               key: str = "", previous: int | None = None) -> bool:
    """Mail the guardian of a minor's match (no-op for an adult, or when no consent stands): `kind` is matched,
    confirmed, changed or cancelled; `reason` says why a visit was cancelled (rematch, coordinator,
    declined_by_student, declined_by_family) and `note` is the ward's own words, if any; `previous` is the
    match a re-match's new one replaces (said in the same mail: when and where the visit was). Returns whether
    a mail was queued."""
    if kind not in KINDS:
        raise ValueError(f"unknown guardian notice {kind!r}")
    row = await _match(match_id)
    if row is None or not row["is_minor"]:
        return False
    guardian = await guardian_of_request(row["request"])
    if guardian is None:
        return False
    going = await companions(row["slot"], row["student"], confirmed_only=kind in ("confirmed", "changed"),
                             leaving=leaving) if kind != "cancelled" else []
    if kind == "changed" and not going:  # nobody adult left: the safeguarding hold follows, with its own mails
        return False
    before = await _match(previous) if previous is not None else None
    link = await new_link(row["request"], guardian["email"], visit_ends_at=row["ends_at"])
    queued = await queue_mail(
        "visit_guardian", to_email=guardian["email"], to_name=guardian["name"], locale="ja",
        context={"kind": kind, "student_name": row["student_name"], "round_name": row["round_name"],
                 "when": timefmt.span(row["starts_at"], row["ends_at"], "ja"),
                 "when_en": timefmt.span(row["starts_at"], row["ends_at"], "en"), "district": row["district"],
                 "companions": going, "reason": reason, "note": note.strip(), "link": link,
                 "contact": ward_contact(row["coordinator_name"] or ""),
                 "previous_when": timefmt.span(before["starts_at"], before["ends_at"], "ja") if before else "",
                 "previous_when_en": timefmt.span(before["starts_at"], before["ends_at"], "en") if before else "",
                 "previous_district": before["district"] if before else ""},
        key=f"visit-guardian:{match_id}:{kind}:{key or reason}:{digest('|'.join(going))[:16]}",
    )
    if not queued:  # the same notice twice: the unused link goes
        await VisitGuardianLink.delete().where(VisitGuardianLink.token_hash == digest(link.rsplit("/", 1)[1]))
    return queued


# ---------------------------------------------------------------- the status page


async def _resolve(token: str) -> dict[str, Any]:
    """The request a token opens: a status link from a mail, or the guardian's own consent link."""
    hashed = digest(token or "")
    link = await VisitGuardianLink.select(VisitGuardianLink.request, VisitGuardianLink.guardian_email,
                                          VisitGuardianLink.expires_at).where(
        VisitGuardianLink.token_hash == hashed).first()
    if link is not None:
        guardian = await guardian_of_request(link["request"])
        if guardian is None or guardian["email"] != link["guardian_email"]:
            raise NotFound("このリンクは無効です。", code="guardian_link_not_found")
        if link["expires_at"] <= utcnow():
            raise DomainError("このリンクの有効期限が切れました。", code="guardian_link_expired", status=410)
        return {"request": link["request"], "consent_token": ""}
    row = await GuardianConsent.select(GuardianConsent.subject_id).where(
        (GuardianConsent.token_hash == hashed) & (GuardianConsent.subject_kind == CONSENT_SUBJECT)).first()
    if row is None:
        raise NotFound("このリンクは無効です。", code="guardian_link_not_found")
    return {"request": row["subject_id"], "consent_token": token}


async def status_view(token: str, *, client: str = "") -> dict[str, Any]:
    """What the guardian's status page shows, read (and any address view audited) in one transaction."""
    async with write_transaction():
        found = await _resolve(token)
        request = await VisitRequest.select(
            VisitRequest.id, VisitRequest.student, VisitRequest.status, VisitRequest.windows, VisitRequest.any_time,
            VisitRequest.districts, VisitRequest.student.name.as_alias("student_name"),
            VisitRequest.round.name.as_alias("round_name"),
            VisitRequest.round.created_by.name.as_alias("coordinator_name"),
        ).where(VisitRequest.id == found["request"]).output(load_json=True).first()
        if request is None:
            raise NotFound("このリンクは無効です。", code="guardian_link_not_found")
        matches = await VisitMatch.select(
            VisitMatch.id, VisitMatch.slot, VisitMatch.household, VisitMatch.status, VisitMatch.student_response,
            VisitMatch.family_response, VisitMatch.registration.status.as_alias("place"),
            VisitMatch.household.district.as_alias("district"),
            VisitMatch.household.display_name.as_alias("household_name"),
            VisitMatch.slot.starts_at.as_alias("starts_at"), VisitMatch.slot.ends_at.as_alias("ends_at"),
        ).where((VisitMatch.request == request["id"]) & VisitMatch.status.is_in(list(SHOWN_STATES))).order_by(
            VisitMatch.id, ascending=False)
        visits = []
        for m in matches:
            state = visit_state({**m, "place_confirmed": m["place"] == "confirmed"}, "guardian")
            visit = {"id": m["id"], "state": state, "starts_at": m["starts_at"], "ends_at": m["ends_at"],
                     "district": m["district"], "companions": [], "address": None, "household_name": ""}
            if state in ("offered", "waiting_group", "confirmed"):
                visit["companions"] = await companions(m["slot"], request["student"],
                                                       confirmed_only=state == "confirmed")
            if state == "confirmed":
                try:  # released to the student: the guardian sees it on the student's terms (audited)
                    address = await households.read_address(
                        m["household"], actor=households.guardian_actor(client), on_behalf_of=request["student"])
                    visit["address"], visit["household_name"] = address, address["display_name"]
                except Forbidden:
                    pass
            visits.append(visit)
        state = await consent.state_of(consent.Subject(CONSENT_SUBJECT, request["id"]))
    return {"student_name": request["student_name"], "round_name": request["round_name"],
            "request_status": request["status"], "consent_state": state, "any_time": request["any_time"],
            "windows": [(datetime.fromisoformat(s), datetime.fromisoformat(e)) for s, e in request["windows"]],
            "districts": request["districts"], "visits": visits, "consent_token": found["consent_token"],
            "contact": ward_contact(request["coordinator_name"] or "")}
