"""Outbox delivery against a real SMTP server: retries, failures, stuck rows, several workers."""

import asyncio
from datetime import timedelta

import pytest

from events import clock, outbox
from events.core.tables import OutboxMessage
from events.db import utcnow, write_transaction
from events.mail import queue_mail
from events.mime import is_draft, wire_bytes
from lifedesign.settings import SmtpSettings
from lifedesign.worker import deliver_once
from tests.conftest import ON_POSTGRES, as_staff, parse_mail


def smtp_settings(settings, port):
    return settings.__class__(**{**settings.__dict__, "smtp": SmtpSettings("127.0.0.1", port, "none", timeout=5)})


async def queue(n=1, prefix="m"):
    async with write_transaction():
        for i in range(n):
            await queue_mail("login", to_email=f"{prefix}{i}@example.jp", to_name="金沢 太郎", locale="ja",
                             context={"email": f"{prefix}{i}@example.jp", "link": "http://127.0.0.1:8000/login/x",
                                      "minutes": 10}, key=f"{prefix}:{i}")


async def status_of(n=None):
    rows = await OutboxMessage.select(OutboxMessage.status).order_by(OutboxMessage.id)
    return [r["status"] for r in rows]


async def test_queue_is_idempotent(db):
    await queue(1)
    await queue(1)
    assert await OutboxMessage.count() == 1


async def test_queued_draft_builds_a_readable_message_with_frozen_headers(db):
    await queue(1)
    row = await OutboxMessage.select(OutboxMessage.message, OutboxMessage.message_id).first()
    stored = bytes(row["message"])
    assert is_draft(stored)  # the transaction stored the parts; the worker builds the bytes
    raw = wire_bytes(stored)
    assert raw == wire_bytes(stored)  # deterministic
    assert b"\n" not in raw.replace(b"\r\n", b"") and max(map(len, raw.split(b"\r\n"))) <= 998
    assert raw.split(b"\r\n\r\n", 1)[0].isascii()  # headers stay 7-bit (RFC 2047)
    message = parse_mail(raw)
    assert message["Message-ID"] == row["message_id"] and message["Date"]
    plain = message.get_body(("plain",))
    assert plain["Content-Transfer-Encoding"] == "8bit" and "ログイン" in plain.get_content()
    assert "ログイン".encode() in raw and b"http://127.0.0.1:8000/login/x" in raw  # readable as it is
    assert message.get_body(("html",)) is not None


async def test_delivery_and_retry_after_451(db, settings, smtp_server):
    await queue(2)
    smtp_server.replies = ["451 4.3.0 try again later"]
    tally = await deliver_once(smtp_settings(settings, smtp_server.port))
    assert tally["sent"] == 1 and tally["retry"] == 1
    assert sorted(await status_of()) == ["awaiting_retry", "sent"]
    row = await OutboxMessage.select().where(OutboxMessage.status == "awaiting_retry").first()
    assert "451" in row["last_error"] and row["due_at"] > utcnow()
    # not yet due: nothing happens; once due, it is delivered
    assert (await deliver_once(smtp_settings(settings, smtp_server.port)))["sent"] == 0
    with clock.travel(timedelta(hours=1)):  # past the backoff
        assert (await deliver_once(smtp_settings(settings, smtp_server.port)))["sent"] == 1
    assert await status_of() == ["sent", "sent"]
    assert len(smtp_server.messages) == 2


async def test_a_mail_that_keeps_failing_gives_up_after_max_attempts(db, settings, smtp_server):
    """Each 4xx waits longer (backoff); after MAX_ATTEMPTS the row is failed, not retried for ever."""
    await queue(1)
    config = smtp_settings(settings, smtp_server.port)
    smtp_server.replies = ["451 4.3.0 try again later"] * (outbox.MAX_ATTEMPTS + 2)
    seen = []
    with clock.travel(utcnow()):
        for _ in range(outbox.MAX_ATTEMPTS + 2):
            await deliver_once(config)
            seen.append((await status_of())[0])
            clock.advance(timedelta(days=2))  # past any backoff
    assert seen[: outbox.MAX_ATTEMPTS - 1] == ["awaiting_retry"] * (outbox.MAX_ATTEMPTS - 1)
    assert seen[outbox.MAX_ATTEMPTS - 1:] == ["failed"] * 3
    row = await OutboxMessage.select(OutboxMessage.attempts).first()
    assert row["attempts"] == outbox.MAX_ATTEMPTS and smtp_server.messages == []


async def test_failure_after_550_is_shown_and_can_be_retried(db, settings, smtp_server):
    await queue(1)
    smtp_server.replies = ["550 5.1.1 no such user"]
    tally = await deliver_once(smtp_settings(settings, smtp_server.port))
    assert tally["failed"] == 1
    row = await OutboxMessage.select().first()
    assert row["status"] == "failed" and "550" in row["last_error"]
    assert (await outbox.counts())["failed"] == 1
    await outbox.retry_failed(row["id"], actor=as_staff(None))
    assert (await deliver_once(smtp_settings(settings, smtp_server.port)))["sent"] == 1


async def test_smtp_down_keeps_mail_queued(db, settings):
    await queue(3)
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    tally = await deliver_once(smtp_settings(settings, dead_port))
    assert tally["sent"] == 0 and tally["retry"] == 3
    assert await status_of() == ["awaiting_retry"] * 3
    rows = await OutboxMessage.select(OutboxMessage.last_error).first()
    assert "cannot connect" in rows["last_error"]


async def test_stuck_row_is_requeued(db, settings):
    await queue(1)
    claimed = await outbox.claim_due("dead-worker")
    assert len(claimed) == 1 and await status_of() == ["inflight"]
    assert await outbox.requeue_stuck() == 0  # fresh claims are left alone
    with clock.travel(timedelta(hours=1)):  # the worker died an hour ago
        assert await outbox.requeue_stuck() == 1
        tally = await deliver_once(settings)  # files transport
    assert tally["sent"] == 1
    assert len(list(settings.mail_dir.glob("*.eml"))) == 1


async def test_withdraw_only_unsent(db):
    async with write_transaction():
        await queue_mail("login", to_email="a@example.jp", context={"email": "a", "link": "x", "minutes": 1},
                         key="r1", group_key="reminder:1", due_at=utcnow() + timedelta(days=1))
    assert await outbox.withdraw("reminder:1") == 1
    assert await status_of() == ["withdrawn"]
    assert await outbox.claim_due("w") == []


async def test_two_workers_never_claim_the_same_row(db):
    await queue(60)

    async def claimer(name):
        got = []
        while True:
            batch = await outbox.claim_due(name, limit=5)
            if not batch:
                return got
            got.extend(m.id for m in batch)

    first, second = await asyncio.gather(claimer("w1"), claimer("w2"))
    assert len(first) + len(second) == 60
    assert not set(first) & set(second)


@pytest.mark.skipif(not ON_POSTGRES, reason="SKIP LOCKED path is PostgreSQL's; SQLite serialises writers")
async def test_two_workers_deliver_each_mail_once_on_postgres(db, settings, smtp_server):
    await queue(40)
    smtp = smtp_settings(settings, smtp_server.port)
    await asyncio.gather(deliver_once(smtp, batch=7, name="w1"), deliver_once(smtp, batch=7, name="w2"),
                         deliver_once(smtp, batch=50, name="w3"))
    while (await deliver_once(smtp, batch=10))["sent"]:
        pass
    recipients = [rcpt for _, rcpts, _ in smtp_server.messages for rcpt in rcpts]
    assert len(recipients) == 40 and len(set(recipients)) == 40
