"""Safeguarding of home visits, as a standing invariant rather than a check at proposal time.

THE INVARIANT. At every moment, for every home-visit event (one offered slot of one household):

- a minor (under 18 on the visit day, events.consent.is_minor) who holds a confirmed place has at least one
  adult co-visitor holding a confirmed place in the same slot — no minor is ever confirmed alone at a home;
- that minor's guardian's consent to the visit stands (given, not revoked);
- the household's vetting is valid on the visit day — otherwise nobody is confirmed there.

Who keeps it: the place ledger (events.places) calls `unsafe_places` after every change of a place on a
home-visit event — a cancellation, a decline, a re-match, a new place — and whoever else can break it
(a guardian revoking consent, a coordinator shortening a vetting, the vetting-expiry job) asks the ledger
to `recheck` the event. A place that breaks the invariant is ended in the same transaction with reason
`safeguarding_hold`: the address and contact doors close (they require a confirmed place), the visit shows
as needing attention on the round page (the visits area marks the match on hold), and the coordinator and
the guardian are mailed (`tell_hold`). Matching plans by the same rule (`may_confirm` picks who of a slot's
accepted students may be confirmed together), so a proposal never needs a hold; the hold is the net for
everything that happens afterwards.

This module only reads and mails; it never writes a place (that is the ledger's alone).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from events import consent, signals, timefmt
from events.config import config
from events.core.tables import Person, PersonRole
from events.mail import queue_mail
from events.seminars.tables import SEAT_HOLDING_STATES, Registration

REASONS = {
    "alone": "同行する18歳以上の学生がいなくなりました",
    "consent": "保護者の方の同意が取り消されました",
    "vetting": "受け入れ家庭の確認（面談）の有効期限が訪問日までありません",
}


@dataclass(frozen=True)
class Visitor:
    key: int  # a registration id (or a match id when planning)
    person_id: int
    minor: bool
    consented: bool  # the guardian's consent stands (only minors need it)


def unsafe(visitors: Iterable[Visitor], *, vetted_until: date | None, day: date) -> dict[int, tuple[str, ...]]:
    """The rule itself (pure): which of these confirmed visitors may not stay confirmed, and why."""
    group = list(visitors)
    if vetted_until is None or vetted_until < day:
        return {v.key: ("vetting",) for v in group}
    adults = [v for v in group if not v.minor]
    out: dict[int, tuple[str, ...]] = {}
    for v in group:
        if not v.minor:
            continue
        reasons = tuple(r for r, broken in (("alone", not adults), ("consent", not v.consented)) if broken)
        if reasons:
            out[v.key] = reasons
    return out


def may_confirm(candidates: Iterable[Visitor], *, vetted_until: date | None, day: date) -> set[int]:
    """Of the students who accepted a slot, those who may be confirmed together (pure): the largest group the
    invariant allows — every adult, and the consented minors when at least one adult is among them."""
    group = list(candidates)
    if vetted_until is None or vetted_until < day:
        return set()
    adults = {v.key for v in group if not v.minor}
    minors = {v.key for v in group if v.minor and v.consented}
    return adults | minors if adults else set()


async def _visitors(event: Mapping[str, Any], host: signals.VisitHost | None) -> list[Visitor]:
    rows = await Registration.select(Registration.id, Registration.person).where(
        (Registration.event == event["id"]) & Registration.status.is_in(list(SEAT_HOLDING_STATES)))
    day = timefmt.tokyo_date(event["starts_at"])
    minors = await consent.minors_among([r["person"] for r in rows], day)
    consented = host.consented if host else frozenset()
    return [Visitor(r["id"], r["person"], r["person"] in minors, r["person"] in consented) for r in rows]


async def unsafe_places(event: Mapping[str, Any]) -> dict[int, tuple[str, ...]]:
    """Registrations of a home-visit event that break the invariant now (read in the caller's transaction)."""
    host = await signals.VISIT_HOST.call(event["id"])
    visitors = await _visitors(event, host)
    if not visitors:
        return {}
    return unsafe(visitors, vetted_until=host.vetted_until if host else None, day=timefmt.tokyo_date(event["starts_at"]))


async def _coordinators(host: signals.VisitHost | None) -> list[dict[str, Any]]:
    """The round's coordinator, or every active coordinator when the round has none."""
    if host and host.coordinator_id:
        rows = await Person.select(Person.email, Person.name, Person.locale).where(
            (Person.id == host.coordinator_id) & (Person.active == True))  # noqa: E712 - Piccolo's column comparison
        if rows:
            return rows
    ids = [r["person"] for r in await PersonRole.select(PersonRole.person).where(PersonRole.role == "coordinator")]
    if not ids:
        return []
    return await Person.select(Person.email, Person.name, Person.locale).where(
        Person.id.is_in(ids) & (Person.active == True))  # noqa: E712


async def tell_hold(event: Mapping[str, Any], registration: Mapping[str, Any], reasons: Iterable[str]) -> None:
    """A place was put on hold: the coordinator (to re-match) and, for a minor, the guardian are told."""
    host = await signals.VISIT_HOST.call(event["id"])
    student = await Person.select(Person.name).where(Person.id == registration["person"]).first()
    why = [REASONS.get(r, r) for r in reasons]
    context = {"student_name": student["name"] if student else "", "when": timefmt.event_when(event),
               "district": host.district if host else event.get("venue", ""),
               "household_name": host.household_name if host else "", "reasons": why}
    key = f"safeguarding:{registration['id']}:{registration['updated_at'].isoformat()}"
    link = f"{config().base_url}/visits/admin/rounds/{host.round_id}" if host else f"{config().base_url}/visits/admin"
    for person in await _coordinators(host):
        await queue_mail("safeguarding_hold", to_email=person["email"], to_name=person["name"], locale=person["locale"],
                         context={**context, "side": "coordinator", "link": link},
                         key=f"{key}:coordinator:{person['email']}")
    day = timefmt.tokyo_date(event["starts_at"])
    if await consent.needs_consent(registration["person"], day):
        email, name = await consent.guardian_of(registration["person"])
        if email:
            await queue_mail("safeguarding_hold", to_email=email, to_name=name, locale="ja",
                             context={**context, "side": "guardian", "link": ""}, key=f"{key}:guardian")
