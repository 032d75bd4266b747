"""A lock wait beyond the bound answers 503 with Retry-After (never 500); `lifedesign lottery verify`; demo data."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from events.auth import create_api_token
from events.db import is_sqlite
from events.seminars import draws, registration, schedule
from events.seminars.tables import LotteryDraw
from tests.conftest import ON_POSTGRES, make_person
from tests.service.seminars_helpers import adult, new_event, soon

ROOT = Path(__file__).resolve().parents[2]


async def test_lock_wait_beyond_bound_is_503_with_retry_after(client, settings, monkeypatch):
    event_id = await new_event(capacity=5)
    person = await make_person("student")
    headers = {"Authorization": f"Bearer {await create_api_token(person, 't')}"}
    path = f"/api/v1/events/{event_id}/registrations"
    if ON_POSTGRES:
        import asyncpg

        from events import db

        monkeypatch.setattr(db, "LOCK_TIMEOUT_MS", 300)
        blocker = await asyncpg.connect(settings.database_url)
        try:
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.execute("SELECT id FROM event WHERE id = $1 FOR UPDATE", event_id)
            response = await client.post(path, headers=headers)
            await transaction.rollback()
        finally:
            await blocker.close()
    else:
        import sqlite3

        from events.db import engine

        assert is_sqlite()
        monkeypatch.setitem(engine().connection_kwargs, "timeout", 0.3)  # the bound, shortened for the test
        blocker = sqlite3.connect(settings.sqlite_path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
            response = await client.post(path, headers=headers)
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "busy" and int(response.headers["retry-after"]) > 0
    retried = await client.post(path, headers=headers)  # the lock is gone: the retry succeeds
    assert retried.status_code == 201 and retried.json()["status"] == "confirmed"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lifedesign", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)


async def test_lottery_cli_draw_and_verify(db):
    event_id = await new_event(capacity=1, allocation="lottery", registration_closes_at=soon(5).isoformat())
    for i in range(3):
        await registration.register(event_id, await adult(f"応募{i}"))
    from argparse import Namespace

    from events.errors import NotFound
    from lifedesign.areas.seminars import cli

    assert await cli.cmd_lottery_draw(Namespace(event_id=event_id)) == 0
    ok = await asyncio.to_thread(_cli, "lottery", "verify", str(event_id))  # the real command, end to end
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
    record = await draws.lottery_record(event_id)
    await LotteryDraw.update({LotteryDraw.winners: record["waitlist"][:1]}).where(LotteryDraw.event == event_id)
    assert await cli.cmd_lottery_verify(Namespace(event_id=event_id)) == 1
    with pytest.raises(NotFound):  # main() prints it as "lifedesign: error: …" with a non-zero exit
        await cli.cmd_lottery_verify(Namespace(event_id=999999))

async def test_demo_loader_is_believable_and_idempotent(db):
    from lifedesign.areas.seminars import demo

    await make_person("coordinator", "coordinator@kanazawa-ward.example.jp")
    first = await demo.load(lambda line: None)
    again = await demo.load(lambda line: None)
    assert first["events_created"] == 5 and again["events_created"] == 0
    events = await schedule.list_public_events()
    titles = {e["title"] for e in events}
    assert "ライフデザインセミナー ～仕事と子育て、わたしの未来～" in titles
    assert any(e["allocation"] == "lottery" for e in events)
    assert any(e["kind"] == "staff_exchange" and e["audience"] == "facility_staff" for e in events)
    assert {"金沢公会堂 講堂", "金沢区役所 7階会議室"} <= {e["venue"] for e in events}
