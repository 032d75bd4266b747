"""Exchange sessions (保育力向上 交流会): a session per staff_exchange event, its table plan and presence.

A session's plan is the set of TableSeat rows of its current `plan_version`; re-planning rewrites
the seats of the rounds not yet held and raises the version. Uniqueness of a person per round and
of a presence row per person is added by this app's constraint migration (events.schema).
"""

from __future__ import annotations

from piccolo.columns import JSON, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from events.core.tables import Person
from events.seminars.tables import Event

PRESENCE_STATES = ("arrived", "late", "absent")


class ExchangeSession(Table, tablename="exchange_session"):
    event = ForeignKey(Event, on_delete=OnDelete.cascade, unique=True)
    rounds = Integer(default=3)
    table_size = Integer(null=True, default=None)  # exactly one of table_size / tables is set
    tables = Integer(null=True, default=None)
    round_minutes = Integer(default=20)
    themes = JSON(default="[]")  # one theme per round (Japanese), "" for none
    themes_en = JSON(default="[]")
    current_round = Integer(default=0)  # 0: not started; rounds 1..current_round are held (fixed)
    plan_version = Integer(default=0)  # 0: never planned
    seed = Integer(null=True, default=None)
    plan_method = Varchar(length=100, default="")
    plan_bound = Integer(default=0)
    plan_clash_free = Integer(default=0)
    plan_repeats = Integer(default=0)
    plan_same_facility = Integer(default=0)
    plan_prior_pairs = Integer(default=0)  # planned pairs who had met in earlier sessions
    plan_steps = JSON(default="[]")  # solver search steps, to replay the plan exactly
    plan_fixed_rounds = Integer(default=0)  # rounds kept verbatim by the last (re-)plan
    plan_seconds = Varchar(length=16, default="")
    planned_at = Timestamptz(null=True, default=None)
    note = Text(default="")
    created_at = Timestamptz()
    updated_at = Timestamptz()


class TableSeat(Table, tablename="table_seat"):
    session = ForeignKey(ExchangeSession, on_delete=OnDelete.cascade, index=True)
    round = Integer()  # 1-based
    table_no = Integer()  # 1-based
    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    facility_id = Integer(null=True, default=None)  # facility at planning time (for the met-matrix by facility)


class ExchangePresence(Table, tablename="exchange_presence"):
    session = ForeignKey(ExchangeSession, on_delete=OnDelete.cascade, index=True)
    person = ForeignKey(Person, on_delete=OnDelete.cascade)
    status = Varchar(length=16)  # arrived | late | absent
    updated_at = Timestamptz()
