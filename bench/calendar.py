"""Benchmark: building a 1,000-event feed, and answering a conditional GET (304) without rebuilding it.

Baseline (same run): icalendar serialising the same 1,000 already-built VEVENTs alone (`Calendar.to_ical`).
Then the same through the service's HTTP path (GET /calendar/<token>.ics on a real database, in-process ASGI
client): a full 200, a 304 answered from the token's cached fingerprint, and a 304 after a rebuild.
Run: python bench/calendar.py [--quick] [--no-http] [--database-url postgresql://...].
The last line is `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

# This file is named like the stdlib `calendar` module (which icalendar imports): drop bench/ from the path.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

from icalendar import Calendar, Event  # noqa: E402

from events.ical import (  # noqa: E402
    TOKYO,
    CalendarEvent,
    build_feed,
    etag_matches,
    event_uid,
    feed_etag,
    feed_fingerprint,
)

FEED_NAME = "金沢区のイベント（山田 太郎）"


def make_events(count: int) -> list[CalendarEvent]:
    start = datetime(2025, 4, 1, 10, 0, tzinfo=TOKYO)
    kinds = ("seminar", "home_visit", "staff_exchange")
    return [
        CalendarEvent(
            uid=event_uid(kinds[i % 3], i, 34, "lifedesign.example"),
            sequence=i % 4,
            summary=f"金沢若者ライフデザインセミナー 第{i}回「仕事と家庭、どう両立する？」",
            description="持ち物: 筆記用具, 上履き; 当日は直接会場へお越しください。\n問い合わせ: こども家庭支援課",
            location="金沢区役所 7階 会議室, 横浜市金沢区泥亀2-9-1",
            url=f"https://lifedesign.example/events/{i}",
            starts_at=start + timedelta(days=i // 3, hours=i % 3 * 3),
            ends_at=start + timedelta(days=i // 3, hours=i % 3 * 3 + 2),
            last_modified=datetime(2025, 3, 1, tzinfo=UTC) + timedelta(minutes=i),
        )
        for i in range(count)
    ]


def baseline_calendar(events: list[CalendarEvent]) -> Calendar:
    """The same events as plain icalendar objects, built outside the timed region."""
    calendar = Calendar()
    calendar.add("prodid", "-//bench//JA")
    calendar.add("version", "2.0")
    for event in events:
        vevent = Event()
        vevent.add("uid", event.uid)
        vevent.add("dtstamp", event.last_modified)
        vevent.add("sequence", event.sequence)
        vevent.add("dtstart", event.starts_at.astimezone(TOKYO))
        vevent.add("dtend", event.ends_at.astimezone(TOKYO))
        vevent.add("summary", event.summary)
        vevent.add("location", event.location)
        vevent.add("description", event.description)
        vevent.add("url", event.url)
        calendar.add_component(vevent)
    return calendar


def timed(function: Callable[[], object], repeats: int, inner: int = 1) -> float:
    """Median seconds per call over `repeats` samples of `inner` calls each."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(inner):
            function()
        samples.append((time.perf_counter() - started) / inner)
    return statistics.median(samples)


async def _http_feed(count: int, repeats: int, database_url: str | None) -> dict[str, object]:
    """The feed through the service: a person holding `count` confirmed places, served over ASGI."""
    import tempfile
    from urllib.parse import urlsplit, urlunsplit

    data_dir = tempfile.mkdtemp(prefix="lifedesign-bench-")
    scratch = ""
    if database_url:  # a throwaway database on that server, dropped afterwards; never the one named
        import asyncpg

        scratch = f"lifedesign_bench_{os.getpid()}"
        server = await asyncpg.connect(database_url)
        await server.execute(f'CREATE DATABASE "{scratch}"')
        await server.close()
        database_url = urlunsplit(urlsplit(database_url)._replace(path=f"/{scratch}"))
    os.environ.update({
        "LIFEDESIGN_DATA_DIR": data_dir, "LIFEDESIGN_SECRET_KEY": "bench-secret-" + "x" * 40,
        "LIFEDESIGN_WORKER_IN_SERVE": "0", "PICCOLO_CONF": "lifedesign.piccolo_conf",
        "LIFEDESIGN_DATABASE_URL": database_url or f"sqlite:///{data_dir}/bench.sqlite3",
    })
    try:
        return await _http_feed_in(count, repeats)
    finally:
        if scratch:
            import asyncpg

            server = await asyncpg.connect(urlunsplit(urlsplit(database_url)._replace(path="/postgres")))
            await server.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
            await server.close()


