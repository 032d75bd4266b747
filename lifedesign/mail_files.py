"""Reading back the mail the file transport wrote (`<data dir>/mail/<outbox id>.eml`), for `lifedesign mail`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

from events import timefmt

_LINK = re.compile(r"https?://[!-~]+")  # a link ends at the first space or non-ASCII character (「」、。)


@dataclass(frozen=True)
class WrittenMail:
    path: Path
    when: str  # Asia/Tokyo
    to: str
    subject: str
    links: tuple[str, ...]


def _outbox_id(path: Path) -> int:
    return int(path.stem) if path.stem.isdigit() else -1


def read(path: Path) -> WrittenMail:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    try:
        when = timefmt.short(parsedate_to_datetime(str(message["Date"])))
    except (TypeError, ValueError):
        when = "?"
    links = tuple(dict.fromkeys(link.rstrip(".,;:)>]'\"") for link in _LINK.findall(text)))
    return WrittenMail(path=path, when=when, to=", ".join(a for _, a in getaddresses([str(message["To"] or "")])),
                       subject=str(message["Subject"] or ""), links=links)


def newest(directory: Path, *, last: int = 5, to: str | None = None) -> list[WrittenMail]:
    """The `last` newest mails (by outbox id: the order they were queued), optionally only those to `to`."""
    wanted = (to or "").strip().lower()
    found: list[WrittenMail] = []
    files = sorted(directory.glob("*.eml"), key=lambda p: (_outbox_id(p), p.name), reverse=True) \
        if directory.is_dir() else []
    for path in files:
        try:
            mail = read(path)
        except OSError:  # purged while we read
            continue
        if wanted and wanted not in {a.strip().lower() for a in mail.to.split(",")}:
            continue
        found.append(mail)
        if len(found) >= last:
            break
    return found
