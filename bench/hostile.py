"""Hostile-input benchmark: the login request's timing for known and unknown addresses, and an XLSX bomb.

    python bench/hostile.py [--quick] [--database-url postgresql://…] [--requests 200] [--bomb-mb 40]

1. Login timing (issue 14: known 29.8 ms vs unknown 20.7 ms). In-process, the work each handler waits for:
   before — `auth.request_login` (lookup, token, mail, awaited by the old handlers); after —
   `auth.accept_login_request` (the address checked and the rate limits counted; the rest runs after the
   answer). Then over HTTP (uvicorn on 127.0.0.1, the app as `lifedesign serve` runs it): POST
   /api/v1/auth/magic-link for known and unknown addresses, interleaved, with GET /health as the baseline.
   Rate-limit rows are cleared between requests (outside the timed part), so every request does the same work;
   a 20 ms pause before each request lets the previous one's after-the-answer work finish.
2. XLSX bomb: one inline string of --bomb-mb MB (the audit's was 1.6 GB). Before — the reader as it was
   (openpyxl `load_workbook(read_only=True)` and iterating the rows); after — `importing.read_sheet`, which
   refuses it from the declared sizes. Seconds and peak Python memory (tracemalloc), same file, same run.

Ratios: known : unknown (before and after), magic-link : /health, bomb before : after. Last line `RESULT {json}`.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("bench")]  # bench/calendar.py shadows calendar

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _environment(database_url: str) -> str:
    data_dir = tempfile.mkdtemp(prefix="lifedesign-bench-hostile-")
    os.environ.update({"LIFEDESIGN_DATA_DIR": data_dir, "LIFEDESIGN_SECRET_KEY": "bench-secret-" + "x" * 40,
                       "LIFEDESIGN_WORKER_IN_SERVE": "0", "PICCOLO_CONF": "lifedesign.piccolo_conf"})
    os.environ.pop("LIFEDESIGN_SMTP_URL", None)
    name = ""
    if database_url:
        import asyncpg

        name = f"lifedesign_bench_hostile_{os.getpid()}"

        async def create() -> None:
            connection = await asyncpg.connect(database_url)
            try:
                await connection.execute(f'CREATE DATABASE "{name}"')
            finally:
                await connection.close()

        asyncio.run(create())
        os.environ["LIFEDESIGN_DATABASE_URL"] = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    else:
        os.environ["LIFEDESIGN_DATABASE_URL"] = f"sqlite:///{data_dir}/bench.sqlite3"
    return name


def _drop(database_url: str, name: str) -> None:
    if not name:
        return
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


def _ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3) if values else 0.0


async def _clear_limits() -> None:
    from events.core.tables import RateLimitHit

    await RateLimitHit.delete(force=True)


def _order(i: int) -> tuple[str, str]:
    return ("known", "unknown") if i % 2 == 0 else ("unknown", "known")


async def login_timing(requests: int) -> dict:
    import httpx
    import uvicorn

    from events import auth
    from events.people import create_person
    from lifedesign import cli
    from lifedesign.app import create_app
    from lifedesign.bootstrap import configure_domain
    from lifedesign.migrate import migrate
    from lifedesign.settings import get_settings

    settings = get_settings()
    configure_domain(settings)
    await migrate(settings)
    for i in range(8):
        await create_person(f"known{i}@bench.example.jp", f"ベンチ {i}", roles=("host_family",))
    addresses = {"known": [f"known{i}@bench.example.jp" for i in range(8)],
                 "unknown": [f"nobody{i}@bench.example.jp" for i in range(8)]}
    service: dict[str, dict[str, list[float]]] = {"before": {"known": [], "unknown": []},
                                                  "after": {"known": [], "unknown": []}}
    for phase, work in (("before", auth.request_login), ("after", auth.accept_login_request)):
        for i in range(requests // 2):
            for kind in _order(i):  # alternate which goes first: no carry-over favours one kind
                await _clear_limits()
                began = time.perf_counter()
                await work(addresses[kind][i % 8], client="bench")
                service[phase][kind].append(time.perf_counter() - began)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(cli.server_config(create_app(settings, run_worker=False), "127.0.0.1", port,
                                              log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        await asyncio.sleep(0.05)
    http_times: dict[str, list[float]] = {"known": [], "unknown": [], "health": []}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for i in range(requests // 2):
            for kind in _order(i):
                await _clear_limits()
                await asyncio.sleep(0.02)  # the previous request's after-the-answer work is done: no carry-over
                began = time.perf_counter()
                response = await client.post("/api/v1/auth/magic-link", json={"email": addresses[kind][i % 8]})
                http_times[kind].append(time.perf_counter() - began)
                assert response.status_code == 202, response.text
            began = time.perf_counter()
            assert (await client.get("/health")).status_code == 200
            http_times["health"].append(time.perf_counter() - began)
    server.should_exit = True
    thread.join(timeout=10)
    figures = {
        "service_before_known_ms": _ms(service["before"]["known"]),
        "service_before_unknown_ms": _ms(service["before"]["unknown"]),
        "service_after_known_ms": _ms(service["after"]["known"]),
        "service_after_unknown_ms": _ms(service["after"]["unknown"]),
        "http_known_ms": _ms(http_times["known"]), "http_unknown_ms": _ms(http_times["unknown"]),
        "http_health_ms": _ms(http_times["health"]),
    }
    figures["ratio_before_known_to_unknown"] = round(
        figures["service_before_known_ms"] / max(figures["service_before_unknown_ms"], 1e-9), 3)
    figures["ratio_after_known_to_unknown"] = round(
        figures["service_after_known_ms"] / max(figures["service_after_unknown_ms"], 1e-9), 3)
    figures["ratio_http_known_to_unknown"] = round(figures["http_known_ms"] / max(figures["http_unknown_ms"], 1e-9), 3)
    figures["ratio_http_login_to_health"] = round(
        statistics.mean([figures["http_known_ms"], figures["http_unknown_ms"]]) / max(figures["http_health_ms"], 1e-9), 3)
    return figures


def _measured(read) -> tuple[float, float, str]:
    tracemalloc.start()
    began = time.perf_counter()
    try:
        outcome = read()
    except Exception as exc:  # the refusal is the expected outcome of "after"
        outcome = f"refused: {getattr(exc, 'code', type(exc).__name__)}"
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak / 2**20, outcome


def xlsx_bomb(megabytes: int) -> dict:
    from openpyxl import load_workbook

    from events.exchanges import importing
    from tests.xlsx_bomb import xlsx_bomb

    data = xlsx_bomb(megabytes << 20)

    def before() -> str:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        cells = sum(len(str(v or "")) for row in book.worksheets[0].iter_rows(values_only=True) for v in row)
        book.close()
        return f"read {cells} characters"

    after_s, after_mb, after_outcome = _measured(lambda: importing.read_sheet(data, "bomb.xlsx"))
    before_s, before_mb, before_outcome = _measured(before)
    return {"bomb_file_kb": round(len(data) / 1024, 1), "bomb_unzipped_mb": megabytes,
            "bomb_before_s": round(before_s, 4), "bomb_before_peak_mb": round(before_mb, 1),
            "bomb_before_outcome": before_outcome,
            "bomb_after_s": round(after_s, 4), "bomb_after_peak_mb": round(after_mb, 1),
            "bomb_after_outcome": after_outcome,
            "ratio_bomb_time_before_to_after": round(before_s / max(after_s, 1e-9), 1),
            "ratio_bomb_memory_before_to_after": round(before_mb / max(after_mb, 1e-9), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--database-url", default="", help="postgresql://… (a scratch database is created there)")
    parser.add_argument("--requests", type=int, default=200, help="login requests per measurement")
    parser.add_argument("--bomb-mb", type=int, default=40, help="unzipped size of the XLSX bomb's string")
    args = parser.parse_args()
    requests = 40 if args.quick else args.requests
    name = _environment(args.database_url)
    try:
        figures = {"database": "postgresql" if args.database_url else "sqlite", "requests": requests,
                   **asyncio.run(login_timing(requests)), **xlsx_bomb(args.bomb_mb)}
    finally:
        _drop(args.database_url, name)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key.ljust(width)}  {value}")
    print("RESULT " + json.dumps(figures, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
