"""Registration race benchmark: N clients race for M seats over HTTP against a real `lifedesign serve`.

    python bench/registration.py [--database-url URL] [--clients 200] [--seats 10] [--rounds 3]

Starts the service as a subprocess (uvicorn, 127.0.0.1, a free port) on the given database (default: a
temporary SQLite file), creates the racers (bulk, with API tokens) and one event per round, then per round:
1. N concurrent GET /health (the trivial endpoint of the same server: the baseline),
2. N concurrent POST /api/v1/events/{id}/registrations, all released at once.
Prints registrations/s, p50/p95 latency, oversold and 5xx counts, and the ratios against the baseline.
The last line is `RESULT {json}`.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys

# bench/ holds calendar.py, which would shadow the standard library's calendar (httpx needs it)
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("bench")]

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _setup(clients: int, seats: int, rounds: int) -> tuple[list[str], list[int]]:
    from events.access import Actor
    from events.core.tables import ApiToken, Person, PersonRole
    from events.db import utcnow, write_transaction
    from events.seminars import schedule
    from events.tokens import digest
    from lifedesign.bootstrap import configure_domain
    from lifedesign.migrate import migrate
    from lifedesign.settings import get_settings

    settings = get_settings()
    configure_domain(settings)
    await migrate(settings)
    tag = secrets.token_hex(3)
    now = utcnow()
    async with write_transaction():
        rows = await Person.insert(*[
            Person(email=f"bench-{tag}-{i}@example.jp", name=f"ベンチ {i}", kana="", locale="ja", created_at=now)
            for i in range(clients + 1)
        ]).returning(Person.id)
        ids = [r["id"] for r in rows]
        await PersonRole.insert(PersonRole(person=ids[0], role="coordinator"),
                                *[PersonRole(person=i, role="student") for i in ids[1:]])
        tokens = [f"ld_bench_{secrets.token_urlsafe(24)}" for _ in ids[1:]]
        await ApiToken.insert(*[
            ApiToken(person=i, label="bench", token_hash=digest(t), prefix=t[:10], created_at=now)
            for i, t in zip(ids[1:], tokens, strict=True)
        ])
    events = []
    coordinator = Actor(ids[0], frozenset({"coordinator"}), "bench")
    start = datetime.now(UTC) + timedelta(days=10)
    for _ in range(rounds):
        event_id = await schedule.create_event({
            "title": "ベンチマーク・ライフデザインセミナー", "venue": "金沢公会堂", "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=2)).isoformat(), "capacity": seats}, actor=coordinator)
        await schedule.publish_event(event_id, actor=coordinator)
        events.append(event_id)
    return tokens, events


async def _confirmed(event_id: int) -> int:
    from events.seminars.tables import SEAT_HOLDING_STATES, Registration

    return await Registration.count().where(
        (Registration.event == event_id) & Registration.status.is_in(list(SEAT_HOLDING_STATES))
    )


async def _burst(base: str, method: str, paths: list[str], tokens: list[str | None]) -> tuple[list[int], list[float], float]:
    import httpx

    limits = httpx.Limits(max_connections=len(paths) + 10, max_keepalive_connections=len(paths) + 10)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        await client.get("/health")  # warm the pool
        gate = asyncio.Event()

        async def one(path: str, token: str | None) -> tuple[int, float]:
            await gate.wait()
            began = time.perf_counter()
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await client.request(method, path, headers=headers)
            return response.status_code, time.perf_counter() - began

        tasks = [asyncio.create_task(one(p, t)) for p, t in zip(paths, tokens, strict=True)]
        await asyncio.sleep(0.05)
        began = time.perf_counter()
        gate.set()
        results = await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
    return [s for s, _ in results], [d for _, d in results], wall


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (50 clients, 5 seats, 1 round)")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seats, args.rounds = 50, 5, 1

    data_dir = Path(tempfile.mkdtemp(prefix="lifedesign-bench-"))
    url = args.database_url or f"sqlite:///{data_dir / 'bench.sqlite3'}"
    env = {**os.environ, "LIFEDESIGN_DATA_DIR": str(data_dir), "LIFEDESIGN_DATABASE_URL": url,
           "LIFEDESIGN_WORKER_IN_SERVE": "0", "PICCOLO_CONF": "lifedesign.piccolo_conf",
           "LIFEDESIGN_SECRET_KEY": "bench-secret-" + "x" * 40}
    env.pop("LIFEDESIGN_SMTP_URL", None)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("LIFEDESIGN_", "PICCOLO_"))})
    sys.path.insert(0, str(ROOT))
    tokens, events = await _setup(args.clients, args.seats, args.rounds)

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "lifedesign", "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                print(server.stderr.read().decode()[-2000:], file=sys.stderr)
                return 1
            time.sleep(0.1)
        health_lat: list[float] = []
        reg_lat: list[float] = []
        health_rps, reg_rps = [], []
        oversold = errors_5xx = other = 0
        for event_id in events:
            statuses, latencies, wall = await _burst(base, "GET", ["/health"] * len(tokens), [None] * len(tokens))
            health_lat += latencies
            health_rps.append(len(statuses) / wall)
            errors_5xx += sum(1 for s in statuses if s >= 500)
            path = f"/api/v1/events/{event_id}/registrations"
            statuses, latencies, wall = await _burst(base, "POST", [path] * len(tokens), tokens)
            reg_lat += latencies
            reg_rps.append(len(statuses) / wall)
            errors_5xx += sum(1 for s in statuses if s >= 500)
            other += sum(1 for s in statuses if s != 201 and s < 500)
            oversold += max(0, await _confirmed(event_id) - args.seats)
    finally:
        server.terminate()
        server.wait(timeout=20)

    result = {
        "database": "postgresql" if url.startswith("postgres") else "sqlite",
        "clients": args.clients, "seats": args.seats, "rounds": args.rounds,
        "registrations_per_s": round(statistics.median(reg_rps), 1),
        "p50_ms": round(_percentile(reg_lat, 0.5) * 1000, 1), "p95_ms": round(_percentile(reg_lat, 0.95) * 1000, 1),
        "health_per_s": round(statistics.median(health_rps), 1),
        "health_p50_ms": round(_percentile(health_lat, 0.5) * 1000, 1),
        "health_p95_ms": round(_percentile(health_lat, 0.95) * 1000, 1),
        "oversold": oversold, "errors_5xx": errors_5xx, "non_201": other,
    }
    result["throughput_ratio_vs_health"] = round(result["registrations_per_s"] / result["health_per_s"], 3)
    result["p50_ratio_vs_health"] = round(result["p50_ms"] / max(result["health_p50_ms"], 0.001), 1)
    print(f"{result['database']}: {args.clients} clients x {args.seats} seats x {args.rounds} rounds")
    print(f"  registrations/s {result['registrations_per_s']}  p50 {result['p50_ms']} ms  p95 {result['p95_ms']} ms")
    print(f"  GET /health/s  {result['health_per_s']}  p50 {result['health_p50_ms']} ms  p95 {result['health_p95_ms']} ms")
    print(f"  oversold {oversold}  5xx {errors_5xx}  other non-201 {other}")
    print(f"  ratio registrations/s : health/s = {result['throughput_ratio_vs_health']}")
    print("RESULT " + json.dumps(result))
    return 0 if oversold == 0 and errors_5xx == 0 else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
