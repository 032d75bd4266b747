"""Registration race benchmark: our request path against a bare Litestar app, one load generator, one run.

    python bench/registration.py [--database-url postgresql://…] [--quick] [--rounds 3]
                                 [--registrations 200] [--seats 10] [--concurrency 50]
                                 [--health-requests 3000] [--baseline-tree /tmp/perf-base]

Per tree (this checkout, and `--baseline-tree`, an older checkout to compare with: `git worktree add
/tmp/perf-base HEAD`) it makes a scratch database (a temporary SQLite file, or a database created and dropped on
the `--database-url` server), loads the racers (bulk, with API tokens) and one event per race, and starts
`lifedesign serve --no-worker` as a subprocess on 127.0.0.1 — on PostgreSQL also a second server with
`--workers 2` (an older tree without that option: two servers on two ports, the connections split between them).
The bench also starts a bare Litestar "hello" app on the same uvicorn settings: the framework's ceiling.

Every figure comes from one load generator (plain asyncio HTTP/1.1 keep-alive connections, cheap enough to leave
the cores to the servers), interleaved round by round so that drift hits all alike:
- `GET /` of the hello app and `GET /health` of each server: requests/s, p50/p95;
- the race: `--registrations` POST /api/v1/events/{id}/registrations for `--seats` seats from `--concurrency`
  connections at once: registrations/s, p50/p95, oversold and the seats/waiting split (checked in the database), 5xx,
  non-201;
- "all seated" (unless `--no-seated`): the same racers on an event with a seat for each, a seminar's usual case, where
  every registration also writes its calendar invite, its reminder and the reminder's opt-out secret;
- SQL statements per request, counted by the drivers in the server processes (bench/statement_counter, no
  change to the service): every statement SQLite ran or asyncpg sent, BEGIN/COMMIT/PRAGMA/pool resets included;
- server CPU per request (user + system of the server processes, from /proc; steady when the machine is busy);
- during each race, the share of all cores busy (every process: servers, PostgreSQL, this load generator), from
  /proc/stat: near 100 % the box, not the service, is the limit, and more processes cannot scale further.

Ratios: /health : hello (the bare app is measured right before every /health burst, so each pair meets the same
machine; medians over the pairs), registration : /health (both races), 2 processes : 1 (PostgreSQL), this tree :
baseline.
The exit code is 1 on any oversell, wrong split or 5xx. The last line is `RESULT {json}`.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys

# bench/ holds calendar.py, which would shadow the standard library's calendar
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("bench")]

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
COUNTER = Path(__file__).resolve().parent / "statement_counter"
SECRET = "bench-secret-" + "x" * 40

HELLO_APP = """
import sys, uvicorn
from litestar import Litestar, get

@get("/", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"status": "ok"}

