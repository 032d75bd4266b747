"""The one place that builds e-mail messages (MIME): a pure core from plain data to RFC 5322 bytes.

No clock, no randomness: Date and Message-ID are given and multipart boundaries are derived from the
Message-ID, so the same inputs always give the same bytes (the outbox stores them frozen).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime

__all__ = ["CalendarPart", "build_message", "make_message_id", "parse_mailbox", "CALENDAR_METHODS"]

CALENDAR_METHODS = frozenset({"REQUEST", "CANCEL", "PUBLISH"})

# SMTP wants CRLF and 7-bit bodies; utf8=False makes non-ASCII headers RFC 2047 encoded-words.
SMTP_7BIT = email_policy.SMTP.clone(cte_type="7bit", utf8=False, max_line_length=78)

# Headers build_message writes itself; callers may not override them through `headers`.
_OWN_HEADERS = frozenset(
    h.lower()
    for h in (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Cc",
        "Bcc",
    )
)
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII except ':'
_TOKEN_OR_DOMAIN = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")


@dataclass(frozen=True)
class CalendarPart:
    """An iCalendar object to carry in the message (iTIP over e-mail, RFC 6047)."""

    method: str  # "REQUEST" | "CANCEL" | "PUBLISH"
    ics: bytes  # a VCALENDAR, CRLF line endings, folded

    def __post_init__(self) -> None:
        if self.method not in CALENDAR_METHODS:
            raise ValueError(f"unknown iTIP method {self.method!r}")
        if not self.ics.startswith(b"BEGIN:VCALENDAR"):
            raise ValueError("ics must be a VCALENDAR")


def make_message_id(domain: str, token: str) -> str:
    """Return "<token@domain>"; the token must already be unique (e.g. the outbox idempotency key)."""
    if not token or not _TOKEN_OR_DOMAIN.match(token) or token.startswith(".") or token.endswith("."):
        raise ValueError(f"invalid Message-ID token {token!r}")
    if not domain or not _TOKEN_OR_DOMAIN.match(domain) or "." not in domain.strip("."):
        raise ValueError(f"invalid Message-ID domain {domain!r}")
    return f"<{token}@{domain}>"


def parse_mailbox(mailbox: str) -> Address:
    """Parse "Display Name <addr>" or a bare address into an Address (display names may be Japanese)."""
    if "\r" in mailbox or "\n" in mailbox:
        raise ValueError("line breaks are not allowed in a mailbox")
    mailbox = mailbox.strip()
    if mailbox.endswith(">") and "<" in mailbox:
        # Split at the last "<" ourselves: display names may hold commas or quotes that parseaddr rejects.
        display_name, _, addr_spec = mailbox[:-1].rpartition("<")
        display_name = display_name.strip()
        if len(display_name) >= 2 and display_name[0] == display_name[-1] == '"':
            display_name = display_name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    else:
        display_name, addr_spec = "", mailbox
    addr_spec = addr_spec.strip()
    if addr_spec.count("@") != 1 or not addr_spec.isascii() or any(c in addr_spec for c in ' <>,;:"()[]\\'):
        raise ValueError(f"invalid e-mail address in {mailbox!r}")
    username, _, domain = addr_spec.rpartition("@")
    if not username or not domain:
        raise ValueError(f"invalid e-mail address in {mailbox!r}")
    return Address(display_name=display_name, username=username, domain=domain)


def _boundary(message_id: str, level: str) -> str:
    # "=_" can occur neither in base64 nor in quoted-printable output, so it cannot collide with a body.
    digest = hashlib.sha256(f"{message_id}\0{level}".encode()).hexdigest()[:32]
    return f"=_{level}_{digest}"


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _text_part(text: str, subtype: str) -> MIMEPart:
    part = MIMEPart(policy=SMTP_7BIT)
    # cte=None: 7bit for short ASCII lines, else the shorter of quoted-printable and base64.
    part.set_content(_normalise_newlines(text), subtype=subtype, charset="utf-8")
    return part


def _calendar_inline_part(calendar: CalendarPart) -> MIMEPart:
    part = MIMEPart(policy=SMTP_7BIT)
    part.set_content(
        calendar.ics,
        maintype="text",
        subtype="calendar",
        cte="7bit" if calendar.ics.isascii() else "base64",
        params={"charset": "UTF-8", "method": calendar.method},
    )
    return part


def _calendar_attachment(calendar: CalendarPart) -> MIMEPart:
    part = MIMEPart(policy=SMTP_7BIT)
    part.set_content(
        calendar.ics,
        maintype="application",
        subtype="ics",
        cte="base64",
        disposition="attachment",
        filename="invite.ics",
        params={"name": "invite.ics"},
    )
    return part


def _multipart(subtype: str, parts: list[MIMEPart], boundary: str, container: MIMEPart) -> MIMEPart:
    container["Content-Type"] = f"multipart/{subtype}"
    container.set_boundary(boundary)
    for part in parts:
        container.attach(part)
    return container


def build_message(
    *,
    sender: str,
    recipient: str,
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
    date: datetime,
    headers: Mapping[str, str] | None = None,
    calendar: CalendarPart | None = None,
) -> bytes:
    """Render one e-mail as bytes ready for SMTP (CRLF, 7-bit clean).

    Structure: text/plain alone; or multipart/alternative(text, html); with a calendar,
    multipart/mixed(multipart/alternative(text, html, text/calendar; method=...), invite.ics).
    Line breaks in `text`/`html` are normalised to the transport's CRLF.
    """
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    if not (message_id.startswith("<") and message_id.endswith(">") and "@" in message_id):
        raise ValueError(f"Message-ID must look like <token@domain>, got {message_id!r}")
    if "\r" in subject or "\n" in subject:
        raise ValueError("line breaks are not allowed in the subject")

    message = EmailMessage(policy=SMTP_7BIT)
    message["From"] = parse_mailbox(sender)
    message["To"] = parse_mailbox(recipient)
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["MIME-Version"] = "1.0"
    for name, value in (headers or {}).items():
        if not _HEADER_NAME.match(name) or name.lower() in _OWN_HEADERS:
            raise ValueError(f"header {name!r} cannot be set through `headers`")
        if "\r" in value or "\n" in value:
            raise ValueError(f"line breaks are not allowed in header {name!r}")
        message[name] = value

    bodies = [_text_part(text, "plain")]
    if html is not None:
        bodies.append(_text_part(html, "html"))

    if calendar is not None:
        bodies.append(_calendar_inline_part(calendar))
        alternative = _multipart(
            "alternative", bodies, _boundary(message_id, "alt"), MIMEPart(policy=SMTP_7BIT)
        )
        _multipart(
            "mixed", [alternative, _calendar_attachment(calendar)], _boundary(message_id, "mix"), message
        )
    elif html is not None:
        _multipart("alternative", bodies, _boundary(message_id, "alt"), message)
    else:
        (plain,) = bodies
        for name, value in plain.items():
            message[name] = value
        message.set_payload(plain.get_payload())

    return message.as_bytes(policy=SMTP_7BIT)
