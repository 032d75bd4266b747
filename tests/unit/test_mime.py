"""events.mime: structure, encodings, headers and round-trip through Python's email parser."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.mime import (
    CalendarPart,
    Draft,
    build_message,
    is_draft,
    make_message_id,
    parse_mailbox,
    to_7bit,
    wire_bytes,
)

JST = timezone(timedelta(hours=9))
DATE = datetime(2025, 5, 1, 9, 30, tzinfo=JST)
SENDER = "金沢区 こども家庭支援課 <noreply@kanazawa.example>"
RECIPIENT = "山田 太郎 <taro@example.jp>"
TEXT = "山田 太郎 様\n\n金沢若者ライフデザインセミナーのご案内です。\nhttps://lifedesign.example/events/12\n"
HTML = "<p>山田 太郎 様</p><p>セミナーのご案内です。</p>\n"
ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//JA\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:x@y\r\nSUMMARY:セミナー\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
).encode()


def build(**overrides: object) -> bytes:
    arguments: dict[str, object] = dict(
        sender=SENDER,
        recipient=RECIPIENT,
        subject="【金沢区】ライフデザインセミナーのご案内",
        text=TEXT,
        html=HTML,
        message_id=make_message_id("lifedesign.example", "outbox-42"),
        date=DATE,
        headers=None,
        calendar=None,
    )
    arguments.update(overrides)
    return build_message(**arguments)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body_text(message: EmailMessage, subtype: str = "plain") -> str:
    """Decoded body with CRLF (canonical form on the wire, kept by the parser) read back as \\n."""
    part = message.get_body((subtype,))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")


def assert_wire_clean(raw: bytes, *, seven_bit: bool = False) -> None:
    """CRLF only, no line over 998 octets (RFC 5322), 7-bit headers; 8bit bodies only as UTF-8 (BODY=8BITMIME);
    `seven_bit`: all of it 7-bit (what `to_7bit` gives a server without 8BITMIME)."""
    assert raw.split(b"\r\n\r\n", 1)[0].isascii()
    assert raw.isascii() if seven_bit else raw.decode("utf-8") is not None
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def header_block(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii")


def test_message_id_format() -> None:
    assert make_message_id("lifedesign.example", "outbox-42") == "<outbox-42@lifedesign.example>"
    for bad_token in ["", "a b", "a@b", "<a>", "a\r\nb"]:
        with pytest.raises(ValueError):
            make_message_id("lifedesign.example", bad_token)
    for bad_domain in ["", "localhost ", "a@b.c", "no_dot"]:
        with pytest.raises(ValueError):
            make_message_id(bad_domain, "token")


def test_text_only_is_single_text_plain_part() -> None:
    raw = build(html=None)
    assert_wire_clean(raw)
    message = parse(raw)
    assert not message.is_multipart()
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message["Content-Transfer-Encoding"] == "8bit"  # readable as it is: links whole, Japanese as UTF-8
    assert TEXT.replace("\n", "\r\n").encode() in raw
    assert message.get_content().replace("\r\n", "\n") == TEXT


def test_text_and_html_are_multipart_alternative() -> None:
    raw = build()
    assert_wire_clean(raw)
    message = parse(raw)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert body_text(message) == TEXT
    assert body_text(message, "html") == HTML
    assert message.get_body() is message.get_body(
        ("html",)
    )  # clients prefer the last alternative they can show


def test_headers_round_trip_and_are_encoded() -> None:
    raw = build(
        headers={"List-Unsubscribe": "<https://lifedesign.example/u/abc>", "Auto-Submitted": "auto-generated"}
    )
    block = header_block(raw)
    assert "金沢" not in block  # RFC 2047 encoded, not raw UTF-8
    assert "=?utf-8?" in block
    message = parse(raw)
    assert message["Subject"] == "【金沢区】ライフデザインセミナーのご案内"
    assert message["From"].addresses[0].display_name == "金沢区 こども家庭支援課"
    assert message["From"].addresses[0].addr_spec == "noreply@kanazawa.example"
    assert message["To"].addresses[0].display_name == "山田 太郎"
    assert message["To"].addresses[0].addr_spec == "taro@example.jp"
    assert message["Message-ID"] == "<outbox-42@lifedesign.example>"
    assert message["MIME-Version"] == "1.0"
    assert message["Date"].datetime == DATE
    assert message["List-Unsubscribe"] == "<https://lifedesign.example/u/abc>"
    assert message["Auto-Submitted"] == "auto-generated"
    # MIME-Version belongs to the top level only.
    assert raw.count(b"MIME-Version:") == 1


def test_bare_and_tricky_addresses() -> None:
    message = parse(build(sender="noreply@kanazawa.example", recipient='"Sato, Hanako" <hanako@example.jp>'))
    assert message["From"].addresses[0].addr_spec == "noreply@kanazawa.example"
    assert message["From"].addresses[0].display_name == ""
    assert message["To"].addresses[0].display_name == "Sato, Hanako"
    assert len(message["To"].addresses) == 1
    assert parse_mailbox("佐藤, 花子 <hanako@example.jp>").display_name == "佐藤, 花子"
    for bad in ["not an address", "a@b@c", "x <a b@c>", "x <>", "a@b\r\nBcc: evil@example.com"]:
        with pytest.raises(ValueError):
            build(recipient=bad)


def test_header_injection_and_own_headers_are_refused() -> None:
    with pytest.raises(ValueError):
        build(subject="hello\r\nBcc: evil@example.com")
    with pytest.raises(ValueError):
        build(headers={"X-Note": "a\r\nBcc: evil@example.com"})
    for own in ["From", "to", "Subject", "Message-ID", "Bcc", "Content-Type"]:
        with pytest.raises(ValueError):
            build(headers={own: "x"})
    with pytest.raises(ValueError):
        build(headers={"Bad Name": "x"})


def test_date_must_be_aware_and_is_kept_exactly() -> None:
    with pytest.raises(ValueError):
        build(date=datetime(2025, 5, 1, 9, 30))
    assert "Date: Thu, 01 May 2025 09:30:00 +0900" in header_block(build())
    assert "Date: Thu, 01 May 2025 00:30:00 +0000" in header_block(build(date=DATE.astimezone(UTC)))


def test_same_inputs_same_bytes_and_boundaries_follow_message_id() -> None:
    calendar = CalendarPart(method="REQUEST", ics=ICS)
    assert build(calendar=calendar) == build(calendar=calendar)
    other = build(calendar=calendar, message_id=make_message_id("lifedesign.example", "outbox-43"))
    boundaries = set(re.findall(rb'boundary="([^"]+)"', build(calendar=calendar)))
    assert len(boundaries) == 2
    assert boundaries.isdisjoint(re.findall(rb'boundary="([^"]+)"', other))


def test_long_lines_and_ascii_choose_their_encoding() -> None:
    assert parse(build(text="Hello\nhttps://lifedesign.example/login/abc\n", html=None))[
        "Content-Transfer-Encoding"] == "7bit"
    long_line = "あ" * 400 + "\n"  # 1,200 octets: too long for 8bit
    raw = build(text=long_line, html=None)
    assert_wire_clean(raw, seven_bit=True)
    assert parse(raw)["Content-Transfer-Encoding"] == "quoted-printable"
    assert body_text(parse(raw)) == long_line
    boundary = re.search(rb'boundary="([^"]+)"', build()).group(1).decode()
    tricky = f"本文に境界の文字列\n--{boundary}\nがあっても\n"  # cannot end the part: sent quoted-printable
    message = parse(build(text=tricky))
    assert message.get_body(("plain",))["Content-Transfer-Encoding"] == "quoted-printable"
    assert body_text(message) == tricky and body_text(message, "html") == HTML


@pytest.mark.parametrize("calendar", [None, CalendarPart(method="REQUEST", ics=ICS)])
@pytest.mark.parametrize("html", [None, HTML])
def test_to_7bit_keeps_every_part(calendar: CalendarPart | None, html: str | None) -> None:
    raw = build(html=html, calendar=calendar)
    assert not raw.isascii()
    seven = to_7bit(raw)
    assert_wire_clean(seven, seven_bit=True)
    assert to_7bit(raw) == seven and to_7bit(seven) == seven  # deterministic, idempotent
    before, after = parse(raw), parse(seven)
    assert [(p.get_content_type(), p.get_params()) for p in before.walk()] == [
        (p.get_content_type(), p.get_params()) for p in after.walk()]
    assert [p.get_payload(decode=True) for p in before.walk() if not p.is_multipart()] == [
        p.get_payload(decode=True) for p in after.walk() if not p.is_multipart()]
    for name in ("From", "To", "Subject", "Date", "Message-ID"):
        assert str(before[name]) == str(after[name])


def test_draft_round_trips_and_builds_the_same_bytes() -> None:
    draft = Draft(sender=SENDER, recipient=RECIPIENT, subject="件名", text=TEXT, html=HTML,
                  message_id=make_message_id("lifedesign.example", "outbox-42"), date=DATE,
                  headers={"List-Unsubscribe": "<https://lifedesign.example/u/abc>"},
                  calendar=CalendarPart(method="REQUEST", ics=ICS))
    stored = draft.encode()
    assert is_draft(stored) and not is_draft(draft.build())
    assert Draft.decode(stored) == draft
    assert wire_bytes(stored) == draft.build() == build(
        subject="件名", headers={"List-Unsubscribe": "<https://lifedesign.example/u/abc>"},
        calendar=CalendarPart(method="REQUEST", ics=ICS))
    assert wire_bytes(draft.build()) == draft.build()  # built bytes pass through


def test_draft_refuses_what_could_not_be_built() -> None:
    good = dict(sender=SENDER, recipient=RECIPIENT, subject="件名", text=TEXT, html=None,
                message_id=make_message_id("lifedesign.example", "outbox-42"), date=DATE)
    for bad in [{"recipient": "山田\r\nBcc: evil@example.com <t@example.jp>"}, {"subject": "a\nb"},
                {"headers": {"X-Note": "a\r\nb"}}, {"headers": {"From": "x"}}, {"date": datetime(2025, 5, 1)},
                {"message_id": "no-brackets"}]:
        with pytest.raises(ValueError):
            Draft(**{**good, **bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["REQUEST", "CANCEL", "PUBLISH"])
def test_calendar_structure(method: str) -> None:
    raw = build(calendar=CalendarPart(method=method, ics=ICS))
    assert_wire_clean(raw)
    message = parse(raw)
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = list(message.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    inline = list(alternative.iter_parts())[2]
    assert inline.get_param("method") == method
    assert inline.get_content_charset() == "utf-8"
    assert inline.get_content_disposition() is None
    assert inline.get_payload(decode=True) == ICS  # byte-exact: CRLF and folding preserved
    assert attachment.get_content_type() in {"application/ics", "text/calendar"}
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_payload(decode=True) == ICS
    assert body_text(message) == TEXT
    assert body_text(message, "html") == HTML
    assert [a.get_filename() for a in message.iter_attachments()] == ["invite.ics"]


def test_ascii_calendar_stays_readable() -> None:
    ascii_ics = ICS.replace("セミナー".encode(), b"Seminar")
    raw = build(calendar=CalendarPart(method="REQUEST", ics=ascii_ics))
    assert b"BEGIN:VEVENT\r\nUID:x@y\r\n" in raw  # 7bit inline part, unencoded
    inline = list(list(parse(raw).iter_parts())[0].iter_parts())[2]
    assert inline.get_payload(decode=True) == ascii_ics


def test_calendar_part_validation() -> None:
    with pytest.raises(ValueError):
        CalendarPart(method="REPLY", ics=ICS)
    with pytest.raises(ValueError):
        CalendarPart(method="REQUEST", ics=b"hello")


def test_calendar_without_html_still_has_text_and_calendar() -> None:
    message = parse(build(html=None, calendar=CalendarPart(method="CANCEL", ics=ICS)))
    alternative = next(message.iter_parts())
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/calendar"]


def test_newlines_are_normalised() -> None:
    message = parse(build(text="a\r\nb\rc\n", html=None))
    assert message.get_content() == "a\r\nb\r\nc\r\n"


_body_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85")
    | st.just("\n"),
    max_size=400,
).map(lambda s: s if s.endswith("\n") else s + "\n")


@settings(max_examples=60, deadline=None)
@given(
    text=_body_text,
    html=st.one_of(st.none(), _body_text),
    subject=st.text(min_size=1, max_size=80).filter(
        lambda s: "\r" not in s and "\n" not in s and s.strip() == s and s.isprintable()
    ),
    name=st.text(alphabet="山田太郎花子あいう ABC,.'\"", max_size=20),
)
def test_any_text_round_trips(text: str, html: str | None, subject: str, name: str) -> None:
    raw = build(text=text, html=html, subject=subject, recipient=f"{name} <someone@example.jp>")
    assert_wire_clean(raw)
    seven = to_7bit(raw)
    assert_wire_clean(seven, seven_bit=True)
    for message in (parse(raw), parse(seven)):
        assert body_text(message) == text
        if html is not None:
            assert body_text(message, "html") == html
    message = parse(raw)
    assert message["Subject"] == subject
    assert message["To"].addresses[0].addr_spec == "someone@example.jp"


def test_real_invite_travels_byte_exact() -> None:
    from events.ical import CalendarEvent, build_invite, event_uid

    event = CalendarEvent(
        uid=event_uid("seminar", 12, 34, "lifedesign.example"),
        sequence=0,
        summary="金沢若者ライフデザインセミナー「仕事と家庭、どう両立する？」",
        description="持ち物: 筆記用具",
        location="金沢区役所",
        url="https://lifedesign.example/events/12",
        starts_at=datetime(2025, 7, 1, 10, 0, tzinfo=JST),
        ends_at=datetime(2025, 7, 1, 12, 0, tzinfo=JST),
        last_modified=datetime(2025, 5, 1, tzinfo=UTC),
    )
    ics = build_invite(
        event,
        method="REQUEST",
        organizer_email="kodomo@kanazawa.example",
        organizer_name="金沢区 こども家庭支援課",
        attendee_email="taro@example.jp",
        attendee_name="山田 太郎",
        dtstamp=DATE,
    )
    message = parse(build(calendar=CalendarPart(method="REQUEST", ics=ics)))
    calendar_part = message.get_body(("calendar",))
    assert calendar_part is None or calendar_part.get_payload(decode=True) == ics
    inline = list(next(message.iter_parts()).iter_parts())[2]
    assert inline.get_payload(decode=True) == ics
    assert next(message.iter_attachments()).get_payload(decode=True) == ics
