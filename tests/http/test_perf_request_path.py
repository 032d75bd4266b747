"""The request path stays lean: identity in one statement, a registration in at most ten, no per-statement
pragmas or pool resets, an access log that keeps no secret, and `serve --workers 2` racing without oversell.

Statements are counted at the driver (a trace callback on SQLite's connections, a query logger on asyncpg's),
so the figures are the ones the database saw. Speed itself is bench/registration.py's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from events.auth import create_api_token
from events.db import PersistentSQLiteEngine, PooledPostgresEngine, engine, ping, raw
from events.seminars.tables import Event, Registration
from lifedesign.access_log import REDACTED, redact
from tests.conftest import ON_POSTGRES, make_person
from tests.http.seminars_race import free_port, people_with_tokens, race
from tests.service.seminars_helpers import new_event

ROOT = Path(__file__).resolve().parents[2]
REGISTRATION_BUDGET = 10  # statements for one registration that waits (the race's common case), both engines
# ... and for one that takes a seat (a seminar's usual case): on SQLite a RETURNING shows twice in the trace (it runs
# as a trigger program), so its lines are more than its statements
SEAT_BUDGET = 8 if ON_POSTGRES else 16


@contextlib.contextmanager
def statements(monkeypatch):
    """Every statement the driver runs while the block runs (BEGIN, COMMIT, PRAGMA and resets included)."""
    seen: list[str] = []
    db = engine()
    if isinstance(db, PersistentSQLiteEngine):
        # A sqlite3 connection belongs to its thread (the test client serves from a thread of its own): drop the
        # open ones, and trace the ones opened next (after their once-only pragmas).
        opened = db.open_connection

        def traced_connection():
            connection = opened()
            connection.set_trace_callback(seen.append)
            return connection

        monkeypatch.setattr(db, "open_connection", traced_connection)
        db._lanes.clear()
        db._last = None
        try:
            yield seen
        finally:
            monkeypatch.setattr(db, "open_connection", opened)
            db._lanes.clear()
            db._last = None
        return
    assert isinstance(db, PooledPostgresEngine)
    opened = db.get_new_connection

    async def logged_connection():
        connection = await opened()
        connection.add_query_logger(lambda record: seen.append(record.query))
        return connection

    monkeypatch.setattr(db, "get_new_connection", logged_connection)
    yield seen


async def _bearer(client, role: str = "student") -> tuple[int, dict[str, str]]:
    person = await make_person(role)
    return person, {"Authorization": f"Bearer {await create_api_token(person, 'perf')}"}


async def test_the_counter_sees_what_runs(db, monkeypatch):
    with statements(monkeypatch) as seen:  # control: a statement of our own is counted, once
        await raw("SELECT 1 AS probe")
        await asyncio.sleep(0)
    assert [s for s in seen if "probe" in s] == ["SELECT 1 AS probe"]


async def test_identity_is_one_statement_and_health_one_more(client, monkeypatch):
    _, headers = await _bearer(client)
    await client.get("/api/v1/me", headers=headers)  # warm: the first request of a run opens connections
    with statements(monkeypatch) as seen:
        me = await client.get("/api/v1/me", headers=headers)
        await asyncio.sleep(0)  # asyncpg hands query records to its loggers on the next loop turn
    assert me.status_code == 200 and me.json()["roles"] == ["student"]
    assert len(seen) == 1, seen  # token -> person + roles, reused by the handler
    with statements(monkeypatch) as seen:
        health = await client.get("/health")
        await asyncio.sleep(0)
    assert health.status_code == 200 and health.json()["status"] == "ok" and len(seen) == 1, seen
    assert "set-cookie" not in health.headers and "set-cookie" not in me.headers  # nothing to remember


async def test_health_checks_in_flight_together_share_one_round_trip(db, monkeypatch):
    with statements(monkeypatch) as seen:
        together = await asyncio.gather(*(ping(2.0) for _ in range(20)))
        await asyncio.sleep(0)
    assert all(together) and len(seen) == 1, seen
    with statements(monkeypatch) as seen:  # control: one after another, each asks the database
        one_by_one = [await ping(2.0) for _ in range(3)]
        await asyncio.sleep(0)
    assert all(one_by_one) and len(seen) == 3, seen


async def test_a_health_check_that_gives_up_leaves_the_shared_ping_to_the_others(db):
    """Each waiter waits on a future of its own: one cancelled (its client went away) ends only its own wait.
    Control: waiters awaiting one shared future, as a plain `await` of the ping would be, all lose it."""
    first = asyncio.ensure_future(ping(2.0))
    others = [asyncio.ensure_future(ping(2.0)) for _ in range(5)]
    await asyncio.sleep(0)  # every one of them waits on the one ping in flight
    first.cancel()
    assert all(await asyncio.gather(*others)) and first.cancelled()
    shared = asyncio.get_running_loop().create_future()

    async def wait_on_shared() -> bool:
        return await shared

    cancelled, kept = asyncio.ensure_future(wait_on_shared()), asyncio.ensure_future(wait_on_shared())
    await asyncio.sleep(0)
    cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await kept
    assert shared.cancelled() and kept.cancelled()


async def test_a_waiting_registration_fits_the_statement_budget(client, monkeypatch):
    await client.get("/health")  # warm: the first request of a run opens connections
    event_id = await new_event(capacity=1)
    first, first_headers = await _bearer(client)
    assert (await client.post(f"/api/v1/events/{event_id}/registrations", headers=first_headers)).status_code == 201
    _, headers = await _bearer(client)
    with statements(monkeypatch) as seen:
        response = await client.post(f"/api/v1/events/{event_id}/registrations", headers=headers)
        await asyncio.sleep(0)
    assert response.status_code == 201 and response.json()["status"] == "waitlisted"
    assert response.json()["waitlist_rank"] == 1 and response.json()["queue_position"] == 1
    assert len(seen) <= REGISTRATION_BUDGET, "\n".join(seen)
    assert not [s for s in seen if "PRAGMA" in s or "RESET ALL" in s or "pg_advisory_unlock_all" in s], seen
    begins = sum(1 for s in seen if s.lstrip().upper().startswith("BEGIN"))
    if ON_POSTGRES:  # the entry and its mail, held behind, are the transaction's one statement: no BEGIN, no COMMIT
        written = [s for s in seen if s.lstrip().startswith("WITH w0 AS (INSERT INTO registration")]
        assert begins == 0 and len(written) == 1 and "INSERT INTO outbox_message" in written[0], seen
        assert not [s for s in seen if re.search(r"\bCOMMIT\b", s.upper())], seen
    else:
        assert begins == 1  # one transaction


def _read_back(seen: list[str]) -> list[str]:
    """What a registration read after its snapshot (the identity and the snapshot are its first two statements):
    SELECTs of rows, not the fused writes' `WITH … SELECT set_config` nor the wait for the commit on disk."""
    import events.db

    return [s for s in seen[2:] if s.lstrip().upper().startswith("SELECT") and s != events.db.DURABLE]


