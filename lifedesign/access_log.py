"""The access log: one line per request, secrets left out, written off the request path.

A token in a URL is a key (a login link, a guardian's consent, an anonymous survey, a private calendar feed, a
reminder opt-out): the log keeps the route and drops the token, so a log copy joins nothing to anyone. Query
strings are never logged. Lines are handed to a queue; a thread formats nothing more and writes them, so the
event loop never waits on a terminal or a file.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import re
import sys
import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("lifedesign.access")

# A path segment after one of these is a secret (kept: a calendar feed's ".ics").
_SECRET = re.compile(
    r"^(/login/|/consent/|/api/v1/consent/|/feedback/|/calendar/|/reminders/unsubscribe/|/privacy/guardian/"
    r"|/visits/consent/|/visits/guardian/)[^/]+?(\.ics)?(?=/|$)")
REDACTED = "[redacted]"


def redact(path: str) -> str:
    """The path as the log may show it."""
    return _SECRET.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2) or ''}", path, count=1)


class AccessLog:
    """Wraps the whole ASGI app (unknown routes and errors are logged too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            log.info('%s "%s %s%s HTTP/%s" %d %.1fms', client[0] if client else "-", scope["method"],
                     redact(scope["path"]), "?…" if scope.get("query_string") else "", scope.get("http_version", "1.1"),
                     status[0], (time.perf_counter() - began) * 1000)


_listener: logging.handlers.QueueListener | None = None


def configure(stream: Any = None) -> None:
    """`serve`: access lines go through a queue to a writer thread (stderr by default)."""
    global _listener
    if _listener is not None:
        return
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s access %(message)s"))
    _listener = logging.handlers.QueueListener(lines, handler)
    _listener.start()
    log.addHandler(logging.handlers.QueueHandler(lines))  # type: ignore[arg-type]
    log.setLevel(logging.INFO)
    log.propagate = False
