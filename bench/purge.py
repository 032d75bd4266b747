"""Retention purge benchmark: a year of demo-scale data, purged in batches, with the longest write-lock hold.

    python bench/purge.py [--quick] [--database-url postgresql://…] [--registrations 50000] [--outbox 200000]

Generates, with bulk multi-row inserts, a year of ward activity starting today: students (40 % minors with a
guardian), host families with addresses, a year of past events with registrations, sent mail (outbox rows with
bodies, and `.eml` copies), login links, sessions, guardian consents, audit entries. Then moves the clock 400
days on (events.clock.travel) and runs `events.retention.run` — first `--dry-run`, then for real — timing every
write transaction the purge opens.

Baseline (same run, same rows): the outbox scrub as one unbatched UPDATE inside a transaction that is rolled back —
how long a purge without batches would hold the write lock.

Prints rows/s per category and overall, peak memory (RSS, and Python allocations during the purge), the longest
transaction (lock hold) against the one-shot baseline, and checks that no foreign key dangles and that the counts
that make statistics (registrations by status, outbox rows by kind and state) did not change. The last line is
`RESULT {json}`. Default: a temporary SQLite file; `--database-url` a PostgreSQL server (a scratch database is
created and dropped on it).
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
import random
import resource
import secrets
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHUNK = 400  # rows per INSERT statement (parameters stay below both engines' limits)
TRAVEL = timedelta(days=400)
BODY = ("Subject: =?utf-8?b?44CQ6YeR5rKi5Yy644CR?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "金沢区ライフデザイン・保育交流のお知らせです。" * 12).encode()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _insert(table: str, columns: list[str], rows: list[tuple]) -> None:
    from events.db import raw, write_transaction

    for start in range(0, len(rows), CHUNK):
        part = rows[start:start + CHUNK]
        values = ", ".join("(" + ", ".join("{}" for _ in columns) + ")" for _ in part)
        async with write_transaction():
            await raw(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}",
                      *[value for row in part for value in row])


async def _ids(table: str, where: str = "1 = 1") -> list[int]:
    from events.db import raw

    return [r["id"] for r in await raw(f"SELECT id FROM {table} WHERE {where} ORDER BY id")]


async def generate(args: argparse.Namespace, mail_dir: Path) -> dict[str, int]:
    """A year of activity, starting now: rows carry the times they would have had."""
    rng = random.Random(20260401)
    t0 = datetime.now(UTC).replace(microsecond=0)
    year = timedelta(days=365)

    def at(fraction: float) -> datetime:
        return t0 + year * fraction

    students = max(200, args.registrations // 10)
    families = max(20, students // 20)
    tag = secrets.token_hex(3)
    people = [(f"coord{i}-{tag}@ward.example.jp", f"担当 {i}", "", "ja", True, True, t0) for i in range(5)]
    people += [(f"s{i}-{tag}@school.example.jp", f"学生 {i}", f"がくせい {i}", "ja", True, True, t0)
               for i in range(students)]
    people += [(f"f{i}-{tag}@home.example.jp", f"家庭 {i}", "", "ja", True, True, t0) for i in range(families)]
    await _insert("person", ["email", "name", "kana", "locale", "active", "reminders", "created_at"], people)
    ids = await _ids("person")
    coordinators, student_ids, family_ids = ids[:5], ids[5:5 + students], ids[5 + students:]
    roles = [(p, "coordinator") for p in coordinators] + [(p, "student") for p in student_ids]
    roles += [(p, "host_family") for p in family_ids]
    await _insert("person_role", ["person", "role"], roles)
    minors = set(student_ids[: int(students * 0.4)])
    today = t0.date()
    profiles = []
    for index, person in enumerate(student_ids):
        minor = person in minors
        born = date(today.year - (16 if minor else 20), 1 + index % 12, 1 + index % 28)
        profiles.append((person, "high_school" if minor else "university", f"金沢{index % 40}高校", 1 + index % 3, born,
                         f"g{index}-{tag}@parent.example.jp" if minor else "", "保護者" if minor else ""))
    await _insert("student_profile", ["person", "school_level", "school_name", "grade", "birth_date", "guardian_email",
                                      "guardian_name"], profiles)
    await _insert("visit_household", ["person", "display_name", "district", "children_ages", "tags", "pets",
                                      "allergy_notes", "languages", "introduction", "vetted_on", "vetted_until",
                                      "created_at", "updated_at"],
                  [(p, f"家庭{i}", "六浦", "[3]", "[]", "", "", '["ja"]', "よろしくお願いします", today,
                    today + timedelta(days=int(365 * rng.random())), t0, t0) for i, p in enumerate(family_ids)])
    households = await _ids("visit_household")
    await _insert("visit_household_address", ["household", "postal_code", "address", "directions", "phone",
                                              "updated_at"],
                  [(h, "236-0053", f"横浜市金沢区六浦{h}-1", "", "045-000-0000", t0) for h in households])
    event_count = max(50, args.registrations // 80)
    events = [("seminar", f"ライフデザインセミナー 第{i}回", at(i / event_count), at(i / event_count) + timedelta(hours=2),
               100, 0, "completed", "public", coordinators[i % 5], t0, t0) for i in range(event_count)]
    await _insert("event", ["kind", "title", "starts_at", "ends_at", "capacity", "taken", "status", "visibility",
                            "created_by", "created_at", "updated_at"], events)
    event_ids = await _ids("event")
    regular = student_ids[len(student_ids) // 10:]  # the first tenth are one-timers: one early seminar each
    regs = []
    statuses = ["attended"] * 7 + ["no_show", "cancelled", "cancelled"]
    for k in range(args.registrations - len(student_ids) // 10):
        event_index = k % event_count
        person = regular[(k // event_count * 61 + event_index) % len(regular)]
        regs.append((event_ids[event_index], person, statuses[k % 10], '{"1": "家族との時間を考えたいから"}',
                     events[event_index][2] - timedelta(days=7), events[event_index][2] - timedelta(days=7)))
    for index, person in enumerate(student_ids[: len(student_ids) // 10]):
        event_index = index % max(1, event_count // 24)  # in the first two weeks
        regs.append((event_ids[event_index], person, "attended", "{}", events[event_index][2], events[event_index][2]))
    await _insert("registration", ["event", "person", "status", "answers", "created_at", "updated_at"], regs)
    reg_rows = await _ids("registration")
    consents = [(reg_rows[i], "registration", 0, regs[i][1], f"p{i}@parent.example.jp", "保護者",
                 secrets.token_hex(32), "2025-1", "参加への同意", "given", regs[i][4], regs[i][4] + timedelta(hours=72),
                 regs[i][4] + timedelta(hours=3)) for i in range(0, len(regs), 5) if regs[i][1] in minors]
    await _insert("guardian_consent", ["subject_id", "subject_kind", "guardian_name", "student", "guardian_email",
                                       "decided_from", "token_hash", "text_version", "purpose", "decision",
                                       "created_at", "expires_at", "decided_at"],
                  [(c[0], c[1], c[5], c[3], c[4], "", c[6], c[7], c[8], c[9], c[10], c[11], c[12]) for c in consents])
    outbox = []
    for i in range(args.outbox):
        sent = at(rng.random())
        outbox.append((f"bench:{tag}:{i}", "reminder", f"s{i % students}-{tag}@school.example.jp", "【金沢区】お知らせ",
                       BODY, "sent", 1, sent, sent, sent, "", ""))
    await _insert("outbox_message", ["idempotency_key", "kind", "recipient", "subject", "message", "status",
                                     "attempts", "due_at", "sent_at", "created_at", "last_error", "group_key"], outbox)
    tokens = [(secrets.token_hex(32), f"s{i % students}-{tag}@school.example.jp", at(i / args.tokens),
               at(i / args.tokens) + timedelta(minutes=10), None, "/") for i in range(args.tokens)]
    await _insert("login_token", ["token_hash", "email", "created_at", "expires_at", "used_at", "next_path"], tokens)
    # regular students log in (a session and the audit log's `login`, as events.auth records them); the one-timers
    # never come back, so the minors among them are due for anonymisation a year on
    sessions = [(secrets.token_hex(32), regular[i % len(regular)], secrets.token_hex(16), at(i / args.tokens),
                 at(i / args.tokens) + timedelta(hours=1), at(i / args.tokens) + timedelta(hours=1))
                for i in range(args.tokens // 2)]
    await _insert("web_session", ["id_hash", "person", "csrf_token", "created_at", "last_seen_at", "ended_at"], sessions)
    audit = [(at(i / args.audit), coordinators[i % 5], "staff_viewed_registrations", "event",
              str(event_ids[i % event_count]), "{}", "bench") for i in range(args.audit)]
    audit += [(s[3], s[1], "login", "person", str(s[1]), "{}", "bench") for s in sessions]
    await _insert("audit_entry", ["at", "actor", "action", "subject_type", "subject_id", "detail", "client"], audit)
    mail_dir.mkdir(parents=True, exist_ok=True)
    for i in range(args.files):
        path = mail_dir / f"{90_000_000 + i:08d}.eml"
        path.write_bytes(BODY)
        stamp = at(i / args.files).timestamp()
        os.utime(path, (stamp, stamp))
    from events.db import raw

    await raw("ANALYZE")  # as after any bulk load (autovacuum would, later): the planner sees the real sizes
    return {"people": len(people), "students": students, "minors": len(minors), "households": len(households),
            "events": event_count, "registrations": len(regs), "guardian_consents": len(consents),
            "outbox": args.outbox, "login_tokens": args.tokens, "sessions": len(sessions), "audit": len(audit),
            "mail_files": args.files}


async def statistics_snapshot() -> dict[str, int]:
    from events.db import raw

    out = {}
    for row in await raw("SELECT status, COUNT(*) AS n FROM registration GROUP BY status"):
        out[f"registration/{row['status']}"] = row["n"]
    for row in await raw("SELECT kind, status, COUNT(*) AS n FROM outbox_message GROUP BY kind, status"):
        out[f"outbox/{row['kind']}/{row['status']}"] = row["n"]
    return out


async def dangling() -> list[str]:
    from piccolo.conf.apps import Finder

    from events.db import raw

    broken = []
    for table in Finder().get_table_classes():
        for column in table._meta.foreign_key_columns:
            target = column._foreign_key_meta.resolved_references._meta.tablename
            name = column._meta.db_column_name
            rows = await raw(f"SELECT COUNT(*) AS n FROM {table._meta.tablename} t WHERE {name} IS NOT NULL AND "
                             f"NOT EXISTS (SELECT 1 FROM {target} r WHERE r.id = t.{name})")
            if rows[0]["n"]:
                broken.append(f"{table._meta.tablename}.{name}")
    return broken


class _Rollback(Exception):
    pass


async def one_shot_baseline(cutoff: datetime) -> float:
    """The outbox scrub as a single UPDATE, rolled back: the lock a purge without batches would hold."""
    from events import retention
    from events.db import raw, write_transaction

    began = time.perf_counter()
    with contextlib.suppress(_Rollback):
        async with write_transaction():
            await raw(f"UPDATE outbox_message SET {retention._SCRUB} WHERE {retention._OUTBOX_DUE}", b"", cutoff)
            raise _Rollback
    return time.perf_counter() - began


async def run(args: argparse.Namespace) -> dict:
    from events import clock, retention
    from events.config import config
    from lifedesign import areas  # noqa: F401 - every area's retention categories
    from lifedesign.bootstrap import configure_domain
    from lifedesign.migrate import migrate
    from lifedesign.settings import get_settings

    settings = get_settings()
    configure_domain(settings)
    await migrate(settings)
    began = time.perf_counter()
    generated = await generate(args, settings.mail_dir)
    generation_s = time.perf_counter() - began
    print(f"generated in {generation_s:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in generated.items()), flush=True)
    before = await statistics_snapshot()

    holds: list[float] = []
    original = retention.write_transaction

    @contextlib.asynccontextmanager
    async def timed_transaction():
        start = time.perf_counter()
        async with original() as tx:
            yield tx
        holds.append(time.perf_counter() - start)

    with clock.travel(TRAVEL):
        cutoff = retention.Period(config().retention_outbox_months, "months").before(clock.now())
        baseline_s = await one_shot_baseline(cutoff)
        preview = await retention.run(dry_run=True)
        print("due: " + ", ".join(f"{c.name} {c.due:,}" for c in preview.categories if c.due), flush=True)
        rss_before = _rss_mb()
        if args.tracemalloc:
            tracemalloc.start()
        retention.write_transaction = timed_transaction
        try:
            last_print = {"at": 0.0, "line": ""}

            def progress(item: retention.CategoryReport) -> None:
                line = f"  {item.name:<20} {item.done:>9,}/{item.due:,}"
                if line != last_print["line"] and (time.perf_counter() - last_print["at"] > 2 or item.done == item.due):
                    last_print.update(at=time.perf_counter(), line=line)
                    print(line, flush=True)

            report = await retention.run(progress=progress, batch=args.batch)
        finally:
            retention.write_transaction = original
        python_peak = tracemalloc.get_traced_memory()[1] / 2**20 if args.tracemalloc else None
        if args.tracemalloc:
            tracemalloc.stop()
    after = await statistics_snapshot()
    broken = await dangling()
    categories = {c.name: {"rows": c.done, "batches": c.batches, "seconds": round(c.seconds, 3),
                           "rows_per_s": round(c.done / c.seconds, 1) if c.seconds else None,
                           "longest_batch_s": round(c.longest_batch_s, 3)}
                  for c in report.categories if c.done}
    for name, item in categories.items():
        print(f"{name:<20} {item['rows']:>9,} rows  {item['batches']:>5} batches  "
              f"{item['rows_per_s'] or 0:>10,.0f} rows/s  longest {item['longest_batch_s']:.3f} s")
    longest = max(holds, default=0.0)
    result = {
        "database": settings.database_kind, "quick": args.quick, "generated": generated,
        "generation_s": round(generation_s, 1), "purged_rows": report.done, "purge_s": round(report.seconds, 2),
        "rows_per_s": round(report.done / report.seconds, 1) if report.seconds else None,
        "transactions": len(holds), "longest_lock_hold_s": round(longest, 3),
        "baseline_one_shot_outbox_scrub_s": round(baseline_s, 3),
        "lock_hold_vs_one_shot": round(longest / baseline_s, 3) if baseline_s else None,
        "peak_rss_mb": round(max(_rss_mb(), rss_before), 1), "python_peak_alloc_mb":
            round(python_peak, 1) if python_peak is not None else None,
        "statistics_unchanged": before == after, "dangling_foreign_keys": broken,
        "dry_run_told_the_truth": preview.counts() == report.counts(), "categories": categories,
    }
    print(f"purged {report.done:,} rows in {report.seconds:.1f} s = {result['rows_per_s']:,} rows/s; "
          f"{len(holds)} transactions, longest {longest:.3f} s (one unbatched outbox scrub: {baseline_s:.2f} s)")
    print(f"peak RSS {result['peak_rss_mb']} MB, Python allocations during the purge {result['python_peak_alloc_mb']} MB; "
          f"statistics unchanged: {before == after}; dangling foreign keys: {broken or 'none'}; "
          f"the dry run counted what went: {result['dry_run_told_the_truth']}")
    return result


async def _with_database(args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="lifedesign-bench-purge-"))
    scratch = ""
    url = args.database_url or f"sqlite:///{data_dir / 'bench.sqlite3'}"
    if args.database_url:
        import asyncpg

        scratch = f"lifedesign_bench_{secrets.token_hex(3)}"
        server = await asyncpg.connect(args.database_url)
        await server.execute(f'CREATE DATABASE "{scratch}"')
        await server.close()
        url = urlunsplit(urlsplit(args.database_url)._replace(path=f"/{scratch}"))
    os.environ.update({"LIFEDESIGN_DATA_DIR": str(data_dir), "LIFEDESIGN_DATABASE_URL": url,
                       "PICCOLO_CONF": "lifedesign.piccolo_conf", "LIFEDESIGN_SECRET_KEY": "bench-secret-" + "x" * 40})
    os.environ.pop("LIFEDESIGN_SMTP_URL", None)
    try:
        return await run(args)
    finally:
        if scratch:
            server = await asyncpg.connect(args.database_url)
            await server.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
            await server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="a PostgreSQL server (default: a temporary SQLite file)")
    parser.add_argument("--registrations", type=int, default=50_000)
    parser.add_argument("--outbox", type=int, default=200_000)
    parser.add_argument("--tokens", type=int, default=30_000, help="login links (and half as many sessions)")
    parser.add_argument("--audit", type=int, default=50_000)
    parser.add_argument("--files", type=int, default=20_000, help=".eml copies in the mail folder")
    parser.add_argument("--batch", type=int, default=500, help="rows (ids) per transaction to start with (adapts)")
    parser.add_argument("--no-tracemalloc", dest="tracemalloc", action="store_false")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (a tenth of the default sizes)")
    args = parser.parse_args()
    if args.quick:
        args.registrations, args.outbox, args.tokens, args.audit, args.files = 5_000, 20_000, 3_000, 5_000, 2_000
    result = asyncio.run(_with_database(args))
    print("RESULT " + json.dumps(result, ensure_ascii=False))
    return 0 if result["statistics_unchanged"] and not result["dangling_foreign_keys"] else 1


if __name__ == "__main__":
    sys.exit(main())
