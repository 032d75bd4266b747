"""Benchmark of the mail pipeline: what queueing a mail costs inside a transaction, and worker throughput.

A registration confirmation (text, HTML, an iTIP invite) is queued in its own write transaction, N times,
three ways, interleaved over rounds in this one run on a scratch database:

- ``floor``   the transaction inserting an outbox row of fixed bytes (no template, no MIME): the baseline,
- ``before``  rendering the template and building the MIME bytes in the transaction (the old queue_mail),
- ``after``   events.mail.queue_mail: rendering, a checked draft stored; the MIME is built by the worker,

then the worker delivers N mails to an aiosmtpd on 127.0.0.1 (and to `.eml` files): drafts it builds once
(``after``), rows holding prebuilt bytes (``before``), against ``ceiling``, aiosmtplib sending the same built
messages over one connection with no database at all. It checks that every mail arrived exactly once.

    python bench/outbox.py [--quick] [--mails N] [--rounds R] [--database-url postgresql://…]

Prints mails/s (medians of interleaved rounds), per-mail milliseconds of rendering and of building the MIME
before (the email package) and after (events.mime), and the ratios after : before, before : floor,
worker : ceiling. The last line is ``RESULT {json}``.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys

# bench/ holds calendar.py, which would shadow the standard library's calendar
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("bench")]

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _environment(data_dir: Path, database_url: str) -> None:
    os.environ.update({"LIFEDESIGN_DATA_DIR": str(data_dir), "LIFEDESIGN_DATABASE_URL": database_url,
                       "LIFEDESIGN_SECRET_KEY": "bench-secret-" + "x" * 40, "PICCOLO_CONF": "lifedesign.piccolo_conf",
                       "LIFEDESIGN_BASE_URL": "http://127.0.0.1:8000"})
    os.environ.pop("LIFEDESIGN_SMTP_URL", None)


async def _scratch_database(base_url: str, name: str, *, drop_only: bool = False) -> str:
    import asyncpg

    connection = await asyncpg.connect(base_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))


def _invite(index: int):
    from events.ical import CalendarEvent, build_invite, event_uid
    from events.mime import CalendarPart

    starts = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)
    event = CalendarEvent(
        uid=event_uid("seminar", 12, index, "kanazawa-ward.example.jp"), sequence=0,
        summary="金沢若者ライフデザインセミナー「仕事と家庭、どう両立する？」", description="持ち物: 筆記用具",
        location="金沢区役所 5階 会議室", url="http://127.0.0.1:8000/events/12", starts_at=starts,
        ends_at=starts + timedelta(hours=2), last_modified=starts - timedelta(days=30))
    ics = build_invite(event, method="REQUEST", organizer_email="lifedesign@kanazawa-ward.example.jp",
                       organizer_name="金沢区こども家庭支援課", attendee_email=f"student{index}@example.jp",
                       attendee_name=f"金沢 学生{index}", dtstamp=starts - timedelta(days=30))
    return CalendarPart(method="REQUEST", ics=ics)


def _context(index: int) -> dict:
    return {"title": "金沢若者ライフデザインセミナー「仕事と家庭、どう両立する？」", "when": "2026年7月1日（水）10:00〜12:00",
            "venue": "金沢区役所 5階 会議室", "access": "金沢文庫駅から徒歩5分", "registration_id": 1000 + index,
            "cancel_cutoff_hours": 24, "has_invite": True, "event_url": "http://127.0.0.1:8000/events/12"}


def legacy_build_message(*, sender, recipient, subject, text, html, message_id, date, headers, calendar) -> bytes:
    """events.mime.build_message as it was before this change (the email package's EmailMessage API, 7-bit),
    for this benchmark's mail (text, HTML, invite), kept as the baseline: what every queue_mail ran inside the
    caller's transaction."""
    from email import policy
    from email.message import EmailMessage, MIMEPart
    from email.utils import format_datetime

    from events.mime import _boundary, parse_mailbox

    seven = policy.SMTP.clone(cte_type="7bit", utf8=False, max_line_length=78)

    def text_part(body: str, subtype: str) -> MIMEPart:
        part = MIMEPart(policy=seven)
        part.set_content(body, subtype=subtype, charset="utf-8")
        return part

    def multipart(subtype: str, parts: list, boundary: str, container: MIMEPart) -> MIMEPart:
        container["Content-Type"] = f"multipart/{subtype}"
        container.set_boundary(boundary)
        for part in parts:
            container.attach(part)
        return container

    message = EmailMessage(policy=seven)
    message["From"], message["To"] = parse_mailbox(sender), parse_mailbox(recipient)
    message["Subject"], message["Date"], message["Message-ID"] = subject, format_datetime(date), message_id
    message["MIME-Version"] = "1.0"
    for name, value in headers.items():
        message[name] = value
    inline = MIMEPart(policy=seven)
    inline.set_content(calendar.ics, maintype="text", subtype="calendar", cte="base64",
                       params={"charset": "UTF-8", "method": calendar.method})
    attachment = MIMEPart(policy=seven)
    attachment.set_content(calendar.ics, maintype="application", subtype="ics", cte="base64",
                           disposition="attachment", filename="invite.ics", params={"name": "invite.ics"})
    alternative = multipart("alternative", [text_part(text, "plain"), text_part(html, "html"), inline],
                            _boundary(message_id, "alt"), MIMEPart(policy=seven))
    multipart("mixed", [alternative, attachment], _boundary(message_id, "mix"), message)
    return message.as_bytes(policy=seven)


class Mails:
    """The three ways of queueing one confirmation, each in its own write transaction."""

    def __init__(self) -> None:
        self.invites = [_invite(i) for i in range(64)]  # built once: the ics is not what is measured
        self.payload = b""  # a real draft's size, set by the first `after`

    async def floor(self, key: str, index: int) -> None:
        from events import outbox
        from events.db import write_transaction

        async with write_transaction():
            await outbox.enqueue(key=key, kind="seminar_confirmed", recipient=f"student{index}@example.jp",
                                 subject="【金沢区】お申込みを受け付けました", message=self.payload)

    async def before(self, key: str, index: int) -> None:
        """What queue_mail did before: render, build the MIME bytes (the email package), insert them."""
        import hashlib

        from events import outbox
        from events.config import config
        from events.db import utcnow, write_transaction
        from events.mail import render
        from events.mime import make_message_id

        async with write_transaction():
            name = f"金沢 学生{index}"
            subject, text, html = render("seminar_confirmed", "ja", {"recipient_name": name, **_context(index)})
            message = legacy_build_message(
                sender=f"{config().mail_from_name} <{config().mail_from}>",
                recipient=f"{name} <student{index}@example.jp>", subject=subject, text=text, html=html,
                message_id=make_message_id(config().mail_domain, hashlib.sha256(key.encode()).hexdigest()[:32]),
                date=utcnow(), headers={"Auto-Submitted": "auto-generated"}, calendar=self.invites[index % 64])
            await outbox.enqueue(key=key, kind="seminar_confirmed", recipient=f"student{index}@example.jp",
                                 subject=subject, message=message)

    async def after(self, key: str, index: int) -> None:
        from events.db import write_transaction
        from events.mail import queue_mail

        async with write_transaction():
            await queue_mail("seminar_confirmed", to_email=f"student{index}@example.jp", to_name=f"金沢 学生{index}",
                             context=_context(index), key=key, calendar=self.invites[index % 64])


async def _clear() -> None:
    from events.db import raw

    await raw("DELETE FROM outbox_message")


async def queueing(mails: Mails, n: int, rounds: int) -> dict:
    """Interleaved rounds of N transactions each way (the order turns each round); medians of the rates."""
    from events.core.tables import OutboxMessage

    await mails.after("warm-up", 0)
    mails.payload = bytes((await OutboxMessage.select(OutboxMessage.message).first())["message"])
    rates: dict[str, list[float]] = {"floor": [], "before": [], "after": []}
    ways = ["floor", "before", "after"]
    for round_no in range(rounds):
        order = ways[round_no % 3:] + ways[:round_no % 3]
        for way in order:
            await _clear()
            run = getattr(mails, way)
            started = time.perf_counter()
            for i in range(n):
                await run(f"{way}:{round_no}:{i}", i)
            rates[way].append(n / (time.perf_counter() - started))
    return {way: statistics.median(values) for way, values in rates.items()}


def pure_costs(mails: Mails, n: int) -> dict:
    """Per-mail CPU of the pieces, outside any transaction (medians of batches)."""
    from dataclasses import fields as dataclass_fields

    from events.config import config
    from events.db import utcnow
    from events.mail import render
    from events.mime import Draft, make_message_id

    def timed(step) -> float:
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            for i in range(n):
                step(i)
            samples.append((time.perf_counter() - started) / n * 1000)
        return statistics.median(samples)

    def draft(i: int) -> Draft:
        subject, text, html = render("seminar_confirmed", "ja", {"recipient_name": f"金沢 学生{i}", **_context(i)})
        return Draft(sender=f"{config().mail_from_name} <{config().mail_from}>",
                     recipient=f"金沢 学生{i} <student{i}@example.jp>", subject=subject, text=text, html=html,
                     message_id=make_message_id(config().mail_domain, f"bench{i}"), date=utcnow(),
                     headers={"Auto-Submitted": "auto-generated"}, calendar=mails.invites[i % 64])

    drafts = [draft(i) for i in range(n)]
    fields = [{f.name: getattr(d, f.name) for f in dataclass_fields(d)} for d in drafts]  # build_message's
    return {
        "render_ms": timed(lambda i: render("seminar_confirmed", "ja", {"recipient_name": "x", **_context(i)})),
        "draft_ms": timed(lambda i: drafts[i].encode()),
        "mime_before_ms": timed(lambda i: legacy_build_message(**fields[i])),
        "mime_after_ms": timed(lambda i: drafts[i].build()),
    }


class Server:
    """aiosmtpd on 127.0.0.1 that counts what it accepted."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.received: list[bytes] = []
        server = self

        class Handler:
            async def handle_DATA(self, _server, _session, envelope):  # noqa: N802
                server.received.append(envelope.original_content)
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


async def delivering(mails: Mails, n: int, rounds: int, server: Server) -> dict:
    import dataclasses

    import aiosmtplib

    from events.core.tables import OutboxMessage
    from events.mime import wire_bytes
    from lifedesign.settings import SmtpSettings, get_settings
    from lifedesign.worker import deliver_once

    settings = get_settings()
    smtp = dataclasses.replace(settings, smtp=SmtpSettings("127.0.0.1", server.port, "none", timeout=20))
    files = settings  # no SMTP configured: mail to <data dir>/mail/*.eml
    rates: dict[str, list[float]] = {"after": [], "before": [], "after_files": [], "ceiling": []}

    async def drain(config) -> float:
        started = time.perf_counter()
        sent = 0
        while (tally := await deliver_once(config, batch=50, name="bench-worker"))["sent"]:
            sent += tally["sent"]
        assert sent == n, sent
        return n / (time.perf_counter() - started)

    for round_no in range(rounds):
        ways = [("after", smtp), ("before", smtp), ("after_files", files)]
        for way, transport in ways[round_no % 3:] + ways[:round_no % 3]:
            await _clear()
            server.received.clear()
            queue = mails.before if way == "before" else mails.after
            for i in range(n):
                await queue(f"deliver:{way}:{round_no}:{i}", i)
            rates[way].append(await drain(transport))
            if transport is smtp:
                ids = Counter(line for raw in server.received for line in raw.split(b"\r\n")
                              if line.startswith(b"Message-ID:"))
                assert len(ids) == n and set(ids.values()) == {1}, "a mail lost or sent twice"
        # The ceiling: the same built messages over one connection, no database.
        messages = [wire_bytes(bytes(r["message"])) for r in await OutboxMessage.select(OutboxMessage.message)]
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, timeout=20)
        await client.connect()
        started = time.perf_counter()
        for i, message in enumerate(messages):
            await client.sendmail(settings.mail_from, [f"student{i}@example.jp"], message,
                                  mail_options=["BODY=8BITMIME"])
        rates["ceiling"].append(len(messages) / (time.perf_counter() - started))
        await client.quit()
    return {way: statistics.median(values) for way, values in rates.items()}


async def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="lifedesign-bench-outbox-"))
    postgres = args.database_url.startswith("postgres")
    scratch = f"lifedesign_bench_outbox_{secrets.token_hex(3)}"
    url = await _scratch_database(args.database_url, scratch) if postgres else f"sqlite:///{work / 'outbox.sqlite3'}"
    _environment(work, url)
    server = None
    try:
        from lifedesign import areas  # noqa: F401 - as in production
        from lifedesign.bootstrap import configure_domain
        from lifedesign.migrate import migrate
        from lifedesign.settings import get_settings

        settings = get_settings()
        configure_domain(settings)
        await migrate(settings)
        from events.db import engine

        if postgres:  # as `lifedesign serve` does
            await engine().start_connection_pool(min_size=2, max_size=20)
        mails = Mails()
        pure = pure_costs(mails, min(args.mails, 200))
        queued = await queueing(mails, args.mails, args.rounds)
        server = Server()
        delivered = await delivering(mails, args.mails, args.rounds, server)
    finally:
        if server is not None:
            server.stop()
        if "events.db" in sys.modules:
            from events.db import close_connections

            await close_connections()
        if postgres:
            await _scratch_database(args.database_url, scratch, drop_only=True)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "database": "postgresql" if postgres else "sqlite", "mails": args.mails, "rounds": args.rounds,
        "per_mail_ms": {k: round(v, 3) for k, v in pure.items()},
        "mime_ratio_before_after": round(pure["mime_before_ms"] / pure["mime_after_ms"], 1),
        "queue_per_s": {k: round(v, 1) for k, v in queued.items()},
        "queue_ratio_after_before": round(queued["after"] / queued["before"], 2),
        "queue_ratio_before_floor": round(queued["before"] / queued["floor"], 2),
        "queue_ratio_after_floor": round(queued["after"] / queued["floor"], 2),
        "deliver_per_s": {k: round(v, 1) for k, v in delivered.items()},
        "deliver_ratio_after_ceiling": round(delivered["after"] / delivered["ceiling"], 2),
        "deliver_ratio_after_before": round(delivered["after"] / delivered["before"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=400, help="mails per measurement (default 400)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of each measurement (default 3)")
    parser.add_argument("--database-url", default="", help="a PostgreSQL server (a scratch database is made on it)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    if args.quick:
        args.mails, args.rounds = min(args.mails, 60), 1
    result = asyncio.run(run(args))
    pm, q, d = result["per_mail_ms"], result["queue_per_s"], result["deliver_per_s"]
    print(f"{result['database']}: {result['mails']} mails, {result['rounds']} interleaved rounds")
    print(f"  per mail (CPU): render {pm['render_ms']:.3f} ms, draft {pm['draft_ms']:.3f} ms, MIME build before "
          f"{pm['mime_before_ms']:.3f} ms, after {pm['mime_after_ms']:.3f} ms ({result['mime_ratio_before_after']}x)")
    print(f"  queue in a transaction: floor {q['floor']:.0f}/s, before {q['before']:.0f}/s, after {q['after']:.0f}/s"
          f"  (after : before {result['queue_ratio_after_before']}, before : floor "
          f"{result['queue_ratio_before_floor']}, after : floor {result['queue_ratio_after_floor']})")
    print(f"  worker: drafts {d['after']:.0f}/s, prebuilt {d['before']:.0f}/s, files {d['after_files']:.0f}/s, "
          f"ceiling {d['ceiling']:.0f}/s  (drafts : ceiling {result['deliver_ratio_after_ceiling']}, "
          f"drafts : prebuilt {result['deliver_ratio_after_before']})")
    print("RESULT " + json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
