"""People, roles, facilities and the plumbing every area shares (sessions, tokens, outbox, audit).

Multi-column UNIQUE and CHECK constraints are added by raw steps in the migrations
(events.schema), because SQLite cannot ALTER TABLE ... ADD CONSTRAINT.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    Boolean,
    Bytea,
    Date,
    ForeignKey,
    Integer,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.table import Table

ROLES = ("student", "host_family", "facility_staff", "coordinator", "admin")
SELF_SIGNUP_ROLES = ("student", "host_family", "facility_staff")
FACILITY_KINDS = ("nursery", "kindergarten", "certified_childcare", "small_childcare", "school", "other")
WARD_AREAS = ("金沢文庫", "六浦", "能見台", "並木", "釜利谷", "富岡", "金沢八景", "柴町", "野島", "泥亀", "洲崎", "幸浦")


class Person(Table, tablename="person"):
    email = Varchar(length=254, unique=True, index=True)
    name = Varchar(length=200)
    kana = Varchar(length=200, default="")
    phone = Varchar(length=32, default="")  # optional; normalised by events.phones (090-1234-5678)
    locale = Varchar(length=8, default="ja")
    active = Boolean(default=True)
    reminders = Boolean(default=True)
    created_at = Timestamptz()
    erased_at = Timestamptz(null=True, default=None)  # deleted at their request or by retention (events.privacy)


class FormerEmail(Table, tablename="former_email"):
    """An address a person had before a correction (events.privacy): mail sent there is still theirs — in their
    export, scrubbed when they are deleted — until retention ends both (`former_emails`)."""

    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    email = Varchar(length=254, index=True)
    replaced_at = Timestamptz()


class PersonRole(Table, tablename="person_role"):
    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    role = Varchar(length=32)


class StudentProfile(Table, tablename="student_profile"):
    person = ForeignKey(Person, on_delete=OnDelete.cascade, unique=True)
    school_level = Varchar(length=16)  # high_school | university
    school_name = Varchar(length=200, default="")
    grade = Integer(default=1)
    birth_date = Date()
    guardian_email = Varchar(length=254, default="")
    guardian_name = Varchar(length=200, default="")
    guardian_phone = Varchar(length=32, default="")  # optional; normalised by events.phones


class Facility(Table, tablename="facility"):
    name = Varchar(length=200, unique=True)
    kana = Varchar(length=200, default="")  # the reading, for lists in 五十音順
    kind = Varchar(length=32, default="nursery")
    area = Varchar(length=64, default="")


class StaffMembership(Table, tablename="staff_membership"):
    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    facility = ForeignKey(Facility, on_delete=OnDelete.cascade, index=True)
    job_title = Varchar(length=100, default="")


class LoginToken(Table, tablename="login_token"):
    token_hash = Varchar(length=64, unique=True)
    email = Varchar(length=254, index=True)
    created_at = Timestamptz()
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    next_path = Varchar(length=500, default="/")


class WebSession(Table, tablename="web_session"):
    id_hash = Varchar(length=64, unique=True)
    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    csrf_token = Varchar(length=64)
    created_at = Timestamptz()
    last_seen_at = Timestamptz()
    ended_at = Timestamptz(null=True, default=None)


class ApiToken(Table, tablename="api_token"):
    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    label = Varchar(length=100, default="")
    token_hash = Varchar(length=64, unique=True)
    prefix = Varchar(length=16)
    created_at = Timestamptz()
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class RateLimitHit(Table, tablename="rate_limit_hit"):
    bucket = Varchar(length=200, index=True)
    at = Timestamptz(index=True)


class AuditEntry(Table, tablename="audit_entry"):
    at = Timestamptz(index=True)
    actor = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    action = Varchar(length=64, index=True)
    subject_type = Varchar(length=64, default="")
    subject_id = Varchar(length=64, default="")
    detail = JSON(default="{}")
    client = Varchar(length=64, default="")


OUTBOX_STATES = ("queued", "inflight", "awaiting_retry", "sent", "failed", "withdrawn")


class OutboxMessage(Table, tablename="outbox_message"):
    idempotency_key = Varchar(length=200, unique=True)
    kind = Varchar(length=64, index=True)
    recipient = Varchar(length=254)
    subject = Varchar(length=500)
    message = Bytea()  # an events.mime Draft until the worker builds it, then the MIME bytes sent; b"" once erased
    message_id = Varchar(length=255, null=True, default=None)  # frozen when queued, the same on retries; unique (index)
    holds_secret = Boolean(default=False, index=True)  # carries a token link: erased once sent or withdrawn
    status = Varchar(length=16, default="queued", index=True)
    attempts = Integer(default=0)  # with the id, it names one claim (the fencing token of the worker holding it)
    due_at = Timestamptz(index=True)
    claimed_at = Timestamptz(null=True, default=None)
    claimed_by = Varchar(length=64, default="")
    lease_expires_at = Timestamptz(null=True, default=None)  # inflight: renewed while the claimer is sending
    sent_at = Timestamptz(null=True, default=None)
    last_error = Text(default="")
    created_at = Timestamptz()
    group_key = Varchar(length=200, default="", index=True)  # lets a later change withdraw e.g. a reminder


# ---------------------------------------------------------------- personal-data rights (events.privacy)

PRIVACY_REQUEST_KINDS = ("correction", "deletion")
# awaiting_guardian: a minor asked, the guardian confirms; review: a coordinator decides (a legal hold applies,
# or a correction a person may not make alone); done / rejected / kept (deletion refused under a legal hold).
PRIVACY_REQUEST_STATES = ("awaiting_guardian", "review", "done", "rejected", "kept")


class PrivacyRequest(Table, tablename="privacy_request"):
    """A request about one's data (訂正・利用停止/消去): who asked, how, what, and who decided what, when."""

    kind = Varchar(length=16)  # PRIVACY_REQUEST_KINDS
    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)  # whose data
    via = Varchar(length=16, default="self")  # self | guardian | paper
    requested_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)  # the person, or the admin (paper)
    fields = JSON(default="{}")  # correction: {field: new value}
    note = Text(default="")
    status = Varchar(length=24, default="review", index=True)  # PRIVACY_REQUEST_STATES
    hold_reasons = JSON(default="[]")  # the legal holds that sent it to a coordinator
    decided_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    decided_at = Timestamptz(null=True, default=None)
    decision_note = Text(default="")
    created_at = Timestamptz()


class LegalHold(Table, tablename="legal_hold"):
    """Data a coordinator must keep (an incident report, a dispute): deletion waits for a decision, retention
    passes over the person until the hold is lifted."""

    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    reason = Text(default="")
    placed_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    placed_at = Timestamptz()
    lifted_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    lifted_at = Timestamptz(null=True, default=None)


class GuardianAccess(Table, tablename="guardian_access"):
    """A guardian's link to the data of the minors whose profiles name their address (only the digest kept)."""

    token_hash = Varchar(length=64, unique=True)
    guardian_email = Varchar(length=254, index=True)
    created_at = Timestamptz()
    expires_at = Timestamptz(index=True)


class PurgeRun(Table, tablename="purge_run"):
    """One run of the retention purge (events.retention): when, what went, by category."""

    claim = Varchar(length=32, null=True, default=None, unique=True)  # "daily:<Tokyo date>" for the worker's run
    trigger = Varchar(length=16, default="worker")  # worker | cli
    dry_run = Boolean(default=False)
    started_at = Timestamptz()
    finished_at = Timestamptz(null=True, default=None)
    counts = JSON(default="{}")
