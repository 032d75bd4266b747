"""Events (seminars, home-visit events, exchange sessions), registrations, invitations and guardian consent.

These are the kernel's tables, kept in the `seminars` Piccolo app where they were first migrated. Their
rules live in one module each: `Event.taken`, `Event.waiting` and `Registration.status` are written only by
the place ledger (events.places; CHECKs back 0 <= taken <= capacity and, on PostgreSQL, waiting >= 0);
`GuardianConsent` only by events.consent.
The state tuples below are the one definition every area uses.
"""

from __future__ import annotations

from piccolo.columns import JSON, Boolean, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from events.core.tables import Person

EVENT_KINDS = ("seminar", "home_visit", "staff_exchange")
AUDIENCES = ("high_school", "university", "students", "facility_staff", "anyone")
ALLOCATIONS = ("first_come", "lottery")
EVENT_STATES = ("draft", "published", "cancelled", "completed")
VISIBILITIES = ("public", "private")
# Events whose calendar entry stands (the invites area and feeds list these).
LIVE_EVENT_STATES = ("published", "completed")
REGISTRATION_STATES = ("confirmed", "waitlisted", "offered", "pending_consent", "applied", "cancelled", "attended",
                       "no_show")
# A place that holds a seat (counted by Event.taken); an open waiting-list offer holds its seat until answered.
SEAT_HOLDING_STATES = ("confirmed", "offered", "pending_consent", "attended", "no_show")
# Who may be put ahead in a lottery (events.seminars.allocation), in this order of precedence.
PRIORITY_RULES = ("ward", "first_time", "high_school", "university")
WARD_TIES = ("lives", "studies", "works", "none")
# A registration that is not over (at most one per person and event).
LIVE_STATES = tuple(s for s in REGISTRATION_STATES if s != "cancelled")
# A place whose person has the event in their calendar.
CALENDAR_STATES = ("confirmed", "attended")
CONSENT_DECISIONS = ("pending", "given", "refused", "expired", "withdrawn", "revoked")


class Event(Table, tablename="event"):
    kind = Varchar(length=32, default="seminar", index=True)
    title = Varchar(length=300)
    title_en = Varchar(length=300, default="")
    description = Text(default="")
    description_en = Text(default="")
    venue = Varchar(length=300, default="")
    venue_en = Varchar(length=300, default="")
    access = Text(default="")  # how to get there (最寄り駅, 徒歩, 駐車場): shown on the page and in the mails
    access_en = Text(default="")
    starts_at = Timestamptz(index=True)
    ends_at = Timestamptz()
    capacity = Integer(default=0)
    taken = Integer(default=0)
    waiting = Integer(default=0)  # registrations waitlisted: the rank a newcomer to the line gets, in O(1)
    registration_opens_at = Timestamptz(null=True, default=None)
    registration_closes_at = Timestamptz(null=True, default=None)
    cancel_cutoff_hours = Integer(default=24)
    audience = Varchar(length=32, default="anyone")
    allocation = Varchar(length=16, default="first_come")
    status = Varchar(length=16, default="draft", index=True)
    # private: created by another area (e.g. one confirmed home visit); never in public listings
    visibility = Varchar(length=16, default="public")
    series = Varchar(length=200, default="", index=True)
    calendar_sequence = Integer(default=0)
    lottery_seed = Varchar(length=128, default="")  # secret until the draw
    lottery_commitment = Varchar(length=64, default="")  # sha256(seed), public from the opening of registration
    lottery_drawn_at = Timestamptz(null=True, default=None)
    priority_rules = JSON(default="[]")  # PRIORITY_RULES chosen for this event, in precedence order
    max_companions = Integer(default=0)  # how many others one application may bring (all or none)
    offer_hours = Integer(default=48)  # a waiting-list offer is open this long …
    offer_fallback_hours = Integer(default=24)  # … and within this long of the start, a free seat is confirmed at once
    ask_accommodation = Boolean(default=True)  # the standard question 「配慮が必要なこと」
    one_per_series = Boolean(default=False)  # one live application per person across the events of the series
    attendance_taken = Boolean(default=False)
    created_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class EventQuestion(Table, tablename="event_question"):
    event = ForeignKey(Event, on_delete=OnDelete.cascade, index=True)
    position = Integer(default=0)
    kind = Varchar(length=16, default="text")  # text | single | multi | checkbox
    label = Varchar(length=500)
    label_en = Varchar(length=500, default="")
    options = JSON(default="[]")
    required = Boolean(default=False)


