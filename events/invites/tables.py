"""Tables of the 'invites' area: the per-person invite state (iTIP SEQUENCE), feed tokens, reminder opt-out tokens.

`CalendarInvite` is keyed by (event, person), not by registration: the UID is per event and person
(events.ical.event_uid), so its SEQUENCE must survive a cancel and a new registration — a REQUEST with
a lower SEQUENCE than the CANCEL a calendar already holds would be ignored.
"""

from __future__ import annotations

from piccolo.columns import ForeignKey, Integer, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from events.core.tables import Person
from events.seminars.tables import Event

INVITE_STATES = ("active", "cancelled")


class CalendarInvite(Table, tablename="calendar_invite"):
    event = ForeignKey(Event, on_delete=OnDelete.cascade, index=True)
    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    sequence = Integer(default=0)  # iTIP SEQUENCE; only ever raised
    state = Varchar(length=16, default="active")
    mailed_sequence = Integer(default=-1)  # the SEQUENCE last sent to the person (attached or own mail)
    mailed_method = Varchar(length=16, default="")  # REQUEST | CANCEL, of that last sending
    created_at = Timestamptz()
    updated_at = Timestamptz()


class CalendarFeedToken(Table, tablename="calendar_feed_token"):
    """A secret feed URL. The raw token is HMAC(secret key, nonce): the profile page can show it again,
    while the database alone (hash + nonce) cannot produce it."""

    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    nonce = Varchar(length=64)
    token_hash = Varchar(length=64, unique=True)
    created_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)
    # Cache for conditional GETs (events.ical.feed_fingerprint): the ETag of the body last built for this key.
    fingerprint = Varchar(length=64, default="")
    etag = Varchar(length=64, default="")


class ReminderOptOutToken(Table, tablename="reminder_opt_out_token"):
    """One per reminder mail: the List-Unsubscribe link's secret (only its hash is stored)."""

    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    token_hash = Varchar(length=64, unique=True)
    created_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