async def test_a_registration_that_takes_a_seat_fits_the_statement_budget(client, monkeypatch):
    """A seminar's usual registration takes a seat, and with it come the confirmation with its calendar invite, the
    invite's state, the reminder and its opt-out secret: all written, nothing read back (the event, the person and
    the birth date come from the snapshot, the invite's SEQUENCE from the statement that writes it). Control: an
    invite provider that is not handed the rows reads them again, and the count shows it."""
    from events import signals
    from events.core.tables import OutboxMessage
    from events.invites.tables import CalendarInvite, ReminderOptOutToken
    from events.tokens import digest
    from tests.conftest import parse_mail

    await client.get("/health")  # warm: the first request of a run opens connections
    event_id = await new_event(capacity=5)
    person, headers = await _bearer(client)
    with statements(monkeypatch) as seen:
        response = await client.post(f"/api/v1/events/{event_id}/registrations", headers=headers)
        await asyncio.sleep(0)
        seen = list(seen)  # a connection opened here keeps its logger: what comes later is not this request's
    assert response.status_code == 201 and response.json()["status"] == "confirmed", response.text
    assert _read_back(seen) == [], "\n".join(seen)
    assert len(seen) <= SEAT_BUDGET, "\n".join(seen)
    invite = await CalendarInvite.select().where((CalendarInvite.event == event_id)
                                                 & (CalendarInvite.person == person)).first()
    assert (invite["state"], invite["sequence"], invite["mailed_sequence"], invite["mailed_method"]) == (
        "active", 0, 0, "REQUEST")
    mails = {row["kind"]: parse_mail(bytes(row["message"])) for row in await OutboxMessage.select(
        OutboxMessage.kind, OutboxMessage.message).where(OutboxMessage.group_key.like(f"%p{person}:e{event_id}")
                                                        | OutboxMessage.idempotency_key.like(f"seminar:{response.json()['id']}:%"))}
    assert set(mails) == {"seminar_confirmed", "reminder"}, mails
    ics = next(p for p in mails["seminar_confirmed"].walk() if p.get_content_type() == "text/calendar")
    assert "SEQUENCE:0" in ics.get_content()
    unsubscribe = mails["reminder"]["List-Unsubscribe"].split(",")[0].strip()[1:-1]
    (token,) = await ReminderOptOutToken.select(ReminderOptOutToken.token_hash).where(
        ReminderOptOutToken.person == person)
    assert token["token_hash"] == digest(unsubscribe.rsplit("/", 1)[1])  # the secret mailed is the one kept

    provided = signals.INVITE_PART._impl

    async def unhanded(**kwargs):  # control: the same provider, without the rows the change carries
        kwargs.pop("event", None), kwargs.pop("person", None)
        return await provided(**kwargs)

    monkeypatch.setattr(signals.INVITE_PART, "_impl", unhanded)
    _, other = await _bearer(client)
    with statements(monkeypatch) as again:
        assert (await client.post(f"/api/v1/events/{event_id}/registrations", headers=other)).status_code == 201
        await asyncio.sleep(0)
        again = list(again)
    assert len(_read_back(again)) == 2 and len(again) == len(seen) + 2, "\n".join(again)