async def _http_feed_in(count: int, repeats: int) -> dict[str, object]:
    from litestar.testing import AsyncTestClient

    from events import people
    from events.db import utcnow
    from events.invites import feeds
    from events.invites.tables import CalendarFeedToken
    from events.seminars.tables import Event, Registration
    from lifedesign.app import create_app
    from lifedesign.migrate import migrate
    from lifedesign.settings import get_settings

    settings = get_settings()
    app = create_app(settings, run_worker=False, pool=True)  # as `lifedesign serve` runs
    await migrate(settings)
    person = await people.create_person("bench@example.jp", "山田 太郎", roles=("student",),
                                        student=people.StudentInfo("university", "横浜市立大学", 2,
                                                                   __import__("datetime").date(2004, 5, 1)))
    now = utcnow()
    events = make_events(count)
    rows = await Event.insert(*[
        Event(kind=e.uid.split("-")[1], title=e.summary, description=e.description, venue=e.location,
              starts_at=e.starts_at, ends_at=e.ends_at, status="published", capacity=40, created_at=now,
              updated_at=e.last_modified)
        for e in events
    ]).returning(Event.id)
    await Registration.insert(*[
        Registration(event=row["id"], person=person, status="confirmed", created_at=now, updated_at=now)
        for row in rows
    ])
    token = await feeds.issue_token(person, settings.secret_key)
    path = f"/calendar/{token}.ics"
    async with AsyncTestClient(app=app, base_url=settings.base_url) as client:
        first = await client.get(path)
        assert first.status_code == 200 and first.content.count(b"BEGIN:VEVENT") == count
        etag = first.headers["etag"]

        async def timed_requests(headers: dict[str, str], expect: int, reset_cache: bool = False) -> float:
            samples = []
            for _ in range(repeats):
                if reset_cache:  # the data changed since the last build: the body must be rebuilt to compare
                    # in_pool=False: the app's pool lives in the test client's event loop, not this one.
                    await CalendarFeedToken.update({CalendarFeedToken.fingerprint: ""}).where(
                        CalendarFeedToken.person == person).run(in_pool=False)
                started = time.perf_counter()
                response = await client.get(path, headers=headers)
                samples.append(time.perf_counter() - started)
                assert response.status_code == expect, response.status_code
            return statistics.median(samples)

        full = await timed_requests({}, 200)
        cached_304 = await timed_requests({"If-None-Match": etag}, 304)
        rebuilt_304 = await timed_requests({"If-None-Match": etag}, 304, reset_cache=True)
    return {
        "http_database": settings.database_kind,
        "http_feed_200_ms": round(full * 1e3, 3),
        "http_feed_304_cached_ms": round(cached_304 * 1e3, 3),
        "http_feed_304_rebuilt_ms": round(rebuilt_304 * 1e3, 3),
        "http_304_speedup": round(rebuilt_304 / cached_304, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--no-http", action="store_true", help="skip the service (database + ASGI) measurement")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server for the HTTP part; a scratch database is created and dropped on it "
                        "(default: a temporary SQLite file)")
    arguments = parser.parse_args()
    count, repeats, inner = (100, 3, 200) if arguments.quick else (1000, 7, 2000)

    events = make_events(count)
    baseline = baseline_calendar(events)
    body = build_feed(events, name=FEED_NAME)
    assert build_feed(list(reversed(events)), name=FEED_NAME) == body, "feed must be byte-identical"
    etag = feed_etag(body)

    # What the shell stores with the feed token after building: fingerprint -> ETag.
    def fingerprint_now() -> str:
        # Stands in for one aggregate query: SELECT count(*), max(updated_at) ...
        latest = max(event.last_modified for event in events)
        return feed_fingerprint(name=FEED_NAME, locale="ja", event_count=len(events), latest_change=latest)

    stored = (fingerprint_now(), etag)

    def answer_304_from_fingerprint() -> bool:
        fingerprint = fingerprint_now()
        return fingerprint == stored[0] and etag_matches(etag, stored[1])

    def answer_304_by_rebuilding() -> bool:
        return etag_matches(etag, feed_etag(build_feed(events, name=FEED_NAME)))

    assert answer_304_from_fingerprint() and answer_304_by_rebuilding()

    baseline_seconds = timed(baseline.to_ical, repeats)
    build_seconds = timed(lambda: build_feed(events, name=FEED_NAME), repeats)
    rebuild_304_seconds = timed(answer_304_by_rebuilding, repeats)
    cheap_304_seconds = timed(answer_304_from_fingerprint, repeats, inner)
    etag_seconds = timed(lambda: feed_etag(body), repeats, max(1, inner // 10))

    print(f"events per feed:                         {count}")
    print(f"feed size:                               {len(body):,} bytes")
    print(f"baseline icalendar to_ical (same events): {baseline_seconds * 1e3:9.2f} ms")
    print(f"build_feed:                              {build_seconds * 1e3:9.2f} ms")
    print(f"  ratio build_feed / baseline:           {build_seconds / baseline_seconds:9.2f}x")
    print(f"feed_etag (sha256 of body):              {etag_seconds * 1e6:9.1f} µs")
    print(f"304 by rebuilding + hashing:             {rebuild_304_seconds * 1e3:9.2f} ms")
    print(f"304 from fingerprint (count, max change): {cheap_304_seconds * 1e6:9.1f} µs")
    print(f"  speed-up of the fingerprint 304:       {rebuild_304_seconds / cheap_304_seconds:9.0f}x")
    result = {
        "events": count,
        "feed_bytes": len(body),
        "baseline_icalendar_to_ical_ms": round(baseline_seconds * 1e3, 3),
        "build_feed_ms": round(build_seconds * 1e3, 3),
        "build_feed_vs_baseline": round(build_seconds / baseline_seconds, 3),
        "feed_etag_us": round(etag_seconds * 1e6, 2),
        "not_modified_rebuild_ms": round(rebuild_304_seconds * 1e3, 3),
        "not_modified_fingerprint_us": round(cheap_304_seconds * 1e6, 2),
        "not_modified_speedup": round(rebuild_304_seconds / cheap_304_seconds, 1),
        "quick": arguments.quick,
    }
    if not arguments.no_http:
        http = asyncio.run(_http_feed(count, repeats * 3, arguments.database_url))
        print(f"HTTP GET feed, 200 ({http['http_database']}):           {http['http_feed_200_ms']:9.2f} ms")
        print(f"HTTP GET feed, 304 from cached fingerprint: {http['http_feed_304_cached_ms']:9.2f} ms")
        print(f"HTTP GET feed, 304 after a rebuild:         {http['http_feed_304_rebuilt_ms']:9.2f} ms")
        result.update(http)
    print("RESULT " + json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
