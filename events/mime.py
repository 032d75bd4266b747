"""The one place that builds e-mail messages (MIME): a pure core from plain data to RFC 5322 bytes.

No clock, no randomness: Date and Message-ID are given and multipart boundaries are derived from the
Message-ID, so the same inputs always give the same bytes (the outbox stores them frozen).

A `Draft` is a message before MIME: the rendered parts, headers, Message-ID and Date, checked when it is
made (a bad address or header is refused in the caller's transaction) and kept as a small JSON document
(`encode`/`decode`). The outbox stores drafts; its worker builds the bytes once, off the request path.

The text part (and a non-ASCII calendar part) is 8bit UTF-8, so a `.eml` file reads as text and links are
never split; `to_7bit` re-encodes them as quoted-printable/base64 for a server without 8BITMIME.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, quoprimime
from email import policy as email_policy
from email.header import Header
from email.headerregistry import Address
from email.utils import format_datetime, formataddr

__all__ = ["CalendarPart", "Draft", "build_message", "is_draft", "make_message_id", "parse_mailbox", "to_7bit",
           "wire_bytes", "CALENDAR_METHODS"]

CALENDAR_METHODS = frozenset({"REQUEST", "CANCEL", "PUBLISH"})

# CRLF; utf8=False makes non-ASCII headers RFC 2047 encoded-words. Bodies may be 8bit (sent with
# BODY=8BITMIME); SMTP_7BIT is the policy for servers without it.
SMTP_8BIT = email_policy.SMTP.clone(cte_type="8bit", utf8=False, max_line_length=78)
SMTP_7BIT = email_policy.SMTP.clone(cte_type="7bit", utf8=False, max_line_length=78)
MAX_8BIT_LINE = 998  # octets without CRLF (RFC 5322 2.1.1); a longer line is quoted-printable instead
DRAFT_MAGIC = b"lifedesign-draft/1\n"

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
    # "=_" can occur neither in base64 nor in quoted-printable output, and an 8bit body holding it is sent
    # quoted-printable instead (`_fits_8bit`), so a boundary cannot collide with a body.
    digest = hashlib.sha256(f"{message_id}\0{level}".encode()).hexdigest()[:32]
    return f"=_{level}_{digest}"


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _fits_8bit(data: bytes) -> bool:
    return b"=_" not in data and max(map(len, data.splitlines()), default=0) <= MAX_8BIT_LINE


CRLF = "\r\n"


def _crlf_lines(data: bytes) -> bytes:
    """Every line break as CRLF, and a final one."""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _quoted_printable(data: bytes) -> bytes:
    body = quoprimime.body_encode(data.replace(b"\r\n", b"\n").decode("latin-1"), 76, eol="\n")
    return _crlf_lines(body.encode("ascii"))


def _base64(data: bytes) -> bytes:
    return _crlf_lines(base64.encodebytes(data))


def _part(content_type: str, cte: str, body: bytes, *extra: str) -> bytes:
    head = [f"Content-Type: {content_type}", f"Content-Transfer-Encoding: {cte}", *extra]
    return (CRLF.join(head) + CRLF + CRLF).encode("ascii") + body


def _text_part(text: str, subtype: str) -> bytes:
    data = _normalise_newlines(text).encode("utf-8")
    if subtype == "plain" and _fits_8bit(data):
        # What a reader opens: UTF-8 as it is (7bit when ASCII), so links stay whole and greppable.
        return _part(f'text/{subtype}; charset="utf-8"', "7bit" if data.isascii() else "8bit", _crlf_lines(data))
    return _part(f'text/{subtype}; charset="utf-8"', "quoted-printable", _quoted_printable(data))


def _calendar_inline_part(calendar: CalendarPart) -> bytes:
    content_type = f'text/calendar; charset="UTF-8"; method="{calendar.method}"'
    if _fits_8bit(calendar.ics):
        return _part(content_type, "7bit" if calendar.ics.isascii() else "8bit", _crlf_lines(calendar.ics))
    return _part(content_type, "base64", _base64(calendar.ics))


def _calendar_attachment(calendar: CalendarPart) -> bytes:
    return _part('application/ics; name="invite.ics"', "base64", _base64(calendar.ics),
                 'Content-Disposition: attachment; filename="invite.ics"')


def _multipart(subtype: str, parts: list[bytes], boundary: str) -> bytes:
    """A multipart entity: its Content-Type header, a blank line, the parts between boundary lines."""
    delimiter = f"--{boundary}".encode("ascii")
    body = delimiter + b"\r\n" + (b"\r\n" + delimiter + b"\r\n").join(parts) + b"\r\n" + delimiter + b"--\r\n"
    return f'Content-Type: multipart/{subtype};{CRLF} boundary="{boundary}"{CRLF}{CRLF}'.encode("ascii") + body


def _fold(name: str, value: str) -> str:
    """`Name: value`, folded at spaces before 78 characters where it can be (a longer word keeps its line)."""
    lines = [f"{name}:"]
    for index, word in enumerate(value.split(" ")):
        if index and len(lines[-1]) + 1 + len(word) > 78:
            lines.append("")
        lines[-1] += " " + word
    return CRLF.join(lines)


def _plain(value: str) -> bool:
    return value.isascii() and "=?" not in value  # else it would read as an encoded-word


def _words(name: str, value: str) -> str:
    """Non-ASCII text as RFC 2047 encoded-words (each under 76 characters), folded between them."""
    return Header(value, "utf-8", maxlinelen=78, header_name=name).encode(linesep=CRLF)


def _header(name: str, value: str) -> str:
    return _fold(name, value) if _plain(value) else f"{name}: {_words(name, value)}"


def _mailbox(name: str, address: Address) -> str:
    if not address.display_name:
        return f"{name}: {address.addr_spec}"
    if _plain(address.display_name):
        return _fold(name, formataddr((address.display_name, address.addr_spec)))
    words, addr = _words(name, address.display_name), f"<{address.addr_spec}>"
    last = words.rpartition(CRLF)[2]
    return f"{name}: {words}{' ' if len(last) + len(addr) < 78 else CRLF + ' '}{addr}"


def _check_envelope(
    sender: str, recipient: str, subject: str, message_id: str, date: datetime, headers: Mapping[str, str] | None
) -> tuple[Address, Address]:
    """Everything that can make a message unbuildable, checked without building it (cheap)."""
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    if not (message_id.startswith("<") and message_id.endswith(">") and "@" in message_id):
        raise ValueError(f"Message-ID must look like <token@domain>, got {message_id!r}")
    if "\r" in subject or "\n" in subject:
        raise ValueError("line breaks are not allowed in the subject")
    for name, value in (headers or {}).items():
        if not _HEADER_NAME.match(name) or name.lower() in _OWN_HEADERS:
            raise ValueError(f"header {name!r} cannot be set through `headers`")
        if "\r" in value or "\n" in value:
            raise ValueError(f"line breaks are not allowed in header {name!r}")
    return parse_mailbox(sender), parse_mailbox(recipient)


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
    """Render one e-mail as bytes ready for SMTP (CRLF, lines of at most 998 octets, headers 7-bit;
    the text part 8bit UTF-8 unless it is ASCII or has a longer line).

    Structure: text/plain alone; or multipart/alternative(text, html); with a calendar,
    multipart/mixed(multipart/alternative(text, html, text/calendar; method=...), invite.ics).
    Line breaks in `text`/`html` are normalised to the transport's CRLF.
    """
    from_address, to_address = _check_envelope(sender, recipient, subject, message_id, date, headers)
    head = [_mailbox("From", from_address), _mailbox("To", to_address), _header("Subject", subject),
            f"Date: {format_datetime(date)}", f"Message-ID: {message_id}", "MIME-Version: 1.0"]
    head.extend(_header(name, value) for name, value in (headers or {}).items())
    top = (CRLF.join(head) + CRLF).encode("ascii")

    plain = _text_part(text, "plain")
    if html is None and calendar is None:  # a single text/plain message
        return top + plain
    bodies = [plain] if html is None else [plain, _text_part(html, "html")]
    if calendar is None:
        return top + _multipart("alternative", bodies, _boundary(message_id, "alt"))
    alternative = _multipart("alternative", [*bodies, _calendar_inline_part(calendar)], _boundary(message_id, "alt"))
    return top + _multipart("mixed", [alternative, _calendar_attachment(calendar)], _boundary(message_id, "mix"))


@dataclass(frozen=True)
class Draft:
    """One message before MIME: what `build_message` takes, checked when made, storable as JSON."""

    sender: str
    recipient: str
    subject: str
    text: str
    html: str | None
    message_id: str
    date: datetime
    headers: Mapping[str, str] = field(default_factory=dict)
    calendar: CalendarPart | None = None

    def __post_init__(self) -> None:
        _check_envelope(self.sender, self.recipient, self.subject, self.message_id, self.date, self.headers)

    def build(self) -> bytes:
        return build_message(
            sender=self.sender, recipient=self.recipient, subject=self.subject, text=self.text, html=self.html,
            message_id=self.message_id, date=self.date, headers=self.headers, calendar=self.calendar,
        )

    def encode(self) -> bytes:
        document = {
            "from": self.sender, "to": self.recipient, "subject": self.subject, "text": self.text, "html": self.html,
            "message_id": self.message_id, "date": self.date.isoformat(), "headers": dict(self.headers),
            "calendar": None if self.calendar is None else {
                "method": self.calendar.method, "ics": base64.b64encode(self.calendar.ics).decode("ascii")},
        }
        return DRAFT_MAGIC + json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, stored: bytes) -> Draft:
        if not is_draft(stored):
            raise ValueError("not a draft")
        document = json.loads(stored[len(DRAFT_MAGIC):])
        calendar = document["calendar"]
        return cls(
            sender=document["from"], recipient=document["to"], subject=document["subject"], text=document["text"],
            html=document["html"], message_id=document["message_id"], date=datetime.fromisoformat(document["date"]),
            headers=document["headers"],
            calendar=None if calendar is None else CalendarPart(calendar["method"], base64.b64decode(calendar["ics"])),
        )


def is_draft(stored: bytes) -> bool:
    return stored.startswith(DRAFT_MAGIC)


def wire_bytes(stored: bytes) -> bytes:
    """The bytes to send for what an outbox row stores: a draft is built, built bytes are returned as they are."""
    return Draft.decode(stored).build() if is_draft(stored) else stored


def to_7bit(raw: bytes) -> bytes:
    """The same message for a server without 8BITMIME: 8bit text parts as quoted-printable, an 8bit calendar
    part as base64; everything else (headers, boundaries, other parts) unchanged in meaning. Deterministic."""
    if raw.isascii():
        return raw
    message = message_from_bytes(raw, policy=SMTP_8BIT)
    for part in message.walk():
        if part.is_multipart() or part.get("Content-Transfer-Encoding", "").lower() != "8bit":
            continue
        params = {k: v for k, v in part.get_params()[1:] if k.lower() != "charset"}
        if part.get_content_type() == "text/calendar":
            part.set_content(part.get_payload(decode=True), maintype="text", subtype="calendar", cte="base64",
                             params={"charset": "UTF-8", **params})
        else:
            part.set_content(part.get_content(), subtype=part.get_content_subtype(), charset="utf-8",
                             cte="quoted-printable", params=params)
    return message.as_bytes(policy=SMTP_7BIT)
