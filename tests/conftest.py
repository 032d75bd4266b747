"""Test fixtures: a fresh database per run (SQLite file, or a PostgreSQL database created and
dropped when LIFEDESIGN_DATABASE_URL points at a server), cleanup between tests, a real SMTP
server (aiosmtpd on 127.0.0.1) and an HTTP client.

The environment is set here, before any lifedesign module is imported (settings are read once).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="lifedesign-test-"))
_BASE_DB_URL = os.environ.get("LIFEDESIGN_DATABASE_URL", "")
_PG_DB_NAME = ""

os.environ["LIFEDESIGN_DATA_DIR"] = str(_TMP)
os.environ["LIFEDESIGN_SECRET_KEY"] = "test-secret-key-" + "x" * 40
os.environ.setdefault("LIFEDESIGN_BASE_URL", "http://127.0.0.1:8000")
os.environ["LIFEDESIGN_WORKER_IN_SERVE"] = "0"
os.environ.pop("LIFEDESIGN_SMTP_URL", None)
os.environ["PICCOLO_CONF"] = "lifedesign.piccolo_conf"

if _BASE_DB_URL.startswith("postgres"):
    import asyncpg

    _PG_DB_NAME = f"lifedesign_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def _create() -> None:
        connection = await asyncpg.connect(_BASE_DB_URL)
        try:
            await connection.execute(f'CREATE DATABASE "{_PG_DB_NAME}"')
        finally:
            await connection.close()

    asyncio.run(_create())
    parts = urlsplit(_BASE_DB_URL)
    os.environ["LIFEDESIGN_DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{_PG_DB_NAME}"))
else:
    os.environ["LIFEDESIGN_DATABASE_URL"] = f"sqlite:///{_TMP / 'test.sqlite3'}"

from lifedesign.settings import get_settings  # noqa: E402

ON_POSTGRES = bool(_PG_DB_NAME)


def pytest_report_header(config: pytest.Config) -> str:
    return f"lifedesign database: {'postgresql ' + _PG_DB_NAME if ON_POSTGRES else 'sqlite ' + str(_TMP)}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if ON_POSTGRES:
        import asyncpg

        async def _drop() -> None:
            connection = await asyncpg.connect(_BASE_DB_URL)
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{_PG_DB_NAME}" WITH (FORCE)')
            finally:
                await connection.close()

        asyncio.run(_drop())
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def settings():
    return get_settings()


@pytest.fixture(scope="session")
async def migrated(settings):
    from lifedesign import areas  # noqa: F401 - as in production: every area is installed before any test runs
    from lifedesign.bootstrap import configure_domain
    from lifedesign.migrate import migrate

    configure_domain(settings)
    await migrate(settings)
    return True


def _all_tables():
    from piccolo.conf.apps import Finder
    from piccolo.table import sort_table_classes

    return sort_table_classes(Finder().get_table_classes())


@pytest.fixture
async def db(migrated):
    """An empty database for each test that asks for it."""
    from events.db import engine, raw

    tables = _all_tables()
    if ON_POSTGRES:
        names = ", ".join(t._meta.tablename for t in tables)
        await raw(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    else:
        for table in reversed(tables):
            await raw(f"DELETE FROM {table._meta.tablename}")
    mail_dir = get_settings().mail_dir
    if mail_dir.exists():
        shutil.rmtree(mail_dir)
    from events.config import config  # noqa: F401

    yield engine()


@pytest.fixture(scope="session")
def shared_app(settings):
    """Building the app takes a second or more; it keeps no state between requests, so build it once."""
    from lifedesign.app import create_app

    return create_app(settings, run_worker=False)


@pytest.fixture
async def app(db, shared_app):
    return shared_app


@pytest.fixture
async def client(app):
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=app, base_url="http://127.0.0.1:8000") as test_client:
        yield test_client


# ---------------------------------------------------------------- mail helpers


def parse_mail(raw: bytes) -> email.message.EmailMessage:
    """Parse a mail as sent; an outbox row that still holds its draft is built as the worker would build it."""
    from events.mime import wire_bytes

    return email.message_from_bytes(wire_bytes(raw), policy=email.policy.default)  # type: ignore[return-value]


def mail_text(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part else ""


async def outbox_mails(kind: str | None = None, recipient: str | None = None) -> list[email.message.EmailMessage]:
    """Every mail queued so far (any state), parsed, oldest first."""
    from events.core.tables import OutboxMessage

    query = OutboxMessage.select(OutboxMessage.message, OutboxMessage.kind, OutboxMessage.recipient).order_by(
        OutboxMessage.id
    )
    rows = await query
    return [
        parse_mail(bytes(r["message"]))
        for r in rows
        if (kind is None or r["kind"] == kind) and (recipient is None or r["recipient"] == recipient)
    ]


LINK = re.compile(r"https?://[^\s<>\"]+")


def links_in(message: email.message.EmailMessage) -> list[str]:
    return LINK.findall(mail_text(message))


async def login(client, email_address: str) -> None:
    """Log in through the real flow: request a link, read it from the queued mail, POST the confirm form."""
    from events.auth import request_login

    before = len(await outbox_mails("login", email_address))
    await request_login(email_address, client=f"test-{secrets.token_hex(4)}")
    mails = await outbox_mails("login", email_address)
    assert len(mails) == before + 1, "login mail was not queued"
    link = [u for u in links_in(mails[-1]) if "/login/" in u][0]
    path = urlsplit(link).path
    page = await client.get(path)
    assert page.status_code == 200
    csrf = re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)
    response = await client.post(path, data={"_csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303, response.text


def csrf_from(html: str) -> str:
    match = re.search(r'name="_csrf" value="([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)


async def make_person(role: str, email_address: str | None = None, **kwargs) -> int:
    from datetime import date

    from events import people

    email_address = email_address or f"{role}-{secrets.token_hex(3)}@example.jp"
    student = kwargs.pop("student", None)
    if role == "student" and student is None:
        student = people.StudentInfo("university", "横浜市立大学", 2, date(2004, 5, 1))
    facility_id = kwargs.pop("facility_id", None)
    if role == "facility_staff" and facility_id is None:
        facility_id = await people.create_facility(f"テスト保育園{secrets.token_hex(2)}", "nursery", "六浦")
    return await people.create_person(
        email_address, kwargs.pop("name", f"テスト {role}"), roles=(role,), student=student, facility_id=facility_id,
        **kwargs,
    )


# ---------------------------------------------------------------- SMTP server


class CapturingHandler:
    """aiosmtpd handler: records messages; `replies` queues SMTP codes to answer DATA with.

    `hold_at = n` makes the n-th DATA (1-based) wait, before answering, until `release` is set; `holding` is set
    while it waits. A client that disconnects meanwhile gets no 250, so its message is not recorded (as with a
    real MTA, which takes responsibility only with its 250)."""

    def __init__(self) -> None:
        import threading

        self.messages: list[tuple[str, list[str], bytes]] = []
        self.replies: list[str] = []
        self.data_seen = 0
        self.hold_at = 0
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.data_seen += 1
        if self.data_seen == self.hold_at:
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait)
        if self.replies:
            return self.replies.pop(0)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


@pytest.fixture
def smtp_server():
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = CapturingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port  # type: ignore[attr-defined]
    yield handler
    handler.release.set()
    controller.stop()


# ---------------------------------------------------------------- a real server for browsers and races


@pytest.fixture
def live_server(db, shared_app):
    """The app served by uvicorn on 127.0.0.1 in a background thread; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(shared_app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("live server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def browser():
    """Debian's Chromium driven by Playwright (no browser download); skipped only when it is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        await instance.close()


# ---------------------------------------------------------------- actors (who asks a service)


def as_staff(person_id: int | None, role: str = "coordinator"):
    """The Actor a coordinator's request becomes (events.access.Actor)."""
    from events.access import Actor

    return Actor(person_id, frozenset({role}), "127.0.0.1")


def as_person(person_id: int, *roles: str):
    """The Actor of a participant acting for themselves."""
    from events.access import Actor

    return Actor(person_id, frozenset(roles or ("student",)), "127.0.0.1")


@contextlib.contextmanager
def captured(signal):
    """The payloads a kernel signal (events.signals) carries while the block runs."""
    seen: list = []

    async def handler(payload) -> None:
        seen.append(payload)

    signal.connect(handler)
    try:
        yield seen
    finally:
        signal.disconnect(handler)
