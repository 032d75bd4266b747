"""Times people read: every shown date has its weekday, in Asia/Tokyo, in the reader's language."""

from datetime import UTC, datetime

from events import timefmt

MIDNIGHT_UTC = datetime(2026, 12, 4, 15, 30, tzinfo=UTC)  # Saturday 5 December, 00:30 in Tokyo


def test_compact_has_the_tokyo_weekday():
    assert timefmt.compact(MIDNIGHT_UTC) == "2026/12/05（土）00:30"
    assert timefmt.compact(MIDNIGHT_UTC, "en") == "Sat 2026/12/05 00:30"
    assert timefmt.compact(None) == ""


def test_long_and_span_agree_on_the_day():
    assert timefmt.long(MIDNIGHT_UTC) == "2026年12月5日（土）00:30"
    end = datetime(2026, 12, 4, 17, 0, tzinfo=UTC)
    assert timefmt.span(MIDNIGHT_UTC, end) == "2026年12月5日（土）00:30〜02:00"
    assert timefmt.span(MIDNIGHT_UTC, end, "en") == "Sat 05 Dec 2026, 00:30–02:00 (Japan time)"


def test_the_page_filter_follows_the_page_language():
    from lifedesign.rendering import environment

    template = environment().from_string("{{ t|jst }} / {{ t|jst('%H:%M') }}")
    assert template.render(t=MIDNIGHT_UTC, lang="ja") == "2026/12/05（土）00:30 / 00:30"
    assert template.render(t=MIDNIGHT_UTC, lang="en") == "Sat 2026/12/05 00:30 / 00:30"