uvicorn.run(Litestar([hello]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            backlog=4096)
"""


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot (/proc/stat; idle and iowait count as not busy)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # guest time is already inside user time
    return total - values[3] - values[4], total


def _machine_busy(since: tuple[int, int]) -> float:
    busy, total = _machine_ticks()
    return (busy - since[0]) / max(total - since[1], 1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


# ---------------------------------------------------------------- the load generator


class Connection:
    """One HTTP/1.1 keep-alive connection; a request is written whole, the answer read by Content-Length."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, head: bytes) -> int:
        assert self.reader and self.writer
        self.writer.write(head)
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        if close:
            await self.close()
            await self.open()
        return status

    async def close(self) -> None:
        if self.writer:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()


def _head(method: str, path: str, token: str | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if method == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Burst:
    statuses: list[int]
    latencies: list[float]
    wall: float

    @property
    def per_s(self) -> float:
        return len(self.statuses) / self.wall if self.wall else 0.0


async def burst(ports: list[int], heads: list[bytes], concurrency: int) -> Burst:
    """`concurrency` connections (spread over `ports`, as a load balancer would) send `heads`, all released at once."""
    connections = [Connection(ports[i % len(ports)]) for i in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))
    queue = list(reversed(heads))
    statuses: list[int] = []
    latencies: list[float] = []
    gate = asyncio.Event()

    async def drive(connection: Connection) -> None:
        await gate.wait()
        while queue:
            head = queue.pop()
            began = time.perf_counter()
            try:
                status = await connection.request(head)
            except (OSError, asyncio.IncompleteReadError):
                status = 599
                await connection.close()
                await connection.open()
            latencies.append(time.perf_counter() - began)
            statuses.append(status)

    tasks = [asyncio.create_task(drive(c)) for c in connections]
    await asyncio.sleep(0.05)
    began = time.perf_counter()
    gate.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - began
    await asyncio.gather(*(c.close() for c in connections))
    return Burst(statuses, latencies, wall)


# ---------------------------------------------------------------- a tree under test


async def _setup_in_tree(registrations: int, seats: int, events: int, seated: int = 0) -> dict:
    """Runs in a subprocess whose sys.path starts with the tree: the tree's own code loads its data."""
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
    now = utcnow()
    async with write_transaction():
        rows = await Person.insert(*[
            Person(email=f"bench-{i}@example.jp", name=f"ベンチ {i}", kana="", locale="ja", created_at=now)
            for i in range(registrations + 1)
        ]).returning(Person.id)
        ids = [r["id"] for r in rows]
        await PersonRole.insert(PersonRole(person=ids[0], role="coordinator"),
                                *[PersonRole(person=i, role="student") for i in ids[1:]])
        tokens = [f"ld_bench_{secrets.token_urlsafe(24)}" for _ in ids[1:]]
        await ApiToken.insert(*[
            ApiToken(person=i, label="bench", token_hash=digest(t), prefix=t[:10], created_at=now)
            for i, t in zip(ids[1:], tokens, strict=True)
        ])
    coordinator = Actor(ids[0], frozenset({"coordinator"}), "bench")
    start = datetime.now(UTC) + timedelta(days=10)
    made: dict[str, list[int]] = {"events": [], "seated": []}
    for kind, count, capacity in (("events", events, seats), ("seated", seated, registrations)):
        for _ in range(count):
            event_id = await schedule.create_event({
                "title": "ベンチマーク・ライフデザインセミナー", "venue": "金沢公会堂", "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=2)).isoformat(), "capacity": capacity}, actor=coordinator)
            await schedule.publish_event(event_id, actor=coordinator)
            made[kind].append(event_id)
    return {"tokens": tokens, **made}


@dataclass
class Server:
    name: str
    ports: list[int]
    processes: list[subprocess.Popen]
    count_dir: Path

    def statements(self) -> int:
        total = 0
        for path in self.count_dir.glob("*.json"):
            with contextlib.suppress(ValueError, OSError):
                total += json.loads(path.read_text())["count"]
        return total

    def texts(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for path in self.count_dir.glob("*.json"):
            with contextlib.suppress(ValueError, OSError):
                for text, n in json.loads(path.read_text()).get("texts", {}).items():
                    merged[text] = merged.get(text, 0) + n
        return merged

    async def settled_statements(self) -> int:
        """The count once the servers went quiet (the counter files are written ten times a second)."""
        last, stable_since = self.statements(), time.monotonic()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            now = self.statements()
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since > 0.35:
                break
        return last

    def cpu_seconds(self) -> float:
        """User + system CPU of the server processes and their children (`--workers`), from /proc."""
        pids = {p.pid for p in self.processes}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) in pids:
                        pids.add(int(entry.name))
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@dataclass
class Tree:
    label: str
    path: Path
    database_url: str
    data_dir: Path
    tokens: list[str] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    seated: list[int] = field(default_factory=list)  # events with a seat for every racer
    has_workers: bool = False

    def env(self, count_dir: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFEDESIGN_", "PICCOLO_", "PYTHONPATH"))}
        env.update({"LIFEDESIGN_DATA_DIR": str(self.data_dir), "LIFEDESIGN_DATABASE_URL": self.database_url,
                    "LIFEDESIGN_WORKER_IN_SERVE": "0", "PICCOLO_CONF": "lifedesign.piccolo_conf",
                    "LIFEDESIGN_SECRET_KEY": SECRET, "PYTHONPATH": str(self.path),
                    # up to 6 servers at once (two trees, 1 + 2 processes each) under max_connections 100
                    "LIFEDESIGN_DB_POOL_SIZE": os.environ.get("LIFEDESIGN_BENCH_POOL_SIZE", "12")})
        if count_dir is not None:
            env["PYTHONPATH"] = f"{COUNTER}{os.pathsep}{self.path}"
            env["LIFEDESIGN_BENCH_STATEMENTS"] = str(count_dir)
            if os.environ.get("LIFEDESIGN_BENCH_TRACE"):
                env["LIFEDESIGN_BENCH_TRACE"] = os.environ["LIFEDESIGN_BENCH_TRACE"]
        return env

    def setup(self, registrations: int, seats: int, events: int, seated: int = 0) -> None:
        out = subprocess.run(
            [sys.executable, __file__, "--setup-in-tree", json.dumps([registrations, seats, events, seated])],
            cwd=self.path, env=self.env(), capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise SystemExit(f"setup in {self.path} failed:\n{out.stderr[-3000:]}")
        loaded = json.loads(out.stdout.strip().splitlines()[-1])
        self.tokens, self.events, self.seated = loaded["tokens"], loaded["events"], loaded.get("seated", [])
        help_text = subprocess.run([sys.executable, "-m", "lifedesign", "serve", "--help"], cwd=self.path,
                                   env=self.env(), capture_output=True, text=True, timeout=120).stdout
        self.has_workers = "--workers" in help_text

    def start(self, name: str, processes: int) -> Server:
        count_dir = Path(tempfile.mkdtemp(prefix="statements-", dir=self.data_dir))
        if processes > 1 and self.has_workers:
            ports = [_free_port()]
            commands = [["--workers", str(processes)]]
        else:
            ports = [_free_port() for _ in range(processes)]
            commands = [[] for _ in ports]
        started = []
        for port, extra in zip(ports, commands, strict=True):
            started.append(_started(
                [sys.executable, "-m", "lifedesign", "serve", "--no-worker", "--host", "127.0.0.1", "--port",
                 str(port), *extra], self.data_dir / f"serve-{port}.log", cwd=self.path, env=self.env(count_dir)))
        server = Server(name, ports, started, count_dir)
        for port, process in zip(ports, started, strict=True):
            _wait_for(port, "/health", process)
        return server


def _started(command: list[str], log: Path, **kwargs) -> subprocess.Popen:
    """A child whose stderr (the access log) goes to `log`: a pipe nobody reads fills up and stalls the server."""
    with open(log, "wb") as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, **kwargs)
    process.log_path = log  # type: ignore[attr-defined]
    return process


def _wait_for(port: int, path: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = Path(getattr(process, "log_path", ""))
            tail = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
            raise SystemExit(f"server on port {port} exited:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not answer {path}")


# ---------------------------------------------------------------- databases


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


async def _seat_counts(tree: Tree, event_id: int) -> dict[str, int]:
    sql = "SELECT status, COUNT(*) AS n FROM registration WHERE event = {} GROUP BY status"
    if tree.database_url.startswith("postgres"):
        import asyncpg

        connection = await asyncpg.connect(tree.database_url)
        try:
            rows = await connection.fetch(sql.format("$1"), event_id)
        finally:
            await connection.close()
        return {r["status"]: r["n"] for r in rows}
    import sqlite3

    with contextlib.closing(sqlite3.connect(tree.database_url.removeprefix("sqlite:///"))) as connection:
        return dict(connection.execute(sql.format("?"), (event_id,)).fetchall())


# ---------------------------------------------------------------- the run


@dataclass
class Tally:
    per_s: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    statements: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    machine_busy: list[float] = field(default_factory=list)  # share of all cores busy (every process) meanwhile
    errors_5xx: int = 0
    non_201: int = 0
    oversold: int = 0
    wrong_split: int = 0  # races that did not end with exactly `seats` seats held and the rest waiting

    def add(self, result: Burst, statements: int | None = None, cpu_s: float | None = None,
            busy: float | None = None) -> None:
        self.per_s.append(result.per_s)
        if busy is not None:
            self.machine_busy.append(busy)
        self.latencies += result.latencies
        self.errors_5xx += sum(1 for s in result.statuses if s >= 500)
        if statements is not None:
            self.statements.append(statements / len(result.statuses))
        if cpu_s is not None:
            self.cpu_ms.append(cpu_s * 1000 / len(result.statuses))

    def summary(self) -> dict:
        out = {"per_s": round(statistics.median(self.per_s), 1) if self.per_s else 0.0,
               "p50_ms": round(_percentile(self.latencies, 0.5) * 1000, 2),
               "p95_ms": round(_percentile(self.latencies, 0.95) * 1000, 2), "errors_5xx": self.errors_5xx}
        if self.statements:
            out["statements"] = round(statistics.median(self.statements), 2)
        if self.cpu_ms:
            out["server_cpu_ms"] = round(statistics.median(self.cpu_ms), 2)
        if self.machine_busy:
            out["machine_busy"] = round(statistics.median(self.machine_busy), 2)
        return out


def _print_trace(label: str, before: dict[str, int], after: dict[str, int], registrations: int) -> None:
    """LIFEDESIGN_BENCH_TRACE=1: how often each statement ran per registration of one race."""
    diff = {t: n - before.get(t, 0) for t, n in after.items()}
    print(f"\n{label}: statements of one race ({registrations} registrations)")
    for text, n in sorted(diff.items(), key=lambda item: -item[1]):
        if n:
            print(f"  {n / registrations:6.2f}  {text}")


async def _race(server: Server, tree: Tree, event_id: int, tally: Tally, seats: int, concurrency: int,
                trace: str) -> None:
    """Every racer registers for `event_id` (`seats` seats) at once; the split is checked in the database."""
    heads = [_head("POST", f"/api/v1/events/{event_id}/registrations", t) for t in tree.tokens]
    before, cpu, ticks = await server.settled_statements(), server.cpu_seconds(), _machine_ticks()
    texts = server.texts() if trace else {}
    result = await burst(server.ports, heads, concurrency)
    tally.add(result, await server.settled_statements() - before, server.cpu_seconds() - cpu, _machine_busy(ticks))
    tally.non_201 += sum(1 for s in result.statuses if s != 201 and s < 500)
    counts = await _seat_counts(tree, event_id)
    held = sum(n for s, n in counts.items() if s in ("confirmed", "pending_consent"))
    tally.oversold += max(0, held - seats)
    tally.wrong_split += int((held, counts.get("waitlisted", 0)) != (
        min(seats, len(heads)), max(0, len(heads) - seats)))
    if trace:
        _print_trace(trace, texts, server.texts(), len(heads))


async def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="lifedesign-bench-"))
    postgres = args.database_url.startswith("postgres")
    tag = secrets.token_hex(3)
    trees: list[Tree] = []
    scratch: list[str] = []
    for label, path in [("current", ROOT), *([("baseline", Path(args.baseline_tree).resolve())]
                                              if args.baseline_tree else [])]:
        data_dir = work / label
        data_dir.mkdir()
        if postgres:
            name = f"lifedesign_bench_{tag}_{label}"
            url = await _scratch_database(args.database_url, name)
            scratch.append(name)
        else:
            url = f"sqlite:///{data_dir / 'bench.sqlite3'}"
        trees.append(Tree(label, path, url, data_dir))
    configs = [1, 2] if postgres else [1]
    for tree in trees:
        tree.setup(args.registrations, args.seats, args.rounds * len(configs),
                   args.rounds * len(configs) if args.seated else 0)
    hello_port = _free_port()
    hello = _started([sys.executable, "-c", HELLO_APP, str(hello_port)], work / "hello.log", cwd=work)
    servers: dict[tuple[str, int], Server] = {}
    try:
        _wait_for(hello_port, "/", hello)
        for tree in trees:
            for processes in configs:
                servers[(tree.label, processes)] = tree.start(f"{tree.label}×{processes}", processes)
        tallies: dict[str, Tally] = {"hello": Tally()}
        health_heads = [_head("GET", "/health")] * args.health_requests
        for round_no in range(args.rounds):
            for tree in trees:
                for index, processes in enumerate(configs):
                    server = servers[(tree.label, processes)]
                    key = f"{tree.label}_{processes}p"
                    health = tallies.setdefault(f"{key}_health", Tally())
                    race = tallies.setdefault(f"{key}_registration", Tally())
                    # The bare app right before each /health burst: the pair meets the same machine (a race just
                    # run leaves PostgreSQL's background work behind for whatever is measured next).
                    tallies["hello"].add(await burst([hello_port], [_head("GET", "/")] * args.health_requests,
                                                     args.concurrency))
                    before, cpu = await server.settled_statements(), server.cpu_seconds()
                    result = await burst(server.ports, health_heads, args.concurrency)
                    health.add(result, await server.settled_statements() - before, server.cpu_seconds() - cpu)
                    traced = bool(round_no == args.rounds - 1 and os.environ.get("LIFEDESIGN_BENCH_TRACE"))
                    slot = round_no * len(configs) + index
                    await _race(server, tree, tree.events[slot], race, args.seats, args.concurrency,
                                key if traced else "")
                    if args.seated:  # the same racers on an event with a seat for each: a seminar's usual case
                        await _race(server, tree, tree.seated[slot], tallies.setdefault(f"{key}_seated", Tally()),
                                    len(tree.tokens), args.concurrency, f"{key}_seated" if traced else "")
    finally:
        for server in servers.values():
            server.stop()
        hello.terminate()
        hello.wait(timeout=20)
        for name in scratch:
            await _scratch_database(args.database_url, name, drop_only=True)
        shutil.rmtree(work, ignore_errors=True)

    result: dict = {"database": "postgresql" if postgres else "sqlite", "registrations": args.registrations,
                    "seats": args.seats, "concurrency": args.concurrency, "rounds": args.rounds,
                    "health_requests": args.health_requests, "load_average": round(os.getloadavg()[0], 2),
                    "hello": tallies["hello"].summary()}
    for key, tally in tallies.items():
        if key != "hello":
            result[key] = {**tally.summary(), **({"oversold": tally.oversold, "non_201": tally.non_201,
                                                  "wrong_split": tally.wrong_split}
                                                 if key.endswith(("registration", "seated")) else {})}
    ratios: dict[str, float] = {}
    hello_rate = result["hello"]["per_s"] or 1.0
    for tree in trees:
        one = f"{tree.label}_1p"
        ratios[f"{tree.label}_health_vs_hello"] = round(result[f"{one}_health"]["per_s"] / hello_rate, 3)
        for processes in configs:
            key = f"{tree.label}_{processes}p"
            ratios[f"{key}_registration_vs_health"] = round(
                result[f"{key}_registration"]["per_s"] / max(result[f"{one}_health"]["per_s"], 0.001), 3)
            if f"{key}_seated" in result:
                ratios[f"{key}_seated_vs_health"] = round(
                    result[f"{key}_seated"]["per_s"] / max(result[f"{one}_health"]["per_s"], 0.001), 3)
        if postgres:
            ratios[f"{tree.label}_2p_vs_1p"] = round(
                result[f"{tree.label}_2p_registration"]["per_s"] / max(result[f"{one}_registration"]["per_s"], 0.001), 3)
    if args.baseline_tree:
        ratios["registration_current_vs_baseline"] = round(
            result["current_1p_registration"]["per_s"] / max(result["baseline_1p_registration"]["per_s"], 0.001), 2)
        if "current_1p_seated" in result and "baseline_1p_seated" in result:
            ratios["seated_current_vs_baseline"] = round(
                result["current_1p_seated"]["per_s"] / max(result["baseline_1p_seated"]["per_s"], 0.001), 2)
        ratios["health_current_vs_baseline"] = round(
            result["current_1p_health"]["per_s"] / max(result["baseline_1p_health"]["per_s"], 0.001), 2)
    result["ratios"] = ratios
    return result


def report(result: dict) -> None:
    print(f"\n{result['database']}: {result['registrations']} registrations for {result['seats']} seats from "
          f"{result['concurrency']} connections, {result['health_requests']} GETs, {result['rounds']} rounds "
          f"(load average {result['load_average']})")
    hello = result["hello"]
    print(f"  {'bare Litestar GET /':<34} {hello['per_s']:>8.1f}/s  p50 {hello['p50_ms']:>7.2f} ms  "
          f"p95 {hello['p95_ms']:>7.2f} ms")
    for key, item in result.items():
        if not isinstance(item, dict) or key in ("hello", "ratios"):
            continue
        label = key.replace("_", " ").replace("1p", "1 process").replace("2p", "2 processes").replace(
            " seated", " all seated")
        line = (f"  {label:<34} {item['per_s']:>8.1f}/s  p50 {item['p50_ms']:>7.2f} ms  p95 {item['p95_ms']:>7.2f} ms"
                f"  statements {item.get('statements', 0):>6.2f}  cpu {item.get('server_cpu_ms', 0):>6.2f} ms"
                f"  5xx {item['errors_5xx']}")
        if "machine_busy" in item:
            line += f"  machine {item['machine_busy'] * 100:.0f} % busy"
        if "oversold" in item:
            line += f"  oversold {item['oversold']}  non-201 {item['non_201']}  wrong split {item['wrong_split']}"
        print(line)
    print("  ratios: " + ", ".join(f"{k} {v}" for k, v in result["ratios"].items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="a PostgreSQL server (scratch databases are made on it)")
    parser.add_argument("--registrations", type=int, default=200)
    parser.add_argument("--seats", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--health-requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-seated", dest="seated", action="store_false",
                        help="skip the second race, where every registration takes a seat")
    parser.add_argument("--baseline-tree", default="", help="an older checkout to measure in the same run")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (50 registrations, 5 seats, 1 round)")
    parser.add_argument("--setup-in-tree", default="", help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)  # the old name of --registrations
    args = parser.parse_args()
    if args.setup_in_tree:  # a subprocess started by Tree.setup, with the tree first on sys.path
        sys.path.insert(0, os.getcwd())
        print(json.dumps(asyncio.run(_setup_in_tree(*json.loads(args.setup_in_tree)))))
        return 0
    if args.clients:
        args.registrations = args.clients
    if args.quick:
        args.registrations, args.seats, args.rounds, args.health_requests = 50, 5, 1, 500
        args.concurrency = min(args.concurrency, 25)
    result = asyncio.run(run(args))
    report(result)
    print("RESULT " + json.dumps(result))
    failed = any(isinstance(v, dict) and (v.get("oversold") or v.get("errors_5xx") or v.get("wrong_split"))
                 for v in result.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