async def test_a_cancellation_looks_for_its_invite_once(client, monkeypatch):
    """A confirmed place cancelled: its notice carries the CANCEL (the invite's state read once, the reminder
    withdrawn), and the invites' listener, told by the transaction's memo, does not look again. Control: without
    the memo the listener reads the event and the invite state again."""
    import events.invites.invites as invites

    await client.get("/health")
    event_id = await new_event(capacity=3)

    async def cancel_one() -> list[str]:
        _, headers = await _bearer(client)
        made = (await client.post(f"/api/v1/events/{event_id}/registrations", headers=headers)).json()
        assert made["status"] == "confirmed", made
        with statements(monkeypatch) as seen:
            response = await client.delete(f"/api/v1/registrations/{made['id']}", headers=headers)
            await asyncio.sleep(0)
            seen = list(seen)
        assert response.status_code == 200, response.text
        return [s for s in seen if "FROM \"calendar_invite\"" in s and s.lstrip().startswith("SELECT")]

    assert len(await cancel_one()) == 1
    monkeypatch.setattr(invites, "transaction_memo", lambda name: None)
    assert len(await cancel_one()) == 2


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite hands out the place in line before commit, in the statement")
async def test_the_place_in_line_comes_with_the_commit(client, monkeypatch):
    """The deferred trigger that hands out the place tells it (a notice on COMMIT's answer): nothing is read after
    the commit. Control: with the notice unheard, the same answer costs one statement more, read after COMMIT."""
    import events.db

    await client.get("/health")  # warm: the first request of a run opens connections
    event_id = await new_event(capacity=1)
    _, first = await _bearer(client)
    assert (await client.post(f"/api/v1/events/{event_id}/registrations", headers=first)).status_code == 201

    async def waiting() -> tuple[dict, list[str]]:
        _, headers = await _bearer(client)
        with statements(monkeypatch) as seen:
            response = await client.post(f"/api/v1/events/{event_id}/registrations", headers=headers)
            await asyncio.sleep(0)
        assert response.status_code == 201 and response.json()["status"] == "waitlisted", response.text
        commits = [i for i, s in enumerate(seen)
                   if s.strip().upper() == "COMMIT" or "; COMMIT" in s or s.startswith("WITH w0 AS (")]
        # what follows the commit, but for its wait to be on disk (events.db.DURABLE, test_db_durability)
        return response.json(), [s for s in seen[commits[-1] + 1:] if s != events.db.DURABLE]

    told, after = await waiting()
    assert (told["queue_position"], told["waitlist_rank"]) == (1, 1) and after == [], after
    monkeypatch.setattr(events.db, "_COMMIT_NOTICES", {})
    read, after = await waiting()
    assert (read["queue_position"], read["waitlist_rank"]) == (2, 2)
    assert len(after) == 1 and "queue_position" in after[0], after

    def garbled(message: str) -> None:
        raise ValueError(message)

    monkeypatch.setattr(events.db, "_COMMIT_NOTICES", {"LD100": garbled})  # a notice misread: the commit stands
    misread, after = await waiting()
    assert (misread["queue_position"], misread["waitlist_rank"]) == (3, 3) and len(after) == 1, after
    rows = await Registration.select(Registration.id, Registration.queue_position).where(
        Registration.id.is_in([told["id"], read["id"], misread["id"]])).order_by(Registration.id)
    assert [row["queue_position"] for row in rows] == [1, 2, 3]  # what was told is what was committed


