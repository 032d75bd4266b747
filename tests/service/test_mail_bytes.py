"""Mail bytes off the request path: the transaction stores a draft, the worker builds the MIME bytes once and
stores them before the first attempt, every retry sends those bytes; readable `.eml` files; 7-bit servers;
a broken SMTP session is reconnected for the rest of the batch."""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import replace
from datetime import timedelta

import pytest

from events import clock, mime
from events.core.tables import OutboxMessage
from events.db import write_transaction
from events.mail import queue_mail
from events.mime import is_draft
from lifedesign.transport import SmtpTransport
from lifedesign.worker import deliver_once
from tests.conftest import CapturingHandler, mail_text, parse_mail
from tests.service.test_outbox import smtp_settings


async def queue_notice(n: int = 1, *, link: str = "http://127.0.0.1:8000/events/1", prefix: str = "n") -> None:
    async with write_transaction():
        for i in range(n):
            await queue_mail("login", to_email=f"{prefix}{i}@example.jp", to_name="金沢 太郎", locale="ja",
                             context={"email": f"{prefix}{i}@example.jp", "link": link, "minutes": 10},
                             key=f"{prefix}:{i}")


async def rows() -> list[dict]:
    return await OutboxMessage.select().order_by(OutboxMessage.id)


@pytest.fixture
def count_builds(monkeypatch):
    builds: list[str] = []
    real = mime.build_message

    def counting(**fields):
        builds.append(fields["message_id"])
        return real(**fields)

    monkeypatch.setattr(mime, "build_message", counting)
    return builds


async def test_the_transaction_stores_the_parts_and_builds_no_mime(db, count_builds):
    await queue_notice(3)
    assert count_builds == []  # nothing of the email package ran inside the transaction
    stored = await rows()
    assert all(is_draft(bytes(r["message"])) for r in stored)
    draft = mime.Draft.decode(bytes(stored[0]["message"]))
    assert draft.message_id == stored[0]["message_id"] and draft.subject == stored[0]["subject"]
    assert "金沢 太郎" in draft.text and draft.headers["Auto-Submitted"] == "auto-generated"
    assert len({r["message_id"] for r in stored}) == 3
    # Negative control: the spy does see a build (the worker's, or a helper's).
    parse_mail(bytes(stored[0]["message"]))
    assert count_builds == [stored[0]["message_id"]]


async def test_the_mail_is_decided_at_commit(db):
    with pytest.raises(RuntimeError):
        async with write_transaction():
            await queue_notice(1)
            raise RuntimeError("the change fails after queueing its mail")
    assert await OutboxMessage.count() == 0
    await queue_notice(1)
    await queue_notice(1)  # the idempotency key: queued once
    assert await OutboxMessage.count() == 1


async def test_what_could_never_be_built_is_refused_in_the_transaction(db):
    for to_name in ("佐藤\r\nBcc: evil@example.com", "佐藤\n恵"):
        with pytest.raises(ValueError):
            async with write_transaction():
                await queue_mail("login", to_email="g@example.jp", to_name=to_name,
                                 context={"email": "g", "link": "x", "minutes": 1}, key=f"bad:{to_name}")
    assert await OutboxMessage.count() == 0


async def test_bytes_are_built_once_before_the_first_attempt_and_a_retry_sends_them(db, settings, smtp_server,
                                                                                     count_builds):
    await queue_notice(1)
    smtp_server.replies = ["451 4.3.0 try again later"]
    config = smtp_settings(settings, smtp_server.port)
    assert (await deliver_once(config))["retry"] == 1
    (row,) = await rows()
    frozen = bytes(row["message"])
    assert not is_draft(frozen) and parse_mail(frozen)["Message-ID"] == row["message_id"]
    assert count_builds == [row["message_id"]]
    with clock.travel(timedelta(hours=1)):  # past the backoff
        assert (await deliver_once(config))["sent"] == 1
    assert count_builds == [row["message_id"]]  # not built again
    ((_, _, received),) = smtp_server.messages
    assert received.replace(b"\r\n", b"\n") == frozen.replace(b"\r\n", b"\n")  # the very bytes stored
    (row,) = await rows()
    assert row["status"] == "sent" and row["attempts"] == 2 and bytes(row["message"]) == frozen


