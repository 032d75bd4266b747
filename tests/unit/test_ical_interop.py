"""Interop: every generated invite, feed and download parsed by independent parsers (vobject, ical.js).

ical.js needs `npm ci --prefix tests/interop`; its tests skip only when node or that install is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import vobject

from events.ical import CalendarEvent, build_feed, build_invite, build_publish, event_uid

JST = timezone(timedelta(hours=9))
INTEROP_DIR = Path(__file__).resolve().parents[1] / "interop"
PARSE_JS = INTEROP_DIR / "parse.js"
ICAL_JS = INTEROP_DIR / "node_modules" / "ical.js"
DOMAIN = "lifedesign.example"

EVENTS = [
    CalendarEvent(
        uid=event_uid("seminar", 12, 34, DOMAIN),
        sequence=2,
        summary="金沢若者ライフデザインセミナー「仕事と家庭、どう両立する？」第1回：先輩社会人と語る会",
        description="持ち物: 筆記用具, 上履き; 当日は\\直接会場へ\n二行目",
        location="金沢区役所 7階 会議室, 横浜市金沢区泥亀2-9-1",
        url="https://lifedesign.example/events/12",
        starts_at=datetime(2025, 7, 1, 10, 0, tzinfo=JST),
        ends_at=datetime(2025, 7, 1, 12, 0, tzinfo=JST),
        last_modified=datetime(2025, 5, 1, 2, 3, 4, tzinfo=UTC),
    ),
    CalendarEvent(  # given in UTC, crosses midnight and the year in Tokyo
        uid=event_uid("staff_exchange", 3, 34, DOMAIN),
        sequence=0,
        summary="保育力向上サポート 交流会",
        description="",
        location="",
        url="https://lifedesign.example/events/3",
        starts_at=datetime(2025, 12, 31, 14, 30, tzinfo=UTC),
        ends_at=datetime(2025, 12, 31, 16, 0, tzinfo=UTC),
        last_modified=datetime(2025, 11, 1, tzinfo=UTC),
    ),
    CalendarEvent(
        uid=event_uid("home_visit", 7, 34, DOMAIN),
        sequence=5,
        summary="Home visit (cancelled)",
        description="Cancelled by the host family.",
        location="Kanazawa-ku",
        url="https://lifedesign.example/visits/7",
        starts_at=datetime(2026, 3, 20, 13, 0, tzinfo=JST),
        ends_at=datetime(2026, 3, 20, 15, 30, tzinfo=JST),
        status="CANCELLED",
        last_modified=datetime(2026, 3, 1, tzinfo=UTC),
    ),
]
DTSTAMP = datetime(2025, 5, 2, 3, 4, 5, tzinfo=UTC)


def _invite(event: CalendarEvent, method: str) -> bytes:
    return build_invite(
        event,
        method=method,
        organizer_email="kodomo@kanazawa.example",
        organizer_name="金沢区 こども家庭支援課",
        attendee_email="Taro@Example.jp",
        attendee_name="山田 太郎",
        dtstamp=DTSTAMP,
    )


def generated_calendars() -> dict[str, tuple[bytes, list[CalendarEvent]]]:
    """Every kind of calendar the service sends, with the events each must contain."""
    calendars: dict[str, tuple[bytes, list[CalendarEvent]]] = {}
    for index, event in enumerate(EVENTS):
        if event.status != "CANCELLED":
            calendars[f"request-{index}"] = (_invite(event, "REQUEST"), [event])
        calendars[f"cancel-{index}"] = (_invite(event, "CANCEL"), [event])
        calendars[f"publish-{index}"] = (
            build_publish(event, organizer_email="kodomo@kanazawa.example", organizer_name="金沢区"),
            [event],
        )
    calendars["feed"] = (build_feed(EVENTS, name="金沢区のイベント（山田 太郎）"), EVENTS)
    calendars["feed-empty"] = (build_feed([], name="empty"), [])
    return calendars


CALENDARS = generated_calendars()


def expected_description(event: CalendarEvent) -> str:
    if event.description:
        return f"{event.description}\n\n{event.url}"
    return event.url


def method_of(name: str) -> str | None:
    return {"request": "REQUEST", "cancel": "CANCEL", "publish": "PUBLISH"}.get(name.split("-")[0])


@pytest.mark.parametrize("name", CALENDARS)
def test_vobject_parses_and_validates(name: str) -> None:
    ics, events = CALENDARS[name]
    calendar = vobject.readOne(ics.decode("utf-8"), validate=True)
    calendar.validate()
    method = method_of(name)
    assert (calendar.method.value if hasattr(calendar, "method") else None) == method
    parsed = {vevent.uid.value: vevent for vevent in calendar.contents.get("vevent", [])}
    assert sorted(parsed) == sorted(event.uid for event in events)
    for event in events:
        vevent = parsed[event.uid]
        assert vevent.dtstart.value.utcoffset() == timedelta(hours=9)
        assert vevent.dtstart.value.astimezone(UTC) == event.starts_at.astimezone(UTC)
        assert vevent.dtend.value.astimezone(UTC) == event.ends_at.astimezone(UTC)
        assert vevent.summary.value == event.summary
        assert vevent.description.value == expected_description(event)
        assert int(vevent.sequence.value) == event.sequence
        if method in {"REQUEST", "CANCEL"}:
            (attendee,) = vevent.contents["attendee"]
            assert attendee.value == "mailto:taro@example.jp"
            assert attendee.params["CN"] == ["山田 太郎"]
        else:
            assert "attendee" not in vevent.contents
        assert vevent.status.value == ("CANCELLED" if method == "CANCEL" else event.status)


def _ical_js_missing_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (needed to run ical.js)"
    if not ICAL_JS.is_dir():
        return f"ical.js is not installed in {ICAL_JS.parent}: run `npm ci --prefix tests/interop`"
    return None


@pytest.fixture(scope="module")
def ical_js_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:  # type: ignore[type-arg]
    reason = _ical_js_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("ics")
    results = {}
    # A non-Tokyo local zone for node, so a floating (zone-less) time would give a wrong instant.
    environment = {**os.environ, "TZ": "America/New_York"}
    for name, (ics, _) in CALENDARS.items():
        path = folder / f"{name}.ics"
        path.write_bytes(ics)
        completed = subprocess.run(
            ["node", str(PARSE_JS), str(path)], capture_output=True, text=True, timeout=60, env=environment
        )
        assert completed.returncode == 0, completed.stderr
        results[name] = json.loads(completed.stdout)
    return results


@pytest.mark.parametrize("name", CALENDARS)
def test_ical_js_reads_the_same_instants(name: str, ical_js_results: dict[str, dict]) -> None:  # type: ignore[type-arg]
    _, events = CALENDARS[name]
    result = ical_js_results[name]
    method = method_of(name)
    assert result["method"] == method
    parsed = {vevent["uid"]: vevent for vevent in result["events"]}
    assert sorted(parsed) == sorted(event.uid for event in events)
    for event in events:
        vevent = parsed[event.uid]
        assert vevent["start_tzid"] == "Asia/Tokyo"
        assert vevent["start_utc"] == event.starts_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert vevent["end_utc"] == event.ends_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert vevent["summary"] == event.summary
        assert vevent["location"] == (event.location or None)
        assert vevent["description"] == expected_description(event)
        assert vevent["sequence"] == event.sequence
        assert vevent["status"] == ("CANCELLED" if method == "CANCEL" else event.status)
        if method in {"REQUEST", "CANCEL"}:
            assert vevent["organizer"] == "mailto:kodomo@kanazawa.example"
            assert vevent["attendees"] == [
                {
                    "value": "mailto:taro@example.jp",
                    "cn": "山田 太郎",
                    "partstat": "NEEDS-ACTION",
                    "rsvp": "TRUE",
                }
            ]
        else:
            assert vevent["attendees"] == []
        has_alarm = name.startswith(("request", "publish")) and event.status != "CANCELLED"
        assert vevent["alarm_triggers"] == (["-P1D"] if has_alarm else [])
    if name.startswith("feed"):
        assert result["name"] in {"金沢区のイベント（山田 太郎）", "empty"}
