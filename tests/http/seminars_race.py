"""A real server (uvicorn in this process, 127.0.0.1, free port) and many concurrent clients, for race tests."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from events.core.tables import ApiToken, Person, PersonRole
from events.db import utcnow, write_transaction
from events.tokens import digest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.asynccontextmanager
async def running_server(settings) -> AsyncIterator[str]:
    import uvicorn

    from lifedesign.app import create_app

    app = create_app(settings, run_worker=False, pool=True)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                           backlog=4096, limit_concurrency=None))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def people_with_tokens(count: int, role: str = "student") -> list[tuple[int, str]]:
    """Many accounts at once (bulk inserts), each with a bearer token."""
    tag = secrets.token_hex(3)
    now = utcnow()
    async with write_transaction():
        rows = await Person.insert(*[
            Person(email=f"racer-{tag}-{i}@example.jp", name=f"レーサー {i}", kana="", locale="ja", created_at=now)
            for i in range(count)
        ]).returning(Person.id)
        ids = [r["id"] for r in rows]
        await PersonRole.insert(*[PersonRole(person=i, role=role) for i in ids])
        tokens = [f"ld_race_{secrets.token_urlsafe(24)}" for _ in ids]
        await ApiToken.insert(*[
            ApiToken(person=i, label="race", token_hash=digest(t), prefix=t[:10], created_at=now)
            for i, t in zip(ids, tokens, strict=True)
        ])
    return list(zip(ids, tokens, strict=True))


@dataclass
class RaceOutcome:
    statuses: list[int]
    bodies: list[dict]
    seconds: float


async def race(base_url: str, path: str, tokens: list[str]) -> RaceOutcome:
    """All clients POST at once (a barrier releases them together)."""
    import time

    limits = httpx.Limits(max_connections=len(tokens) + 10, max_keepalive_connections=len(tokens) + 10)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:
        gate = asyncio.Event()

        async def one(token: str) -> tuple[int, dict]:
            await gate.wait()
            response = await client.post(path, headers={"Authorization": f"Bearer {token}"})
            try:
                body = response.json()
            except ValueError:
                body = {"raw": response.text[:200]}
            return response.status_code, body

        tasks = [asyncio.create_task(one(t)) for t in tokens]
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        gate.set()
        results = await asyncio.gather(*tasks)
        seconds = time.perf_counter() - started
    return RaceOutcome([s for s, _ in results], [b for _, b in results], seconds)
