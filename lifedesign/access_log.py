"""The access log: one line per request, secrets left out, written off the request path.

A token in a URL is a key (a login link, a guardian's consent, an anonymous survey, a private calendar feed, a
reminder opt-out): the log keeps the route and drops the token, so a log copy joins nothing to anyone. Query
strings are never logged. Under `serve` the request only hands a tuple of its facts to a queue; a writer thread
redacts, formats and writes the line, so the event loop neither builds log records nor waits on a terminal or
a file (building the record on the loop was a tenth of a `/health`).
"""

from __future__ import annotations

import logging
import queue
import re
import sys
import threading
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
            line = (client[0] if client else "-", scope["method"], scope["path"], bool(scope.get("query_string")),
                    scope.get("http_version", "1.1"), status[0], (time.perf_counter() - began) * 1000)
            if _lines is not None:
                _lines.put(line)
            else:
                _write(line)


def _write(line: tuple) -> None:
    client, method, path, query, version, status, ms = line
    log.info('%s "%s %s%s HTTP/%s" %d %.1fms', client, method, redact(path), "?…" if query else "", version, status, ms)


_lines: queue.SimpleQueue | None = None
_handler: logging.Handler | None = None


def _writer(lines: queue.SimpleQueue) -> None:
    while True:
        line = lines.get()
        if line is None:
            return
        if isinstance(line, threading.Event):  # flush(): everything before it is written
            line.set()
            continue
        try:
            _write(line)
        except Exception:  # pragma: no cover - a broken stream must not stop the log
            pass


def configure(stream: Any = None) -> None:
    """`serve`: access lines go through a queue to a writer thread (stderr by default)."""
    global _lines, _handler
    if _lines is not None:
        return
    _handler = logging.StreamHandler(stream or sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s access %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    _lines = queue.SimpleQueue()
    threading.Thread(target=_writer, args=(_lines,), name="access-log", daemon=True).start()


def flush(timeout: float = 5.0) -> bool:
    """Wait until every line queued so far is written (tests; shutdown)."""
    if _lines is None:
        return True
    done = threading.Event()
    _lines.put(done)
    return done.wait(timeout)


def unconfigure() -> None:
    """Back to logging in the request (tests)."""
    global _lines, _handler
    if _lines is None:
        return
    flush()
    _lines.put(None)
    _lines = None
    if _handler is not None:
        log.removeHandler(_handler)
        _handler = None
    log.propagate = True
