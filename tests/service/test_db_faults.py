"""PostgreSQL going away under a running `lifedesign serve`: 503 with Retry-After (never 500, never a hang),
`/health` down at once, recovery without a restart, and no registration lost or doubled.

The database is reached through a TCP proxy this test controls on 127.0.0.1 (`FaultyLink`): *down* refuses
connections and cuts the open ones (a stopped server), *partition* accepts and swallows every byte (a network
that drops packets: nothing answers, nothing closes), *heal* forwards again. The service runs as a real
subprocess with short bounds (LIFEDESIGN_DB_TIMEOUT=1, LIFEDESIGN_DB_STATEMENT_TIMEOUT=2). The negative controls
are in the test: a plain asyncpg connection through the broken link is refused (down) and gets no answer at all
within the same bound (partition), so the 503s come from the service's own timeouts, not from a link that only
looked broken.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from events.seminars.tables import IdempotentRequest, Registration
from tests.conftest import ON_POSTGRES
from tests.http.seminars_race import free_port, people_with_tokens
from tests.service.seminars_helpers import new_event

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="connection faults need a database server (SQLite has none; "
                                                        "its lock faults are in test_seminars_busy_cli)")
ROOT = Path(__file__).resolve().parents[2]


class FaultyLink:
    """A TCP proxy in front of PostgreSQL: up, down (refused, open links cut), partition (silent)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.mode = "up"
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    async def listen(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.links.add(writer)
        upstream = None
        try:
            if self.mode == "up":
                up_reader, upstream = await asyncio.open_connection(*self.target)
                self.links.add(upstream)
                await asyncio.gather(self._pipe(reader, upstream), self._pipe(up_reader, writer))
            else:
                while await reader.read(65536):  # partition: swallow whatever comes
                    pass
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for end in (writer, upstream):
                if end is not None:
                    self.links.discard(end)
                    end.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self.mode == "up":
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    def _cut(self) -> None:
        for link in list(self.links):
            link.transport.abort()
        self.links.clear()

    async def down(self) -> None:
        self.mode = "down"
        if self.server is not None:
            self.server.close()
            self.server = None
        self._cut()

    async def partition(self) -> None:
        self.mode = "partition"
        await self.listen()

    async def heal(self) -> None:
        self._cut()  # links that swallowed bytes are useless: clients reconnect
        self.mode = "up"
        await self.listen()


def _via(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@contextlib.asynccontextmanager
async def serving(settings, database_url: str, log: Path):
    port = free_port()
    env = {**os.environ, "LIFEDESIGN_DATABASE_URL": database_url, "LIFEDESIGN_DB_TIMEOUT": "1",
           "LIFEDESIGN_DB_STATEMENT_TIMEOUT": "2", "LIFEDESIGN_WORKER_IN_SERVE": "0"}
    with open(log, "wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "lifedesign", "serve", "--no-worker", "--host", "127.0.0.1",
                                    "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            deadline = time.monotonic() + 90
            while True:
                assert process.poll() is None, log.read_text()[-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health")).status_code == 200:
                        break
                assert time.monotonic() < deadline, "the server did not come up: " + log.read_text()[-3000:]
                await asyncio.sleep(0.1)
            yield client
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 20)
        except subprocess.TimeoutExpired:
            process.kill()


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    if response.url.path == "/health":
        assert body["status"] == "unavailable" and body["database"] == "postgresql"
    else:  # the API's error shape
        assert body["status"] == 503 and body["code"] in ("database_unavailable", "busy"), response.text[:300]


async def _health_down_quickly(client: httpx.AsyncClient) -> None:
    """/health says the database is down within a few of the service's bounds (1 s connect, 2 s statement) —
    not after the client gives up (before: 500 at once when down, a hang of up to 110 s when partitioned)."""
    began = time.monotonic()
    response = await client.get("/health")
    assert time.monotonic() - began < 8, f"/health took {time.monotonic() - began:.1f} s"
    _unavailable(response)


async def _register(client: httpx.AsyncClient, event_id: int, token: str, key: str) -> httpx.Response:
    return await client.post(f"/api/v1/events/{event_id}/registrations",
                             headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


async def _until_healthy(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 30
    while (await client.get("/health")).status_code != 200:
        assert time.monotonic() < deadline, "no recovery without a restart"
        await asyncio.sleep(0.1)


async def test_database_down_and_partitioned_answers_503_and_recovers_without_loss(db, settings, tmp_path):
    import asyncpg

    racers = await people_with_tokens(12)
    event_id = await new_event(capacity=5)
    target = urlsplit(settings.database_url)
    link = FaultyLink((target.hostname or "127.0.0.1", target.port or 5432))
    await link.listen()
    through_link = _via(settings.database_url, link.port)
    answered: dict[str, int] = {}  # idempotency key -> registration id, from every 201
    keys = {person: f"register-{person}" for person, _ in racers}
    async with serving(settings, through_link, tmp_path / "serve.log") as client:
        for person, token in racers[:4]:  # the link is up
            response = await _register(client, event_id, token, keys[person])
            assert response.status_code == 201, response.text
            answered[keys[person]] = response.json()["id"]

        await link.partition()  # the pool's connections stay open but nothing answers: the statement timeout
        with pytest.raises(TimeoutError):  # control: through a partition nothing answers, not even a refusal
            await asyncio.wait_for(asyncpg.connect(through_link, timeout=60), timeout=2.5)
        await _health_down_quickly(client)
        for person, token in racers[4:8]:
            _unavailable(await _register(client, event_id, token, keys[person]))

        await link.down()  # a stopped server: connections refused
        with pytest.raises(OSError):  # control: the server is really gone
            await asyncpg.connect(through_link, timeout=2)
        await _health_down_quickly(client)
        for person, token in racers[8:]:
            _unavailable(await _register(client, event_id, token, keys[person]))
        _unavailable(await client.get("/api/v1/me", headers={"Authorization": f"Bearer {racers[0][1]}"}))

        await link.heal()
        await _until_healthy(client)  # the same process: no restart
        for person, token in racers:  # every client retries with its key; the first four are replayed
            response = await _register(client, event_id, token, keys[person])
            assert response.status_code == 201, response.text
            body = response.json()
            if keys[person] in answered:
                assert body["id"] == answered[keys[person]] and response.headers.get("idempotent-replayed") == "true"
            answered[keys[person]] = body["id"]

    rows = await Registration.select(Registration.id, Registration.person, Registration.status).where(
        Registration.event == event_id)
    assert sorted(r["person"] for r in rows) == sorted(p for p, _ in racers)  # one each: none lost, none doubled
    assert {r["id"] for r in rows} == set(answered.values())
    assert sum(1 for r in rows if r["status"] == "confirmed") == 5
    assert await IdempotentRequest.count() == len(racers)
