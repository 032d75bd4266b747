"""Benchmark: building a 1,000-event feed, and answering a conditional GET (304) without rebuilding it.

Baseline (same run): icalendar serialising the same 1,000 already-built VEVENTs alone (`Calendar.to_ical`).
Run: python bench/calendar.py [--quick]. The last line is `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
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
    print("RESULT " + json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
