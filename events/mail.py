"""The one place that turns a mail template into outbox bytes.

A mail is `templates/mail/<locale>/<name>.txt`: the first line is `Subject: …`, the rest is the
plain-text body. The HTML part is derived from the same text by `templates/mail/base.html`, so the
two never disagree. Message-ID and Date are frozen here, when the mail is queued.
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
from events.config import config
from events.db import utcnow
from events.mime import CalendarPart, build_message, make_message_id

_URL = re.compile(r"https?://[^\s<>\"]+")


@lru_cache(maxsize=4)
def _environment(templates_dir: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["jst"] = lambda value, fmt="%Y年%m月%d日 %H:%M": timefmt.short(value, fmt)
    return env


def _linkify(text: str) -> Markup:
    pieces: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        pieces.append(str(escape(text[last:match.start()])))
        url = match.group(0)
        pieces.append(f'<a href="{escape(url)}">{escape(url)}</a>')
        last = match.end()
    pieces.append(str(escape(text[last:])))
    return Markup("".join(pieces))


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
    text = body.strip("\n") + "\n"
    paragraphs = [_linkify(p).replace("\n", Markup("<br>\n")) for p in text.strip().split("\n\n")]
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
) -> bool:
    """Render and write one outbox row in the caller's transaction. The key makes it idempotent."""
    subject, text, html = render(name, locale, {"recipient_name": to_name, **context})
    token = hashlib.sha256(key.encode()).hexdigest()[:32]
    message = build_message(
        sender=f"{config().mail_from_name} <{config().mail_from}>",
        recipient=f"{to_name} <{to_email}>" if to_name else to_email,
        subject=subject,
        text=text,
        html=html,
        message_id=make_message_id(config().mail_domain, token),
        date=utcnow(),
        headers={"Auto-Submitted": "auto-generated", **(headers or {})},
        calendar=calendar,
    )
    return await outbox.enqueue(
        key=key, kind=name, recipient=to_email, subject=subject, message=message, due_at=due_at, group_key=group_key
    )
