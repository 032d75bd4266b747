"""The one place that builds iCalendar (RFC 5545): invites (iTIP, RFC 5546), per-person feeds, public downloads.

A pure core: plain data in, bytes out, no clock (DTSTAMP is given or is the event's last change).
The `icalendar` package does escaping and folding (by octets, never inside a UTF-8 character);
the Asia/Tokyo VTIMEZONE is written by hand because JST has one fixed offset and no DST.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event, Timezone, TimezoneStandard, vCalAddress, vDuration, vText

__all__ = [
    "CalendarEvent",
    "TOKYO",
    "PRODID",
    "event_uid",
    "build_invite",
    "build_feed",
    "build_publish",
    "feed_etag",
    "feed_fingerprint",
    "etag_matches",
]

TOKYO = ZoneInfo("Asia/Tokyo")
PRODID = "-//Kanazawa Ward Yokohama//lifedesign//JA"
# Bump when the rendering changes, so fingerprints cached with old bodies stop matching.
FEED_FORMAT_VERSION = 1

INVITE_METHODS = frozenset({"REQUEST", "CANCEL"})
EVENT_STATUSES = frozenset({"CONFIRMED", "TENTATIVE", "CANCELLED"})
_UID_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class CalendarEvent:
    """What one VEVENT needs, already in the recipient's language."""

    uid: str
    sequence: int
    summary: str
    description: str
    location: str
    url: str
    starts_at: datetime  # aware; rendered with TZID=Asia/Tokyo
    ends_at: datetime  # aware
    status: str = "CONFIRMED"  # or "CANCELLED" (or "TENTATIVE")
    last_modified: datetime  # aware; DTSTAMP in feeds, so an unchanged feed is byte-identical

    def __post_init__(self) -> None:
        for name in ("starts_at", "ends_at", "last_modified"):
            moment: datetime = getattr(self, name)
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware (no floating times)")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.sequence < 0:
            raise ValueError("sequence must be >= 0")
        if self.status not in EVENT_STATUSES:
            raise ValueError(f"unknown status {self.status!r}")
        if not self.uid or any(c in self.uid for c in "\r\n"):
            raise ValueError("uid must be a non-empty single line")


def event_uid(kind: str, event_id: int, person_id: int | None, domain: str) -> str:
    """THE UID of an event (for one person, or public when person_id is None). Never change this format:
    calendar clients match updates and cancellations to what they already hold by UID."""
    if not _UID_KIND.match(kind):
        raise ValueError(f"invalid kind {kind!r}")
    domain = domain.lower()
    if not _DOMAIN.match(domain):
        raise ValueError(f"invalid domain {domain!r}")
    if event_id < 0 or (person_id is not None and person_id < 0):
        raise ValueError("ids must be >= 0")
    person = "" if person_id is None else f"-p{person_id}"
    return f"lifedesign-{kind}-{event_id}{person}@{domain}"


def _text(value: str) -> vText:
    # iCalendar escapes newlines as \n; a stray CR would otherwise survive as a raw byte.
    return vText(value.replace("\r\n", "\n").replace("\r", "\n"))


def _cn(name: str) -> str:
    # A parameter value cannot hold DQUOTE; RFC 6868 ^' is not understood by Outlook or vobject.
    return " ".join(name.replace('"', "'").split())


def _mailto(email: str, name: str) -> vCalAddress:
    email = email.strip().lower()
    if "@" not in email or any(c in email for c in ' \r\n<>"'):
        raise ValueError(f"invalid e-mail address {email!r}")
    address = vCalAddress(f"mailto:{email}")
    if _cn(name):
        address.params["CN"] = _cn(name)
    return address


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def _tokyo(moment: datetime) -> datetime:
    return moment.astimezone(TOKYO).replace(microsecond=0)


def _tokyo_timezone() -> Timezone:
    timezone = Timezone()
    timezone.add("tzid", "Asia/Tokyo")
    standard = TimezoneStandard()
    standard.add("dtstart", datetime(1970, 1, 1))
    standard.add("tzoffsetfrom", timedelta(hours=9))
    standard.add("tzoffsetto", timedelta(hours=9))
    standard.add("tzname", "JST")
    timezone.add_component(standard)
    return timezone


def _calendar(method: str | None) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method is not None:
        calendar.add("method", method)
    return calendar


def _description(event: CalendarEvent) -> str:
    # The link back is always in the description: many clients do not show URL.
    if not event.url or event.url in event.description:
        return event.description
    return f"{event.description}\n\n{event.url}" if event.description else event.url