async def test_no_request_hands_work_to_a_thread(client, monkeypatch):
    """A sync hook (before_send, a guard, a handler without sync_to_thread=False) runs in Litestar's thread pool:
    a hand-off per call. Nothing on the request path may do that."""
    from litestar.utils import sync

    hops: list[str] = []
    real = sync.sync_to_thread

    async def counted(fn, *args, **kwargs):
        hops.append(getattr(fn, "__qualname__", repr(fn)))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(sync, "sync_to_thread", counted)
    _, headers = await _bearer(client)
    for path in ("/health", "/api/v1/me", "/events", "/no/such/page"):
        assert (await client.get(path, headers=headers if path == "/api/v1/me" else {})).status_code < 500
    assert hops == []
    await sync.ensure_async_callable(lambda: None)()  # control: a sync callable is counted
    assert len(hops) == 1


# ---------------------------------------------------------------- the access log


SECRET_PATHS = ["/login/{t}", "/consent/{t}", "/api/v1/consent/{t}", "/feedback/{t}", "/calendar/{t}.ics",
                "/reminders/unsubscribe/{t}", "/privacy/guardian/{t}", "/privacy/guardian/{t}/data.json",
                "/visits/consent/{t}", "/visits/guardian/{t}"]


def test_redaction_keeps_the_route_and_drops_the_token():
    token = secrets.token_urlsafe(24)
    for template in SECRET_PATHS:
        path = template.format(t=token)
        assert token not in redact(path) and REDACTED in redact(path), path
    assert redact(f"/calendar/{token}.ics") == f"/calendar/{REDACTED}.ics"
    for ordinary in ("/events/12", "/coordinator/feedback/3", "/feedback", "/login", "/api/v1/events/4/registrations"):
        assert redact(ordinary) == ordinary  # control: only secret segments go


