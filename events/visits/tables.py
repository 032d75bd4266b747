"""Home visits: host households (address apart), rounds, slots, requests, guardian consent, proposals, matches.

The home address lives in `HouseholdAddress`, read only through events.visits.households.read_address,
which checks who may see it and writes the audit log. Multi-column UNIQUE and CHECK constraints are
added by the raw migration of this app (events.schema).
"""

from __future__ import annotations

from piccolo.columns import JSON, Boolean, Date, Float, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from events.core.tables import Person
from events.seminars.tables import Event, Registration

# Household situation tags, with the Japanese label shown everywhere (English in visits.po).
HOUSEHOLD_TAGS = {
    "dual_income": "共働き",
    "single_parent": "ひとり親",
    "infant": "乳児がいる",
    "twins": "双子",
    "grandparents": "祖父母と同居",
    "many_children": "子どもが3人以上",
    "parental_leave": "育児休業中",
    "remote_work": "在宅勤務",
    "pets": "ペットがいる",
    "smoker": "喫煙者がいる",
}
LANGUAGES = {"ja": "日本語", "en": "英語", "zh": "中国語", "ko": "韓国語", "vi": "ベトナム語", "tl": "タガログ語",
             "pt": "ポルトガル語", "es": "スペイン語", "ne": "ネパール語"}
ROUND_STATES = ("draft", "open", "closed", "completed")
SLOT_STATES = ("offered", "withdrawn")
REQUEST_STATES = ("active", "withdrawn")
PROPOSAL_STATES = ("draft", "confirmed", "superseded")
# proposed: in a draft proposal; confirmed_by_coordinator: offered to both sides; accepted: both said yes;
# declined: one side said no; cancelled: dropped by a later confirmed proposal; superseded: a draft replaced;
# on_hold: a confirmed visit the safeguarding invariant stopped (events.safeguarding) — it waits for a re-match.
MATCH_STATES = ("proposed", "confirmed_by_coordinator", "accepted", "declined", "cancelled", "superseded", "on_hold")
LIVE_MATCH_STATES = ("confirmed_by_coordinator", "accepted")
RESPONSES = ("pending", "accepted", "declined")
RULE_KINDS = ("pin", "forbid")
CONSENT_SUBJECT = "visit_request"  # the kind of a visit request's guardian consent (events.consent)


class Household(Table, tablename="visit_household"):
    person = ForeignKey(Person, on_delete=OnDelete.cascade, unique=True)
    display_name = Varchar(length=100, default="")  # e.g. 山田家, shown to matched students
    district = Varchar(length=64, default="", index=True)
    children_ages = JSON(default="[]")
    tags = JSON(default="[]")
    pets = Varchar(length=300, default="")
    allergy_notes = Text(default="")
    languages = JSON(default='["ja"]')
    introduction = Text(default="")
    vetted_on = Date(null=True, default=None)  # the coordinator's interview
    vetted_until = Date(null=True, default=None)
    vetted_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class HouseholdAddress(Table, tablename="visit_household_address"):
    household = ForeignKey(Household, on_delete=OnDelete.cascade, unique=True)
    postal_code = Varchar(length=16, default="")
    address = Text(default="")
    directions = Text(default="")  # nearest station, how to find the door
    phone = Varchar(length=32, default="")
    updated_at = Timestamptz()


class VisitRound(Table, tablename="visit_round"):
    name = Varchar(length=200)
    description = Text(default="")
    requests_open_at = Timestamptz()
    requests_close_at = Timestamptz()
    status = Varchar(length=16, default="draft", index=True)
    seed = Integer(default=0)  # recorded tie-break seed; a run with the same inputs gives the same proposal
    created_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()


class VisitSlot(Table, tablename="visit_slot"):
    round = ForeignKey(VisitRound, on_delete=OnDelete.cascade, index=True)
    household = ForeignKey(Household, on_delete=OnDelete.cascade, index=True)
    starts_at = Timestamptz()
    ends_at = Timestamptz()
    capacity = Integer(default=2)
    status = Varchar(length=16, default="offered")
    # the private home_visit Event created once a visit in this slot is confirmed by both sides
    event = ForeignKey(Event, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()


class VisitRequest(Table, tablename="visit_request"):
    round = ForeignKey(VisitRound, on_delete=OnDelete.cascade, index=True)
    student = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    windows = JSON(default="[]")  # [[start ISO, end ISO], ...] in UTC
    any_time = Boolean(default=False)  # "any offered slot": the matching reads every slot of the round as a window
    districts = JSON(default="[]")
    wanted_tags = JSON(default="[]")
    avoided_tags = JSON(default="[]")
    note = Text(default="")
    is_minor = Boolean(default=False)  # under 18 on the first day they can visit
    status = Varchar(length=16, default="active")
    created_at = Timestamptz()
    updated_at = Timestamptz()


class VisitPairRule(Table, tablename="visit_pair_rule"):
    round = ForeignKey(VisitRound, on_delete=OnDelete.cascade, index=True)
    student = ForeignKey(Person, on_delete=OnDelete.cascade)
    household = ForeignKey(Household, on_delete=OnDelete.cascade)
    kind = Varchar(length=8)  # pin | forbid
    created_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()


class VisitProposal(Table, tablename="visit_proposal"):
    round = ForeignKey(VisitRound, on_delete=OnDelete.cascade, index=True)
    status = Varchar(length=16, default="draft")
    seed = Integer(default=0)
    method = Varchar(length=64, default="")
    optimal = Boolean(default=False)
    gap = Float(default=0.0)
    matched_count = Integer(default=0)
    request_count = Integer(default=0)
    preference_score = Integer(default=0)
    priority_score = Integer(default=0)
    seconds = Float(default=0.0)
    unmatched = JSON(default="{}")  # {student_id: {"reason": code, "details": {...}}}
    rules = JSON(default="{}")  # {"pinned": [[student, household]...], "forbidden": [...]} as used
    input_digest = Varchar(length=64, default="")
    created_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()
    confirmed_at = Timestamptz(null=True, default=None)


class VisitMatch(Table, tablename="visit_match"):
    proposal = ForeignKey(VisitProposal, on_delete=OnDelete.cascade, index=True)
    round = ForeignKey(VisitRound, on_delete=OnDelete.cascade, index=True)
    slot = ForeignKey(VisitSlot, on_delete=OnDelete.cascade, index=True)
    request = ForeignKey(VisitRequest, on_delete=OnDelete.cascade)
    student = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    household = ForeignKey(Household, on_delete=OnDelete.cascade, index=True)
    status = Varchar(length=32, default="proposed", index=True)
    preference_points = Integer(default=0)
    student_response = Varchar(length=16, default="pending")
    family_response = Varchar(length=16, default="pending")
    registration = ForeignKey(Registration, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()
    offered_at = Timestamptz(null=True, default=None)
    responded_at = Timestamptz(null=True, default=None)


class VisitGuardianLink(Table, tablename="visit_guardian_link"):
    """A guardian's link to the visit-status page of a minor's request (no account): only the digest is kept.

    Each mail to the guardian carries a new link; a link works while it has not expired and the guardian it was
    made for is still the one whose consent stands (events.visits.guardians)."""

    request = ForeignKey(VisitRequest, on_delete=OnDelete.cascade, index=True)
    token_hash = Varchar(length=64, unique=True)
    guardian_email = Varchar(length=254, default="")
    created_at = Timestamptz()
    expires_at = Timestamptz(index=True)
