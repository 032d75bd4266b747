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
    locale = Varchar(length=8, default="ja")
    active = Boolean(default=True)
    reminders = Boolean(default=True)
    created_at = Timestamptz()


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


class Facility(Table, tablename="facility"):
    name = Varchar(length=200, unique=True)
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
    message = Bytea()
    status = Varchar(length=16, default="queued", index=True)
    attempts = Integer(default=0)
    due_at = Timestamptz(index=True)
    claimed_at = Timestamptz(null=True, default=None)
    claimed_by = Varchar(length=64, default="")
    sent_at = Timestamptz(null=True, default=None)
    last_error = Text(default="")
    created_at = Timestamptz()
    group_key = Varchar(length=200, default="", index=True)  # lets a later change withdraw e.g. a reminder
