"""The one place that builds iCalendar (RFC 5545): invites (iTIP, RFC 5546), per-person feeds, public downloads.

A pure core: plain data in, bytes out, no clock (DTSTAMP is given or is the event's last change).
Content lines are written by hand (escaping, folding at 75 octets never inside a UTF-8 character):
several times faster than `icalendar` serialising the same events (bench/calendar.py), and the tests parse every
output back with icalendar, vobject and ical.js. JST has one fixed offset and no DST, so its VTIMEZONE is a constant.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from events.timefmt import TOKYO

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


def _escape_text(value: str) -> str:
    """TEXT escaping (RFC 5545 3.3.11); CR and CRLF become the escaped newline too."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> bytes:
    """Fold one content line at 75 octets, never inside a UTF-8 character or a backslash escape."""
    raw = line.encode("utf-8")
    if len(raw) <= 75:
        return raw + b"\r\n"
    pieces = []
    start, limit = 0, 75  # continuation lines start with a space, so they carry 74 octets
    while len(raw) - start > limit:
        cut = start + limit
        while raw[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte: back off to the character start
            cut -= 1
        backslashes = 0
        while raw[cut - 1 - backslashes] == 0x5C and cut - 1 - backslashes > start:
            backslashes += 1
        if backslashes % 2:  # keep "\," "\;" "\n" "\\" on one line for lenient unfolders
            cut -= 1
        pieces.append(raw[start:cut])
        start, limit = cut, 74
    pieces.append(raw[start:])
    return b"\r\n ".join(pieces) + b"\r\n"


def _cn(name: str) -> str:
    # A parameter value cannot hold DQUOTE or controls; RFC 6868 ^' is not understood by Outlook or vobject.
    cleaned = " ".join("".join(c for c in name if c.isprintable()).replace('"', "'").split())
    return f';CN="{cleaned}"' if cleaned else ""


def _mailto(email: str) -> str:
    email = email.strip().lower()
    if email.count("@") != 1 or not email.isascii() or any(c in email for c in ' \t\r\n<>",;:\\'):
        raise ValueError(f"invalid e-mail address {email!r}")
    return f"mailto:{email}"


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _tokyo(moment: datetime) -> str:
    return moment.astimezone(TOKYO).strftime("%Y%m%dT%H%M%S")


def _duration(span: timedelta) -> str:
    """DURATION value (RFC 5545 3.3.6) of a positive or negative span, e.g. PT1H, -P1D."""
    sign = "-" if span < timedelta(0) else ""
    seconds = int(abs(span).total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return f"{sign}P{f'{days}D' if days else ''}{f'T{time}' if time else ''}" if days or time else "PT0S"


_TOKYO_VTIMEZONE = (
    "BEGIN:VTIMEZONE",
    "TZID:Asia/Tokyo",
    "BEGIN:STANDARD",
    "DTSTART:19700101T000000",
    "TZOFFSETFROM:+0900",
    "TZOFFSETTO:+0900",
    "TZNAME:JST",
    "END:STANDARD",
    "END:VTIMEZONE",
)


def _calendar_head(method: str | None) -> list[str]:
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN"]
    if method is not None:
        head.append(f"METHOD:{method}")
    return head


def _serialise(lines: list[str]) -> bytes:
    return b"".join(_fold(line) for line in lines)


def _description(event: CalendarEvent) -> str:
    # The link back is always in the description: many clients do not show URL.
    if not event.url or event.url in event.description:
        return event.description
    return f"{event.description}\n\n{event.url}" if event.description else event.url


def _vevent(
    event: CalendarEvent, *, dtstamp: datetime, status: str, alarm: bool, people: Sequence[str] = ()
) -> list[str]:
    if any(c in event.url for c in "\r\n\t "):
        raise ValueError("url must not contain whitespace")
    lines = [
        "BEGIN:VEVENT",
        f"UID:{_escape_text(event.uid)}",
        f"DTSTAMP:{_utc(dtstamp)}",
        f"LAST-MODIFIED:{_utc(event.last_modified)}",
        f"SEQUENCE:{event.sequence}",
        f"DTSTART;TZID=Asia/Tokyo:{_tokyo(event.starts_at)}",
        f"DTEND;TZID=Asia/Tokyo:{_tokyo(event.ends_at)}",
        f"SUMMARY:{_escape_text(event.summary)}",
    ]
    if event.location:
        lines.append(f"LOCATION:{_escape_text(event.location)}")
    description = _description(event)
    if description:
        lines.append(f"DESCRIPTION:{_escape_text(description)}")
    if event.url:
        lines.append(f"URL:{event.url}")
    lines += [f"STATUS:{status}", "TRANSP:OPAQUE", *people]
    if alarm and status != "CANCELLED":
        lines += [
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "TRIGGER:-P1D",
            f"DESCRIPTION:{_escape_text(event.summary)}",
            "END:VALARM",
        ]
    lines.append("END:VEVENT")
    return lines


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
    people = [
        f"ORGANIZER{_cn(organizer_name)}:{_mailto(organizer_email)}",
        f"ATTENDEE{_cn(attendee_name)};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:{_mailto(attendee_email)}",
    ]
    vevent = _vevent(event, dtstamp=dtstamp, status=status, alarm=alarm, people=people)
    return _serialise([*_calendar_head(method), *_TOKYO_VTIMEZONE, *vevent, "END:VCALENDAR"])


def build_publish(event: CalendarEvent, *, organizer_email: str, organizer_name: str) -> bytes:
    """A public "add to my calendar" download: METHOD:PUBLISH, no ATTENDEE; DTSTAMP is the last change."""
    people = [f"ORGANIZER{_cn(organizer_name)}:{_mailto(organizer_email)}"]
    vevent = _vevent(event, dtstamp=event.last_modified, status=event.status, alarm=True, people=people)
    return _serialise([*_calendar_head("PUBLISH"), *_TOKYO_VTIMEZONE, *vevent, "END:VCALENDAR"])


def build_feed(
    events: Sequence[CalendarEvent], *, name: str, refresh: timedelta = timedelta(hours=1)
) -> bytes:
    """A subscribable feed: no METHOD, no ATTENDEE; DTSTAMP = each event's last change and events sorted,
    so the same events always give the same bytes (and the same ETag)."""
    if refresh <= timedelta(0):
        raise ValueError("refresh must be positive")
    lines = [
        *_calendar_head(None),
        f"NAME:{_escape_text(name)}",
        f"X-WR-CALNAME:{_escape_text(name)}",
        "X-WR-TIMEZONE:Asia/Tokyo",
        f"REFRESH-INTERVAL;VALUE=DURATION:{_duration(refresh)}",
        f"X-PUBLISHED-TTL:{_duration(refresh)}",
        *_TOKYO_VTIMEZONE,
    ]
    for event in sorted(events, key=lambda e: (e.starts_at.astimezone(UTC), e.uid)):
        lines += _vevent(event, dtstamp=event.last_modified, status=event.status, alarm=False)
    lines.append("END:VCALENDAR")
    return _serialise(lines)


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
    # Full precision: a change within the same second as the last build must still change the key.
    latest = "-" if latest_change is None else latest_change.astimezone(UTC).isoformat()
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
