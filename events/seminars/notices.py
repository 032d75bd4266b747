"""The mails of seminar and exchange places: one mail per change of a person's place, and event changes.

This is the seminars area's `signals.PLACE_NOTICE` for the event kinds it registers (seminar,
staff_exchange): the place ledger calls it for every change, inside the change's transaction. Each change
queues exactly one mail to the person (idempotency key `seminar:<registration id>:<status>`); a mail for a
new confirmed place carries the calendar invite (REQUEST), one for an ended confirmed place its CANCEL, so
nobody receives two mails for one change. Guardians' mails come from events.consent.

It also follows `signals.EVENT_CHANGED`: everyone registered but not confirmed gets a 'changed' mail
(confirmed places get the updated invite from the invites area instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events import signals, timefmt
from events.config import config
from events.core.tables import Person
from events.db import aware
from events.mail import queue_mail
from events.seminars import allocation
from events.seminars.tables import LIVE_STATES, Event, Registration

KINDS = ("seminar", "staff_exchange")

# (reason, new status) -> mail template; reasons not listed (attendance) send nothing.
_TEMPLATES = {
    ("registered", "confirmed"): "seminar_confirmed",
    ("registered", "pending_consent"): "seminar_pending_consent",
    ("registered", "waitlisted"): "seminar_waitlisted",
    ("registered", "applied"): "seminar_applied",
    ("promoted", "confirmed"): "seminar_promoted",
    ("promoted", "pending_consent"): "seminar_promoted",
    ("promoted", "offered"): "seminar_offer",
    ("offer_accepted", "confirmed"): "seminar_offer_accepted",
    ("offer_accepted", "pending_consent"): "seminar_offer_accepted",
    ("offer_declined", "cancelled"): "seminar_cancelled",
    ("offer_expired", "cancelled"): "seminar_offer_expired",
    ("lottery_won", "confirmed"): "seminar_lottery_won",
    ("lottery_won", "pending_consent"): "seminar_lottery_won",
    ("lottery_lost", "waitlisted"): "seminar_lottery_lost",
    ("consent_given", "confirmed"): "seminar_consent_outcome",
    ("consent_refused", "cancelled"): "seminar_consent_outcome",
    ("consent_expired", "cancelled"): "seminar_consent_outcome",
    ("consent_revoked", "cancelled"): "seminar_consent_outcome",
    ("cancelled", "cancelled"): "seminar_cancelled",
    ("left_waitlist", "cancelled"): "seminar_cancelled",
    ("event_cancelled", "cancelled"): "seminar_event_cancelled",
}


def event_context(event: Mapping[str, Any], locale: str = "ja") -> dict[str, Any]:
    """What mails and pages say about an event, in the reader's language."""
    english = locale == "en"
    return {
        "event_id": event["id"],
        "title": (event.get("title_en") if english else "") or event["title"],
        "venue": (event.get("venue_en") if english else "") or event["venue"],
        "access": (event.get("access_en") if english else "") or event.get("access") or "",
        "when": timefmt.event_when(event, locale),
        "event_url": f"{config().base_url}/events/{event['id']}",
        "cancel_cutoff_hours": event.get("cancel_cutoff_hours", 24),
    }


async def _event(event_id: int) -> dict[str, Any]:
    event = await Event.select().where(Event.id == event_id).first()
    for key in ("starts_at", "ends_at", "registration_closes_at"):
        event[key] = aware(event[key])
    return event


async def place_notice(change: signals.PlaceChanged) -> None:
    template = _TEMPLATES.get((change.reason, change.new))
    if template is None:
        return
    event = dict(change.event) if change.event is not None else await _event(change.event_id)
    person = change.person or await Person.select(Person.id, Person.email, Person.name, Person.locale,
                                                  Person.reminders).where(Person.id == change.person_id).first()
    if person is None:
        return
    extra: dict[str, Any] = {}
    calendar = None
    if change.new == "confirmed":
        calendar = "REQUEST"
    elif change.new == "cancelled" and change.old == "confirmed":
        calendar = "CANCEL"
    if change.new in ("confirmed", "pending_consent"):
        extra["needs_consent"] = change.new == "pending_consent"
    if change.new == "waitlisted":
        extra["waitlist_rank"] = change.detail.get("waitlist_rank")
    if change.new == "offered":
        row = await Registration.select(Registration.offer_expires_at).where(
            Registration.id == change.registration_id).first()
        extra["offer_expires"] = timefmt.long(aware(row["offer_expires_at"]), person["locale"])
    if event["allocation"] == "lottery" and (change.new == "applied" or change.reason.startswith("lottery_")):
        row = await Registration.select(Registration.lottery_ticket, Registration.priority_reason).where(
            Registration.id == change.registration_id).first()
        extra.update(ticket=row["lottery_ticket"], priority_reason=allocation.priority_label(row["priority_reason"], person["locale"]),
                     commitment=event.get("lottery_commitment", ""),
                     lottery_url=f"{config().base_url}/events/{event['id']}/lottery")
    if change.new == "applied" and event["registration_closes_at"]:
        extra["closes"] = timefmt.long(event["registration_closes_at"], person["locale"])
    elif change.new == "applied":
        extra["closes"] = ""
    if change.reason.startswith("consent_"):
        extra["decision"] = change.reason.removeprefix("consent_")
    if change.new == "cancelled":
        extra.update(previous_status=change.old, reason=change.detail.get("reason", ""),
                     by_coordinator=bool(change.detail.get("by_coordinator")))
    part = None
    if calendar:
        part = await signals.INVITE_PART.call(event_id=event["id"], person_id=change.person_id, method=calendar,
                                              event=change.event, person=person)
    await queue_mail(
        template, to_email=person["email"], to_name=person["name"], locale=person["locale"],
        context={**event_context(event, person["locale"]), "registration_id": change.registration_id,
                 "has_invite": part is not None, **extra},
        key=f"seminar:{change.registration_id}:{change.new}", calendar=part, behind=True,
    )


async def on_event_changed(change: signals.EventChanged) -> None:
    """One 'event changed' mail to every live registration that holds no confirmed place (see module doc)."""
    event = await _event(change.event_id)
    if event["kind"] not in KINDS:
        return
    states = [s for s in LIVE_STATES if not (s == "confirmed" and signals.INVITE_PART.installed)]
    rows = await Registration.select(Registration.id, Registration.person.email.as_alias("email"),
                                     Registration.person.name.as_alias("name"),
                                     Registration.person.locale.as_alias("locale")).where(
        (Registration.event == change.event_id) & Registration.status.is_in(states))
    before = {**event, **change.before}
    for row in rows:
        if row["id"] in change.already_told:
            continue
        await queue_mail(
            "seminar_changed", to_email=row["email"], to_name=row["name"], locale=row["locale"],
            context={**event_context(event, row["locale"]), "fields": sorted(change.fields),
                     "previous": event_context(before, row["locale"])},
            key=f"seminar:{row['id']}:changed:{event['calendar_sequence']}",
        )