async def test_eml_files_read_as_text_with_whole_links(db, settings):
    link = "http://127.0.0.1:8000/events/1?from=mail&campaign=kanazawa-ward-life-design-2025-autumn-seminar"
    await queue_notice(1, link=link)
    assert (await deliver_once(settings))["sent"] == 1  # the default: mail to files
    (path,) = settings.mail_dir.glob("*.eml")
    raw = path.read_bytes()
    text = raw.decode("utf-8")  # no base64, no quoted-printable: a newcomer can read it, grep finds the link
    assert "Content-Transfer-Encoding: 8bit" in text
    assert "金沢 太郎" in text and link in text
    assert re.search(r"^http://\S+$", text.replace("\r\n", "\n"), re.M).group(0) == link  # on one line
    assert link in mail_text(parse_mail(raw))


@pytest.fixture
def smtp_server_7bit():
    """An SMTP server without 8BITMIME (aiosmtpd with decode_data=True does not offer it)."""
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = CapturingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port, decode_data=True)
    controller.start()
    handler.port = port
    yield handler
    controller.stop()


async def test_a_server_without_8bitmime_gets_the_same_mail_in_7bit(db, settings, smtp_server_7bit, smtp_server):
    await queue_notice(1)
    assert (await deliver_once(smtp_settings(settings, smtp_server_7bit.port)))["sent"] == 1
    ((_, _, seven),) = smtp_server_7bit.messages
    stored = bytes((await rows())[0]["message"])
    assert seven.isascii() and not stored.isascii()
    assert mail_text(parse_mail(seven)) == mail_text(parse_mail(stored))
    assert parse_mail(seven)["Message-ID"] == parse_mail(stored)["Message-ID"]
    # Negative control: a server with 8BITMIME gets the stored 8bit bytes themselves.
    await queue_notice(1, prefix="eight")
    assert (await deliver_once(smtp_settings(settings, smtp_server.port)))["sent"] == 1
    ((_, _, eight),) = smtp_server.messages
    assert not eight.isascii() and "8bit" in parse_mail(eight).get_body(("plain",))["Content-Transfer-Encoding"]


class DroppingHandler(CapturingHandler):
    """Breaks the session on the n-th DATA: hangs up without an answer, answers 421 (closing), or stalls (never
    answers: the client's timeout ends it)."""

    def __init__(self, drop_at: int, how: str) -> None:
        super().__init__()
        self.drop_at, self.how, self.sessions = drop_at, how, 0
        self.unstall: asyncio.Event | None = None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.data_seen += 1
        if self.data_seen == self.drop_at:
            if self.how == "421":
                return "421 4.3.2 service shutting down"
            if self.how == "stall":
                self.unstall = self.unstall or asyncio.Event()
                await self.unstall.wait()  # released when the fixture ends
                return "451 too late"
            server.transport.close()
            return "451 never heard"
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


@pytest.fixture
def dropping_server(request):
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = DroppingHandler(2, request.param)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port
    yield handler
    if handler.unstall is not None:
        controller.loop.call_soon_threadsafe(handler.unstall.set)
    controller.stop()


@pytest.mark.parametrize("dropping_server", ["hang-up", "421", "stall"], indirect=True)
async def test_a_broken_session_is_reconnected_for_the_rest_of_the_batch(db, settings, dropping_server, monkeypatch):
    await queue_notice(5)
    config = smtp_settings(settings, dropping_server.port)
    if dropping_server.how == "stall":  # a server that stops answering: the SMTP timeout breaks the session
        config = config.__class__(**{**config.__dict__, "smtp": replace(config.smtp, timeout=2)})
    tally = await deliver_once(config)
    assert tally["sent"] == 4 and tally["retry"] == 1  # one pass: only the message on the broken session waits
    assert dropping_server.sessions == 2
    assert sorted(r["status"] for r in await rows()) == ["awaiting_retry"] + ["sent"] * 4
    # Negative control: without reconnecting, the rest of the batch would have waited too.
    await queue_notice(5, prefix="again")
    dropping_server.data_seen, dropping_server.sessions = 0, 0
    monkeypatch.setattr(SmtpTransport, "MAX_RECONNECTS", 0)
    tally = await deliver_once(config)
    assert tally["sent"] == 1 and tally["retry"] == 4


async def test_one_row_per_message_id(db):
    """The Message-ID (from the idempotency key) is the send key receivers deduplicate on: unique in the outbox."""
    from events import outbox
    from events.db import is_unique_violation

    await queue_notice(1)
    (row,) = await rows()
    with pytest.raises(Exception) as twice:
        async with write_transaction():
            await outbox.enqueue(key="another-key", kind="login", recipient="x@example.jp", subject="s",
                                 message=b"x", message_id=row["message_id"])
    assert is_unique_violation(twice.value)
    assert await OutboxMessage.count() == 1
