"""events.ical: every property invites, feeds and downloads must carry, checked parsed and on the raw lines."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from events.ical import (
    PRODID,
    CalendarEvent,
    build_feed,
    build_invite,
    build_publish,
    etag_matches,
    event_uid,
    feed_etag,
    feed_fingerprint,
)

JST = timezone(timedelta(hours=9))
DTSTAMP = datetime(2025, 5, 2, 3, 4, 5, tzinfo=UTC)
LONG_JA = "金沢若者ライフデザインセミナー「仕事と家庭、どう両立する？」第1回：先輩社会人と語る会（高校生・大学生向け）"


def make_event(**overrides: object) -> CalendarEvent:
    fields: dict[str, object] = dict(
        uid=event_uid("seminar", 12, 34, "lifedesign.example"),
        sequence=1,
        summary=LONG_JA,
        description="持ち物: 筆記用具, 上履き; 当日は\\直接会場へ\n二行目",
        location="金沢区役所 7階 会議室, 横浜市金沢区泥亀2-9-1",
        url="https://lifedesign.example/events/12",
        starts_at=datetime(2025, 7, 1, 10, 0, tzinfo=JST),
        ends_at=datetime(2025, 7, 1, 12, 0, tzinfo=JST),
        last_modified=datetime(2025, 5, 1, 2, 3, 4, tzinfo=UTC),
    )
    fields.update(overrides)
    return CalendarEvent(**fields)  # type: ignore[arg-type]


def invite(event: CalendarEvent | None = None, *, method: str = "REQUEST", alarm: bool = True) -> bytes:
    return build_invite(
        event or make_event(),
        method=method,
        organizer_email="Kodomo@Kanazawa.Example",
        organizer_name="金沢区 こども家庭支援課",
        attendee_email="Taro.Yamada@Example.JP",
        attendee_name="山田 太郎",
        dtstamp=DTSTAMP,
        alarm=alarm,
    )


def feed(events: list[CalendarEvent] | None = None) -> bytes:
    return build_feed(events if events is not None else [make_event()], name="金沢区のイベント（山田 太郎）")


def publish(event: CalendarEvent | None = None) -> bytes:
    return build_publish(
        event or make_event(uid=event_uid("seminar", 12, None, "lifedesign.example")),
        organizer_email="kodomo@kanazawa.example",
        organizer_name="金沢区 こども家庭支援課",
    )


def physical_lines(ics: bytes) -> list[bytes]:
    assert ics.endswith(b"\r\n")
    return ics[:-2].split(b"\r\n")


def logical_lines(ics: bytes) -> list[str]:
    return ics.decode("utf-8").replace("\r\n ", "").replace("\r\n\t", "").split("\r\n")[:-1]


def vevent_lines(ics: bytes) -> list[str]:
    lines = logical_lines(ics)
    return lines[lines.index("BEGIN:VEVENT") : lines.index("END:VEVENT") + 1]


def assert_raw_wellformed(ics: bytes) -> None:
    """CRLF only, every physical line <= 75 octets and valid UTF-8 on its own (no character cut by folding)."""
    assert b"\n" not in ics.replace(b"\r\n", b"")
    assert b"\r" not in ics.replace(b"\r\n", b"")
    for line in physical_lines(ics):
        assert len(line) <= 75, line
        line.decode("utf-8")  # raises if a fold cut a multi-byte character
        trailing_backslashes = len(line) - len(line.rstrip(b"\\"))
        assert trailing_backslashes % 2 == 0, line  # no fold inside a backslash escape
    assert ics.startswith(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert ics.endswith(b"END:VCALENDAR\r\n")


def only_vevent(ics: bytes):  # type: ignore[no-untyped-def]
    calendar = Calendar.from_ical(ics)
    (vevent,) = calendar.walk("VEVENT")
    return calendar, vevent


ALL_KINDS = {"invite": invite, "cancel": lambda: invite(method="CANCEL"), "feed": feed, "publish": publish}


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_common_calendar_properties(kind: str) -> None:
    ics = ALL_KINDS[kind]()
    assert_raw_wellformed(ics)
    calendar, vevent = only_vevent(ics)
    assert calendar["VERSION"] == "2.0"
    assert calendar["PRODID"] == PRODID
    # Asia/Tokyo VTIMEZONE: one STANDARD at +0900 named JST, no DAYLIGHT.
    (vtimezone,) = calendar.walk("VTIMEZONE")
    assert vtimezone["TZID"] == "Asia/Tokyo"
    assert [c.name for c in vtimezone.subcomponents] == ["STANDARD"]
    standard = vtimezone.subcomponents[0]
    assert standard["TZNAME"] == "JST"
    assert standard["TZOFFSETFROM"].td == timedelta(hours=9)
    assert standard["TZOFFSETTO"].td == timedelta(hours=9)
    lines = vevent_lines(ics)
    assert "DTSTART;TZID=Asia/Tokyo:20250701T100000" in lines
    assert "DTEND;TZID=Asia/Tokyo:20250701T120000" in lines
    assert vevent.decoded("DTSTART") == datetime(2025, 7, 1, 1, 0, tzinfo=UTC)
    assert vevent.decoded("DTEND") == datetime(2025, 7, 1, 3, 0, tzinfo=UTC)
    (dtstamp_line,) = [line for line in lines if line.startswith("DTSTAMP")]
    assert re.fullmatch(r"DTSTAMP:\d{8}T\d{6}Z", dtstamp_line)
    assert vevent["UID"] == "lifedesign-seminar-12-p34@lifedesign.example" or kind == "publish"
    assert str(vevent["SUMMARY"]) == LONG_JA
    assert str(vevent["LOCATION"]) == "金沢区役所 7階 会議室, 横浜市金沢区泥亀2-9-1"
    assert str(vevent["DESCRIPTION"]).startswith("持ち物: 筆記用具, 上履き; 当日は\\直接会場へ\n二行目")
    assert "https://lifedesign.example/events/12" in str(vevent["DESCRIPTION"])  # the link back
    assert str(vevent["URL"]) == "https://lifedesign.example/events/12"
    assert vevent.decoded("SEQUENCE") == 1


def test_no_floating_times_anywhere() -> None:
    for ics in (invite(), invite(method="CANCEL"), feed(), publish()):
        lines = vevent_lines(ics)
        for line in lines:
            if line.startswith(("DTSTART", "DTEND")):
                assert line.startswith(("DTSTART;TZID=Asia/Tokyo:", "DTEND;TZID=Asia/Tokyo:")), line
            if line.startswith(("DTSTAMP", "LAST-MODIFIED")):
                assert line.endswith("Z"), line


def test_utc_input_is_rendered_in_tokyo() -> None:
    event = make_event(
        starts_at=datetime(2025, 12, 31, 15, 30, tzinfo=UTC),
        ends_at=datetime(2025, 12, 31, 17, 0, tzinfo=UTC),
    )
    lines = vevent_lines(invite(event))
    assert "DTSTART;TZID=Asia/Tokyo:20260101T003000" in lines
    assert "DTEND;TZID=Asia/Tokyo:20260101T020000" in lines


def test_invite_request_properties() -> None:
    ics = invite()
    calendar, vevent = only_vevent(ics)
    assert calendar["METHOD"] == "REQUEST"
    assert vevent["STATUS"] == "CONFIRMED"
    assert vevent.decoded("DTSTAMP") == DTSTAMP
    organizer = vevent["ORGANIZER"]
    assert str(organizer) == "mailto:kodomo@kanazawa.example"
    assert organizer.params["CN"] == "金沢区 こども家庭支援課"
    attendees = vevent["ATTENDEE"]
    assert not isinstance(attendees, list)  # exactly one ATTENDEE: the recipient
    assert str(attendees) == "mailto:taro.yamada@example.jp"
    assert attendees.params["CN"] == "山田 太郎"
    assert attendees.params["ROLE"] == "REQ-PARTICIPANT"
    assert attendees.params["PARTSTAT"] == "NEEDS-ACTION"
    assert attendees.params["RSVP"] == "TRUE"
    assert sum(line.startswith("ATTENDEE") for line in vevent_lines(ics)) == 1
    (alarm,) = vevent.walk("VALARM")
    assert alarm["ACTION"] == "DISPLAY"
    assert alarm.decoded("TRIGGER") == timedelta(days=-1)
    assert "TRIGGER:-P1D" in logical_lines(ics)
    assert str(alarm["DESCRIPTION"]) == LONG_JA


def test_invite_without_alarm() -> None:
    _, vevent = only_vevent(invite(alarm=False))
    assert vevent.walk("VALARM") == []


def test_cancel_keeps_uid_and_sequence_and_sets_cancelled() -> None:
    request_calendar, request = only_vevent(invite(make_event(sequence=3)))
    cancel_calendar, cancel = only_vevent(invite(make_event(sequence=4), method="CANCEL"))
    assert request_calendar["METHOD"] == "REQUEST"
    assert cancel_calendar["METHOD"] == "CANCEL"
    assert cancel["UID"] == request["UID"]
    assert cancel["STATUS"] == "CANCELLED"
    assert cancel.decoded("SEQUENCE") >= request.decoded("SEQUENCE")
    assert str(cancel["ATTENDEE"]) == "mailto:taro.yamada@example.jp"  # iTIP CANCEL names who is cancelled
    assert cancel.walk("VALARM") == []  # no reminder for something that will not happen


def test_request_for_a_cancelled_event_is_refused() -> None:
    with pytest.raises(ValueError):
        invite(make_event(status="CANCELLED"))
    with pytest.raises(ValueError):
        invite(method="PUBLISH")


def test_change_raises_sequence_and_keeps_uid() -> None:
    before = make_event(sequence=1)
    after = dataclasses.replace(
        before,
        sequence=2,
        starts_at=datetime(2025, 7, 2, 13, 0, tzinfo=JST),
        ends_at=datetime(2025, 7, 2, 15, 0, tzinfo=JST),
        last_modified=datetime(2025, 5, 10, tzinfo=UTC),
    )
    _, old = only_vevent(invite(before))
    _, new = only_vevent(invite(after))
    assert new["UID"] == old["UID"]
    assert new.decoded("SEQUENCE") == old.decoded("SEQUENCE") + 1
    assert new.decoded("DTSTART") == datetime(2025, 7, 2, 4, 0, tzinfo=UTC)


def test_feed_properties() -> None:
    events = [make_event(), make_event(uid=event_uid("home_visit", 7, 34, "lifedesign.example"), sequence=0)]
    ics = feed(events)
    assert_raw_wellformed(ics)
    calendar = Calendar.from_ical(ics)
    assert "METHOD" not in calendar
    assert str(calendar["NAME"]) == "金沢区のイベント（山田 太郎）"
    assert str(calendar["X-WR-CALNAME"]) == "金沢区のイベント（山田 太郎）"
    assert str(calendar["X-WR-TIMEZONE"]) == "Asia/Tokyo"
    lines = logical_lines(ics)
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT1H" in lines
    assert "X-PUBLISHED-TTL:PT1H" in lines
    assert not any(line.startswith(("ATTENDEE", "METHOD")) for line in lines)
    vevents = calendar.walk("VEVENT")
    assert len(vevents) == 2
    for vevent in vevents:
        assert vevent.decoded("DTSTAMP") == datetime(2025, 5, 1, 2, 3, 4, tzinfo=UTC)  # = last_modified


def test_folding_keeps_backslash_escapes_whole() -> None:
    for padding in range(80):
        ics = invite(make_event(summary="x" * padding + "\\,;" * 30, description="", url=""), alarm=False)
        assert_raw_wellformed(ics)
        assert str(only_vevent(ics)[1]["SUMMARY"]) == "x" * padding + "\\,;" * 30


def test_feed_refresh_interval_is_configurable() -> None:
    for refresh, text in [
        (timedelta(minutes=30), "PT30M"),
        (timedelta(days=1), "P1D"),
        (timedelta(hours=25, seconds=5), "P1DT1H5S"),
    ]:
        lines = logical_lines(build_feed([make_event()], name="x", refresh=refresh))
        assert f"REFRESH-INTERVAL;VALUE=DURATION:{text}" in lines
        assert f"X-PUBLISHED-TTL:{text}" in lines
        assert Calendar.from_ical(build_feed([], name="x", refresh=refresh))["X-PUBLISHED-TTL"] is not None
    with pytest.raises(ValueError):
        build_feed([], name="x", refresh=timedelta(0))


def test_unchanged_feed_is_byte_identical_whatever_the_order() -> None:
    first = make_event()
    second = make_event(
        uid=event_uid("staff_exchange", 3, 34, "lifedesign.example"),
        starts_at=datetime(2025, 6, 1, 9, 0, tzinfo=JST),
        ends_at=datetime(2025, 6, 1, 11, 0, tzinfo=JST),
    )
    assert feed([first, second]) == feed([second, first]) == feed([first, second])
    assert feed_etag(feed([first, second])) == feed_etag(feed([second, first]))
    changed = dataclasses.replace(second, sequence=2, location="金沢公会堂", last_modified=DTSTAMP)
    assert feed([first, changed]) != feed([first, second])
    assert feed_etag(feed([first, changed])) != feed_etag(feed([first, second]))


def test_cancelled_event_stays_in_feed_as_cancelled() -> None:
    _, vevent = only_vevent(feed([make_event(status="CANCELLED", sequence=5)]))
    assert vevent["STATUS"] == "CANCELLED"
    assert vevent.decoded("SEQUENCE") == 5


def test_empty_feed_is_valid() -> None:
    ics = feed([])
    assert_raw_wellformed(ics)
    assert Calendar.from_ical(ics).walk("VEVENT") == []


def test_publish_properties() -> None:
    ics = publish()
    calendar, vevent = only_vevent(ics)
    assert calendar["METHOD"] == "PUBLISH"
    assert "ATTENDEE" not in vevent
    assert str(vevent["ORGANIZER"]) == "mailto:kodomo@kanazawa.example"
    assert vevent["UID"] == "lifedesign-seminar-12@lifedesign.example"
    assert publish() == publish()  # DTSTAMP comes from last_modified, not a clock


def test_japanese_folding_never_cuts_a_character() -> None:
    event = make_event(summary="あ" * 200, description="漢字と😀絵文字, ; \\ 混在" * 20, location="い" * 30)
    for ics in (invite(event), feed([event]), publish(event)):
        assert_raw_wellformed(ics)
        assert any(line.startswith(b" ") for line in physical_lines(ics))  # it did fold
        _, vevent = only_vevent(ics)
        assert str(vevent["SUMMARY"]) == "あ" * 200
        assert str(vevent["DESCRIPTION"]).startswith("漢字と😀絵文字, ; \\ 混在" * 20)


def test_escaping_on_the_raw_line() -> None:
    lines = vevent_lines(invite(make_event(summary="a, b; c\\d\ne", description="", url=""), alarm=False))
    assert "SUMMARY:a\\, b\\; c\\\\d\\ne" in lines
    assert not any(line.startswith(("DESCRIPTION", "URL")) for line in lines)


def test_carriage_returns_become_escaped_newlines() -> None:
    _, vevent = only_vevent(invite(make_event(summary="一行目\r\n二行目\r三行目")))
    assert str(vevent["SUMMARY"]) == "一行目\n二行目\n三行目"


def test_quotes_in_names_cannot_break_parameters() -> None:
    ics = build_invite(
        make_event(),
        method="REQUEST",
        organizer_email="a@example.jp",
        organizer_name='Org "X"; ROLE=CHAIR',
        attendee_email="b@example.jp",
        attendee_name='Eve", RSVP=FALSE:mailto:evil@example.com',
        dtstamp=DTSTAMP,
    )
    _, vevent = only_vevent(ics)
    assert str(vevent["ATTENDEE"]) == "mailto:b@example.jp"
    assert vevent["ATTENDEE"].params["RSVP"] == "TRUE"
    assert str(vevent["ORGANIZER"]) == "mailto:a@example.jp"
    assert "ROLE" not in vevent["ORGANIZER"].params


@settings(max_examples=80, deadline=None)
@given(
    summary=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(",;\\\n"), min_size=1
    ),
    description=st.text(alphabet=st.sampled_from("金沢区あア ,;:\\\n\"'😀abc"), max_size=300),
    location=st.text(alphabet=st.sampled_from("横浜市泥亀 ,;\\-0123"), max_size=120),
)
def test_any_text_survives_escaping_and_folding(summary: str, description: str, location: str) -> None:
    event = make_event(summary=summary, description=description, location=location, url="")
    for ics in (invite(event), feed([event])):
        assert_raw_wellformed(ics)
        _, vevent = only_vevent(ics)
        assert str(vevent["SUMMARY"]) == summary
        assert str(vevent.get("DESCRIPTION", "")) == description
        assert str(vevent.get("LOCATION", "")) == location


def test_event_uid_is_stable_and_distinct() -> None:
    # Golden values: these strings are stored in people's calendars; never change them.
    assert (
        event_uid("seminar", 12, 34, "lifedesign.example") == "lifedesign-seminar-12-p34@lifedesign.example"
    )
    assert (
        event_uid("home_visit", 7, None, "LifeDesign.Example") == "lifedesign-home_visit-7@lifedesign.example"
    )
    uids = {
        event_uid(kind, event_id, person_id, "lifedesign.example")
        for kind in ("seminar", "home_visit", "staff_exchange")
        for event_id in (1, 12, 123)
        for person_id in (None, 1, 23, 234)
    }
    assert len(uids) == 3 * 3 * 4
    for bad in [
        ("Seminar", 1, None, "x.example"),
        ("seminar", 1, None, "x example"),
        ("seminar", -1, None, "x.jp"),
    ]:
        with pytest.raises(ValueError):
            event_uid(*bad)


def test_calendar_event_validation() -> None:
    with pytest.raises(ValueError):
        make_event(starts_at=datetime(2025, 7, 1, 10, 0))  # floating
    with pytest.raises(ValueError):
        make_event(ends_at=datetime(2025, 7, 1, 9, 0, tzinfo=JST))
    with pytest.raises(ValueError):
        make_event(sequence=-1)
    with pytest.raises(ValueError):
        make_event(status="DONE")
    with pytest.raises(ValueError):
        make_event(last_modified=datetime(2025, 5, 1))


def test_feed_etag_is_strong_quoted_and_content_addressed() -> None:
    body = feed()
    etag = feed_etag(body)
    assert re.fullmatch(r'"[0-9a-f]{40}"', etag)
    assert feed_etag(body) == etag
    assert feed_etag(body + b" ") != etag


def test_etag_matching() -> None:
    etag = '"abc"'
    assert etag_matches('"abc"', etag)
    assert etag_matches('"x", "abc"', etag)
    assert etag_matches('W/"abc"', etag)
    assert etag_matches("*", etag)
    assert not etag_matches('"abd"', etag)
    assert not etag_matches(None, etag)
    assert not etag_matches("", etag)


def test_feed_fingerprint_changes_with_every_input() -> None:
    base = dict(name="x", locale="ja", event_count=3, latest_change=DTSTAMP)
    reference = feed_fingerprint(**base)  # type: ignore[arg-type]
    assert feed_fingerprint(**base) == reference  # type: ignore[arg-type]
    variants = [
        {"name": "y"},
        {"locale": "en"},
        {"event_count": 4},
        {"latest_change": DTSTAMP + timedelta(seconds=1)},
        {"latest_change": None},
        {"refresh": timedelta(minutes=30)},
    ]
    for change in variants:
        assert feed_fingerprint(**{**base, **change}) != reference, change  # type: ignore[arg-type]
    assert feed_fingerprint(**{**base, "latest_change": DTSTAMP + timedelta(microseconds=1)}) != reference  # type: ignore[arg-type]
    # The same instant in another offset is the same state.
    assert feed_fingerprint(**{**base, "latest_change": DTSTAMP.astimezone(JST)}) == reference  # type: ignore[arg-type]
