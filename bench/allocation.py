"""Benchmark of the fair lottery (events.lottery v2) on a seeded draw the size of a busy city programme.

10,000 applications in 3 priority groups (ward ties, first-time participants, everyone else), 500 of them
companion groups of 2–4 people, for 2,000 seats. It prints, as medians of repeated runs in this process:

- ``allocate``           the draw itself (priority, then sha256(seed:ticket); groups whole or not at all),
- ``verify``             what anyone runs on the public record (commitment check and a full re-draw),
- ``plain sort``         ``sorted()`` of the same ticket strings: the baseline, measured in the same run,

with the ratios allocate : plain sort and verify : plain sort, and checks the result (priority respected,
no group split, seats never exceeded). With ``--service`` it also draws the same applications through the
service on a scratch SQLite database (events.seminars.draws: ledger, draw record, result mails queued in the
outbox, audit) and prints that time against ``allocate``.

    python bench/allocation.py [--quick] [--service] [--applications N] [--groups N] [--seats N] [--seed S]

The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, bench/ would shadow standard modules (bench/calendar.py): import from the root.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from events import lottery  # noqa: E402
from events.seminars.allocation import TICKET_ALPHABET, TICKET_LENGTH  # noqa: E402

PRIORITY_SHARES = ((3, 0.25), (2, 0.25), (0, 0.50))  # both rules met, one rule met, none (3 groups)


def make_entries(applications: int, groups: int, rng: random.Random) -> list[lottery.Entry]:
    tickets: set[str] = set()
    while len(tickets) < applications:
        tickets.add("".join(rng.choice(TICKET_ALPHABET) for _ in range(TICKET_LENGTH)))
    ordered = sorted(tickets)
    rng.shuffle(ordered)
    entries = []
    for index, ticket in enumerate(ordered):
        roll, priority = rng.random(), 0
        for value, share in PRIORITY_SHARES:
            if roll < share:
                priority = value
                break
            roll -= share
        entries.append(lottery.Entry(ticket, priority, rng.randint(2, 4) if index < groups else 1))
    return entries


def check(entries: list[lottery.Entry], seats: int, result: lottery.Allocation) -> dict[str, object]:
    """The rules, checked on the result: seats never exceeded, every ticket exactly once, and a lower
    priority ticket wins only where no higher one that would have fitted was left waiting."""
    by_ticket = {e.ticket: e for e in entries}
    used = sum(by_ticket[t].size for t in result.winners)
    assert used <= seats, (used, seats)
    assert sorted(result.winners + result.waitlist) == sorted(by_ticket), "a ticket lost or doubled"
    smallest_waiting: dict[int, int] = {}
    for ticket in result.waitlist:
        entry = by_ticket[ticket]
        smallest_waiting[entry.priority] = min(smallest_waiting.get(entry.priority, 99), entry.size)
    left = seats - used
    for ticket in result.winners:
        entry = by_ticket[ticket]
        for priority, size in smallest_waiting.items():
            assert not (priority > entry.priority and size <= left + entry.size), "priority not respected"
    return {"seats_used": used, "winners": len(result.winners), "waiting": len(result.waitlist),
            "group_winners": sum(1 for t in result.winners if by_ticket[t].size > 1)}


def median_seconds(run, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def service_draw(entries: list[lottery.Entry], seats: int) -> dict[str, float]:
    """The same applications drawn by the service on a scratch SQLite database."""
    from datetime import timedelta

    from events.access import Actor
    from events.core.tables import OutboxMessage, Person, PersonRole
    from events.db import utcnow, write_transaction
    from events.seminars import draws, schedule
    from events.seminars.tables import Registration
    from lifedesign.areas import INSTALLED  # importing installs the areas' signals (result mails, invites)
    from lifedesign.bootstrap import configure_domain
    from lifedesign.migrate import migrate
    from lifedesign.settings import get_settings

    assert INSTALLED
    settings = get_settings()
    configure_domain(settings)
    await migrate(settings)
    now = utcnow()
    people_needed = sum(e.size for e in entries) + 1
    async with write_transaction():
        ids = [r["id"] for r in await Person.insert(*[
            Person(email=f"alloc-{i}@example.jp", name=f"申込 {i}", kana="", locale="ja", created_at=now)
            for i in range(people_needed)]).returning(Person.id)]
        await PersonRole.insert(PersonRole(person=ids[0], role="coordinator"))
    coordinator = Actor(ids[0], frozenset({"coordinator"}), "bench")
    start = now + timedelta(days=30)
    event_id = await schedule.create_event({
        "title": "抽選ベンチ", "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat(),
        "capacity": seats, "allocation": "lottery", "audience": "anyone", "max_companions": 3,
        "registration_closes_at": (start - timedelta(days=7)).isoformat()}, actor=coordinator)
    await schedule.publish_event(event_id, actor=coordinator)
    rows, person = [], iter(ids[1:])
    for entry in entries:
        key = entry.ticket if entry.size > 1 else ""
        for _ in range(entry.size):
            rows.append(Registration(event=event_id, person=next(person), status="applied", created_at=now,
                                     updated_at=now, lottery_ticket=entry.ticket, priority=entry.priority,
                                     group_key=key))
    async with write_transaction():
        for chunk in range(0, len(rows), 500):
            await Registration.insert(*rows[chunk:chunk + 500])
    started = time.perf_counter()
    drawn = await draws.draw_lottery(event_id, actor=coordinator)
    seconds = time.perf_counter() - started
    verified = await draws.verify_draw(event_id)
    assert verified["ok"], "the service's draw does not verify"
    assert len(drawn["winners"]) == len(lottery.allocate(entries, seats, drawn["seed"]).winners)
    mails = await OutboxMessage.count()
    return {"service_draw_s": round(seconds, 3), "service_mails_queued": mails, "service_verify_ok": True}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 applications, 50 groups, fewer repeats")
    parser.add_argument("--service", action="store_true", help="also draw through the service (scratch SQLite)")
    parser.add_argument("--applications", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--seats", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args()
    if args.quick:
        args.applications, args.groups, args.seats = 1_000, 50, 200
    repeats = 5 if args.quick else 11
    rng = random.Random(args.seed)
    entries = make_entries(args.applications, args.groups, rng)
    seed = lottery.new_seed(rng.randbytes(32))
    published = lottery.commitment(seed)
    tickets = [e.ticket for e in entries]

    result = lottery.allocate(entries, args.seats, seed)
    facts = check(entries, args.seats, result)
    assert lottery.verify_allocation(entries, args.seats, seed, published, result)
    plain = median_seconds(lambda: sorted(tickets), repeats)
    draw = median_seconds(lambda: lottery.allocate(entries, args.seats, seed), repeats)
    verify = median_seconds(lambda: lottery.verify_allocation(entries, args.seats, seed, published, result), repeats)
    out: dict[str, object] = {
        "applications": len(entries), "companion_groups": args.groups, "priority_groups": len(PRIORITY_SHARES),
        "seats": args.seats, **facts,
        "allocate_ms": round(draw * 1000, 2), "verify_ms": round(verify * 1000, 2),
        "plain_sort_ms": round(plain * 1000, 3),
        "allocate_vs_plain_sort": round(draw / plain, 1), "verify_vs_plain_sort": round(verify / plain, 1),
    }
    print(f"{len(entries):,} applications ({args.groups} companion groups, {len(PRIORITY_SHARES)} priority groups), "
          f"{args.seats:,} seats; median of {repeats}")
    print(f"  allocate    {out['allocate_ms']:>9} ms   x{out['allocate_vs_plain_sort']} plain sort")
    print(f"  verify      {out['verify_ms']:>9} ms   x{out['verify_vs_plain_sort']} plain sort")
    print(f"  plain sort  {out['plain_sort_ms']:>9} ms   (sorted() of the same tickets, baseline)")
    print(f"  winners {facts['winners']:,} ({facts['group_winners']} groups), seats used {facts['seats_used']:,}, "
          f"waiting {facts['waiting']:,}; priority and groups checked")
    if args.service:
        with tempfile.TemporaryDirectory() as folder:
            os.environ["LIFEDESIGN_DATABASE_URL"] = f"sqlite:///{folder}/allocation.sqlite3"
            os.environ["LIFEDESIGN_DATA_DIR"] = folder
            served = asyncio.run(service_draw(entries, args.seats))
        out.update(served)
        out["service_vs_allocate"] = round(served["service_draw_s"] / draw, 1)
        print(f"  service draw {served['service_draw_s']} s on SQLite (ledger, record, {served['service_mails_queued']:,} "
              f"mails queued, audit)   x{out['service_vs_allocate']} allocate")
    print("RESULT " + json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