class Registration(Table, tablename="registration"):
    # No single-column indexes here: composite ones lead with each column ((event, status), (person, event),
    # (status, offer_expires_at), migrations), so a registration's writes keep fewer indexes up to date.
    event = ForeignKey(Event, on_delete=OnDelete.cascade)
    person = ForeignKey(Person, on_delete=OnDelete.cascade)
    status = Varchar(length=16)
    answers = JSON(default="{}")
    queue_position = Integer(null=True, default=None)  # waiting-list order (lottery: draw order)
    idempotency_key = Varchar(length=200, null=True, default=None)
    registered_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    calendar_sequence = Integer(default=0)  # iTIP SEQUENCE of this person's invite; only ever raised
    lottery_ticket = Varchar(length=16, default="")  # public, pseudonymous; one per application (group)
    priority = Integer(default=0)  # the lottery priority recorded at application time …
    priority_reason = Varchar(length=300, default="")  # … and why: the rule codes met, or "none" (allocation.priority_label)
    group_key = Varchar(length=40, default="", index=True)  # companions applying together share it
    offer_expires_at = Timestamptz(null=True, default=None)  # an open waiting-list offer's deadline
    accommodation = Text(default="")  # 配慮の希望 (手話通訳, 車いす …): coordinators only, audited
    ward_tie = Varchar(length=16, default="")  # WARD_TIES, declared at application
    created_at = Timestamptz()
    updated_at = Timestamptz()
    confirmed_at = Timestamptz(null=True, default=None)
    cancelled_at = Timestamptz(null=True, default=None)


class EventInvitation(Table, tablename="event_invitation"):
    """Who may see and register for a private event (one row per person and event)."""

    event = ForeignKey(Event, on_delete=OnDelete.cascade, index=True)
    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    invited_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()


class GuardianConsent(Table, tablename="guardian_consent"):
    """One guardian's answer for one subject: a registration or a home-visit request (events.consent)."""

    subject_kind = Varchar(length=32, default="registration")
    subject_id = Integer(default=0)
    student = ForeignKey(Person, on_delete=OnDelete.cascade)
    guardian_email = Varchar(length=254)
    guardian_name = Varchar(length=200, default="")
    token_hash = Varchar(length=64, unique=True)
    text_version = Varchar(length=32)
    purpose = Text(default="")  # what was consented to, as shown to the guardian
    decision = Varchar(length=16, default="pending")  # CONSENT_DECISIONS
    created_at = Timestamptz()
    expires_at = Timestamptz()
    decided_at = Timestamptz(null=True, default=None)
    decided_from = Varchar(length=64, default="")
    ended_by = Varchar(length=16, default="")  # withdrawn: what ended the subject first (consent.ENDED_BY)


class LotteryDraw(Table, tablename="lottery_draw"):
    event = ForeignKey(Event, on_delete=OnDelete.cascade, unique=True)
    seed = Varchar(length=128)
    commitment = Varchar(length=64, default="")
    algorithm = Varchar(length=64)
    capacity = Integer()
    applications = JSON(default="[]")  # v2: [[ticket, priority, size], ...]; v1: [[registration_id, priority], ...]
    winners = JSON(default="[]")
    waitlist = JSON(default="[]")
    drawn_at = Timestamptz()
    drawn_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    # A draw is never re-run; a coordinator may only declare it void, which is audited and shown publicly.
    cancelled_at = Timestamptz(null=True, default=None)
    cancel_reason = Text(default="")


MESSAGE_AUDIENCES = ("all", "seated", "waiting")  # everyone registered / holding a seat / waiting or applied


class EventMessage(Table, tablename="event_message"):
    """A coordinator's message to the people registered for an event (one mail each, through the outbox)."""

    event = ForeignKey(Event, on_delete=OnDelete.cascade, index=True)
    audience = Varchar(length=16, default="all")
    subject = Varchar(length=200)
    body = Text()
    recipients = Integer(default=0)
    sent_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    sent_at = Timestamptz()


class IdempotentRequest(Table, tablename="idempotent_request"):
    key = Varchar(length=200)
    person = ForeignKey(Person, on_delete=OnDelete.cascade)
    scope = Varchar(length=200)
    response = JSON(default="{}")
    status_code = Integer(default=200)
    created_at = Timestamptz()
