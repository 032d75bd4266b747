"""The one place that turns a mail template into an outbox row.

A mail is `templates/mail/<locale>/<name>.txt`: the first line is `Subject: …`, the rest is the
plain-text body. Every mail ends with the ward's contact block (`templates/mail/<locale>/_contact.txt`, from
`config().contact(locale)`), added here once, so no template repeats it. The HTML part is derived from the same text by `templates/mail/base.html`, so the
two never disagree. Message-ID and Date are frozen here, when the mail is queued: the caller's
transaction stores the rendered parts as a `events.mime.Draft` (addresses and headers checked), and
the outbox worker builds the MIME bytes from it, off the request path.

A mail whose text or headers carry a link to a bearer-token page (`SECRET_PATHS`: login, consent,
survey, unsubscribe, guardian and calendar-feed links) is marked `holds_secret`: the outbox erases its
bytes once it has been sent or withdrawn, so a copy of the database holds no usable link.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from events import outbox, timefmt
from events.config import WardContact, config
from events.db import utcnow
from events.mime import CalendarPart, Draft, make_message_id

_URL = re.compile(r"https?://[^\s<>\"]+")
_ANY_URL = re.compile(r"(?:https?|webcal)://[^/\s<>\"]+(/[^\s<>\"]*)")
# Pages opened by a token in the path: whoever holds such a link acts as its addressee.
SECRET_PATHS = ("/login/", "/consent/", "/visits/consent/", "/api/v1/consent/", "/feedback/",
                "/reminders/unsubscribe/", "/privacy/guardian/", "/calendar/")


def holds_secret(*texts: str) -> bool:
    """True when any of the texts carries a link to a bearer-token page."""
    return any(match.group(1).startswith(SECRET_PATHS) for text in texts for match in _ANY_URL.finditer(text))


@lru_cache(maxsize=4)
def _environment(templates_dir: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # compiled once per process: no stat() of the template file per mail (restart to edit)
    )
    env.filters["jst"] = lambda value, fmt="%Y年%m月%d日 %H:%M": timefmt.short(value, fmt)
    return env


def _paragraph(text: str) -> Markup:
    """One paragraph of a mail's text as HTML: escaped, its links made links, its line breaks <br>."""
    pieces: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        pieces.append(str(escape(text[last:match.start()])))
        url = str(escape(match.group(0)))
        pieces.append(f'<a href="{url}">{url}</a>')
        last = match.end()
    pieces.append(str(escape(text[last:])))
    return Markup("".join(pieces).replace("\n", "<br>\n"))


@lru_cache(maxsize=16)
def _footer(templates_dir: str, locale: str, ward: WardContact) -> str:
    """The contact block at the end of every mail (the same for every mail in one language: rendered once)."""
    return _environment(templates_dir).get_template(f"mail/{locale}/_contact.txt").render(ward=ward)


def render(name: str, locale: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
    """Subject, text and HTML of one mail in one language (falls back to Japanese)."""
    env = _environment(str(config().templates_dir))
    locale = locale if locale in ("ja", "en") else "ja"
    full = {"base_url": config().base_url, "sender_name": config().mail_from_name, "locale": locale, **context}
    try:
        template = env.get_template(f"mail/{locale}/{name}.txt")
    except Exception:
        template = env.get_template(f"mail/ja/{name}.txt")
    rendered = template.render(full)
    first, _, body = rendered.partition("\n")
    if not first.startswith("Subject:"):
        raise ValueError(f"mail template {name} must start with a Subject: line")
    subject = first.removeprefix("Subject:").strip()
    footer = _footer(str(config().templates_dir), locale, config().contact(locale))
    text = body.strip("\n") + "\n\n" + footer.strip("\n") + "\n"
    paragraphs = [_paragraph(p) for p in text.strip().split("\n\n")]
    html = env.get_template("mail/base.html").render(subject=subject, paragraphs=paragraphs, locale=locale)
    return subject, text, html


async def queue_mail(
    name: str,
    *,
    to_email: str,
    to_name: str = "",
    locale: str = "ja",
    context: Mapping[str, Any],
    key: str,
    due_at: datetime | None = None,
    group_key: str = "",
    headers: Mapping[str, str] | None = None,
    calendar: CalendarPart | None = None,
    secret: bool | None = None,
    behind: bool = False,
) -> bool:
    """Render and write one outbox row in the caller's transaction. The key makes it idempotent; with
    `behind`, the row may be written with the transaction's next statement or its commit (outbox.enqueue).

    No MIME is built here (the worker does it); a bad address or header raises ValueError now, in the
    caller's transaction. `secret` overrides the detection of token links (`holds_secret`)."""
    subject, text, html = render(name, locale, {"recipient_name": to_name, **context})
    token = hashlib.sha256(key.encode()).hexdigest()[:32]
    all_headers = {"Auto-Submitted": "auto-generated", **(headers or {})}
    draft = Draft(
        sender=f"{config().mail_from_name} <{config().mail_from}>",
        recipient=f"{to_name} <{to_email}>" if to_name else to_email,
        subject=subject,
        text=text,
        html=html,
        message_id=make_message_id(config().mail_domain, token),
        date=utcnow(),
        headers=all_headers,
        calendar=calendar,
    )
    return await outbox.enqueue(
        key=key, kind=name, recipient=to_email, subject=subject, message=draft.encode(), due_at=due_at,
        group_key=group_key, message_id=draft.message_id,
        holds_secret=holds_secret(text, *all_headers.values()) if secret is None else secret, behind=behind,
    )