def _vevent(event: CalendarEvent, *, dtstamp: datetime, status: str, alarm: bool) -> Event:
    vevent = Event()
    vevent.add("uid", event.uid)
    vevent.add("dtstamp", _utc(dtstamp))
    vevent.add("last-modified", _utc(event.last_modified))
    vevent.add("sequence", event.sequence)
    vevent.add("dtstart", _tokyo(event.starts_at))
    vevent.add("dtend", _tokyo(event.ends_at))
    vevent.add("summary", _text(event.summary))
    if event.location:
        vevent.add("location", _text(event.location))
    description = _description(event)
    if description:
        vevent.add("description", _text(description))
    if event.url:
        vevent.add("url", event.url)
    vevent.add("status", status)
    vevent.add("transp", "OPAQUE")
    if alarm and status != "CANCELLED":
        reminder = Alarm()
        reminder.add("action", "DISPLAY")
        reminder.add("trigger", timedelta(days=-1))
        reminder.add("description", _text(event.summary))
        vevent.add_component(reminder)
    return vevent


def build_invite(
    event: CalendarEvent,
    *,
    method: str,
    organizer_email: str,
    organizer_name: str,
    attendee_email: str,
    attendee_name: str,
    dtstamp: datetime,
    alarm: bool = True,
) -> bytes:
    """One iTIP message for one recipient: METHOD:REQUEST, or METHOD:CANCEL (then STATUS:CANCELLED).

    The caller keeps the UID and stores a SEQUENCE raised on every change; a CANCEL carries a
    SEQUENCE at least as high as the last REQUEST.
    """
    if method not in INVITE_METHODS:
        raise ValueError(f"invite method must be REQUEST or CANCEL, got {method!r}")
    if method == "REQUEST" and event.status == "CANCELLED":
        raise ValueError("a cancelled event is sent with method CANCEL")
    status = "CANCELLED" if method == "CANCEL" else event.status
    calendar = _calendar(method)
    calendar.add_component(_tokyo_timezone())
    vevent = _vevent(event, dtstamp=dtstamp, status=status, alarm=alarm)
    vevent.add("organizer", _mailto(organizer_email, organizer_name))
    attendee = _mailto(attendee_email, attendee_name)
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    attendee.params["PARTSTAT"] = "NEEDS-ACTION"
    attendee.params["RSVP"] = "TRUE"
    vevent.add("attendee", attendee)
    calendar.add_component(vevent)
    return calendar.to_ical()


def build_publish(event: CalendarEvent, *, organizer_email: str, organizer_name: str) -> bytes:
    """A public "add to my calendar" download: METHOD:PUBLISH, no ATTENDEE; DTSTAMP is the last change."""
    calendar = _calendar("PUBLISH")
    calendar.add_component(_tokyo_timezone())
    vevent = _vevent(event, dtstamp=event.last_modified, status=event.status, alarm=True)
    vevent.add("organizer", _mailto(organizer_email, organizer_name))
    calendar.add_component(vevent)
    return calendar.to_ical()


def build_feed(
    events: Sequence[CalendarEvent], *, name: str, refresh: timedelta = timedelta(hours=1)
) -> bytes:
    """A subscribable feed: no METHOD, no ATTENDEE; DTSTAMP = each event's last change and events sorted,
    so the same events always give the same bytes (and the same ETag)."""
    if refresh <= timedelta(0):
        raise ValueError("refresh must be positive")
    calendar = _calendar(None)
    calendar.add("name", _text(name))
    calendar.add("x-wr-calname", _text(name))
    calendar.add("x-wr-timezone", "Asia/Tokyo")
    calendar.add("refresh-interval", vDuration(refresh), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(refresh))
    calendar.add_component(_tokyo_timezone())
    for event in sorted(events, key=lambda e: (_utc(e.starts_at), e.uid)):
        calendar.add_component(_vevent(event, dtstamp=event.last_modified, status=event.status, alarm=False))
    return calendar.to_ical()


def feed_etag(body: bytes) -> str:
    """Strong ETag (quoted) of a feed body: equal bodies, equal tags."""
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def feed_fingerprint(
    *,
    name: str,
    locale: str,
    event_count: int,
    latest_change: datetime | None,
    refresh: timedelta = timedelta(hours=1),
) -> str:
    """A cheap key of everything a feed body depends on, to answer 304 without rendering.

    The shell stores (fingerprint, feed_etag(body)) with the feed token after building a body; on the next
    request one aggregate query (count, max change time over events *and* the person's registrations)
    gives the fingerprint, and if it is unchanged the stored ETag answers If-None-Match.
    """
    latest = "-" if latest_change is None else _utc(latest_change).isoformat()
    key = f"{FEED_FORMAT_VERSION}\0{name}\0{locale}\0{event_count}\0{latest}\0{refresh.total_seconds()}"
    return hashlib.sha256(key.encode()).hexdigest()


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match evaluation (RFC 9110 13.1.2: weak comparison, lists, "*")."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == wanted for candidate in if_none_match.split(","))