async def test_access_log_records_every_request_without_its_secret(client, caplog):
    token = secrets.token_urlsafe(24)
    with caplog.at_level(logging.INFO, logger="lifedesign.access"):
        for template in SECRET_PATHS:
            await client.get(template.format(t=token) + f"?lang=en&token={token}", follow_redirects=False)
        await client.post(f"/reminders/unsubscribe/{token}")
        await client.get("/no/such/page")
    lines = [r.getMessage() for r in caplog.records if r.name == "lifedesign.access"]
    assert len(lines) == len(SECRET_PATHS) + 2
    assert not [line for line in lines if token in line], lines
    assert sum(1 for line in lines if REDACTED in line) == len(SECRET_PATHS) + 1
    assert any('"GET /no/such/page HTTP/1.1" 404' in line for line in lines)


async def test_served_lines_are_formatted_and_written_off_the_event_loop(client):
    import io
    import threading

    from lifedesign import access_log

    token = secrets.token_urlsafe(24)
    writers: list[str] = []

    class Stream(io.StringIO):
        def write(self, text: str) -> int:
            writers.append(threading.current_thread().name)
            return super().write(text)

    stream = Stream()
    access_log.configure(stream)
    try:
        await client.get(f"/consent/{token}?t={token}", follow_redirects=False)
        await client.get("/health")
        assert access_log.flush()
    finally:
        access_log.unconfigure()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and token not in stream.getvalue(), lines
    assert f'"GET /consent/{REDACTED}?… HTTP/1.1"' in lines[0] and '"GET /health HTTP/1.1" 200' in lines[1]
    assert writers and set(writers) == {"access-log"}  # the writer thread, not the loop's
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} access \S+ \"GET /health HTTP/1\.1\" 200 \d+\.\dms", lines[1]), lines[1]
    assert threading.current_thread().name != "access-log"  # control: the test itself runs elsewhere


# ---------------------------------------------------------------- several processes


def _serve(settings, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "LIFEDESIGN_WORKER_IN_SERVE": "0"}
    process = subprocess.Popen([sys.executable, "-m", "lifedesign", "serve", "--host", "127.0.0.1", "--port",
                                str(port), *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return process, f"http://127.0.0.1:{port}"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.skipif(ON_POSTGRES, reason="the refusal is SQLite's")
def test_several_processes_are_refused_on_sqlite(settings):
    process, _ = _serve(settings, "--workers", "2")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1 and err.decode().strip().splitlines()[-1].startswith("lifedesign: error: --workers")


@pytest.mark.skipif(not ON_POSTGRES, reason="several serving processes need PostgreSQL")
async def test_two_processes_race_without_oversell(db, settings):
    racers = await people_with_tokens(200)
    event_id = await new_event(capacity=10)
    process, base = _serve(settings, "--workers", "2", "--no-worker")
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as probe:
            deadline = time.monotonic() + 90
            while True:
                assert process.poll() is None, process.stderr.read().decode()[-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    if (await probe.get("/health")).status_code == 200:
                        break
                assert time.monotonic() < deadline, "serve --workers 2 did not come up"
                await asyncio.sleep(0.1)
        servers = [pid for pid in _children(process.pid) if Path(f"/proc/{pid}/cmdline").read_bytes().count(b"spawn")]
        assert len(servers) == 2, servers
        before = {pid: _cpu_ticks(pid) for pid in servers}
        outcome = await race(base, f"/api/v1/events/{event_id}/registrations", [t for _, t in racers])
        worked = {pid: _cpu_ticks(pid) - before[pid] for pid in servers}
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
    assert process.returncode == 0  # SIGTERM stops both processes gracefully
    assert [s for s in outcome.statuses if s >= 500] == [] and set(outcome.statuses) == {201}, outcome.bodies[:3]
    assert all(ticks > 0 for ticks in worked.values()), worked  # both processes served registrations
    statuses = [r["status"] for r in await Registration.select(Registration.status).where(Registration.event == event_id)]
    assert statuses.count("confirmed") == 10 and statuses.count("waitlisted") == 190
    assert (await Event.select(Event.taken).where(Event.id == event_id).first())["taken"] == 10
    positions = sorted(b["queue_position"] for b in outcome.bodies if b["status"] == "waitlisted")
    assert positions == list(range(1, 191))
