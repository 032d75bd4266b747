"""The access log: one line per request, secrets left out, written off the request path.

A token in a URL is a key (a login link, a guardian's consent, an anonymous survey, a private calendar feed, a
reminder opt-out): the log keeps the route and drops the token, so a log copy joins nothing to anyone. Query
strings are never logged. Under `serve` the request only hands a tuple of its facts to a queue; a writer thread
wakes every 50 ms and redacts, formats and writes what came meanwhile in one write, so the event loop neither
builds log records nor waits on a terminal or a file, and is not woken for the log (a record per line through
`logging`, even on that thread, held the GIL for about a fifth of a `/health`).
"""

from __future__ import annotations

import atexit
import contextlib
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
                _lines.put((*line, time.time()))  # the writer stamps it with the time it ended
            else:
                _write(line)


def _message(line: tuple) -> str:
    client, method, path, query, version, status, ms = line
    return f'{client} "{method} {redact(path)}{"?…" if query else ""} HTTP/{version}" {status} {ms:.1f}ms'


def _write(line: tuple) -> None:
    log.info("%s", _message(line))


_lines: queue.SimpleQueue | None = None


class _Stamp:
    """logging's default asctime ("2026-12-03 11:56:18,123"), its strftime done once a second."""

    def __init__(self) -> None:
        self.second, self.text = -1, ""

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self.second:
            self.second, self.text = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self.text},{int((now - second) * 1000):03d}"


WRITE_EVERY_S = 0.05  # how long a line may wait for its write


def _writer(lines: queue.SimpleQueue, stream: Any) -> None:
    """Every `WRITE_EVERY_S`, everything queued meanwhile in one write. The request's `put` wakes nobody, and the
    thread takes the GIL once per batch rather than once per line through `logging` (a record, a formatter, the
    handler's lock), so a busy loop gives up little of its time to the log."""
    stamp = _Stamp()
    while True:
        time.sleep(WRITE_EVERY_S)
        batch = []
        with contextlib.suppress(queue.Empty):
            while True:
                batch.append(lines.get_nowait())
        text, marks, stop = [], [], False
        for line in batch:
            if line is None:
                stop = True
            elif isinstance(line, threading.Event):  # flush(): everything before it is written
                marks.append(line)
            else:
                text.append(f"{stamp(line[-1])} access {_message(line[:-1])}\n")
        try:
            if text:
                stream.write("".join(text))
                stream.flush()
        except Exception:  # pragma: no cover - a broken stream must not stop the log
            pass
        for mark in marks:
            mark.set()
        if stop:
            return


def configure(stream: Any = None) -> None:
    """`serve`: access lines go through a queue to a writer thread (stderr by default), in the format
    "<asctime> access <line>"."""
    global _lines
    if _lines is not None:
        return
    _lines = queue.SimpleQueue()
    threading.Thread(target=_writer, args=(_lines, stream or sys.stderr), name="access-log", daemon=True).start()
    atexit.register(flush, 1.0)  # the last lines of a stopping server are written, not dropped with the thread


def flush(timeout: float = 5.0) -> bool:
    """Wait until every line queued so far is written (tests; shutdown)."""
    if _lines is None:
        return True
    done = threading.Event()
    _lines.put(done)
    return done.wait(timeout)


def unconfigure() -> None:
    """Back to logging in the request (tests)."""
    global _lines
    if _lines is None:
        return
    flush()
    _lines.put(None)
    _lines = None
