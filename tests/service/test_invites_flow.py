"""Invites, feeds and reminders end to end over a real SMTP server (aiosmtpd): what the recipient's mailbox holds.

The main flows run through the real seminar services (register, update_event, cancel_registration,
cancel_event); areas that only emit the signals (home visits) and edge orders are driven by rows written
directly plus the signals, in the same transaction shape. Every invite and feed the flow produces is also
parsed by vobject (validate=True) and ical.js.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import vobject

from events import signals, timefmt
from events.config import config
from events.core.tables import OutboxMessage
from events.db import aware, utcnow, write_transaction
from events.ical import TOKYO, event_uid
from events.invites import feeds, install
from events.mail import queue_mail
from events.seminars import registration as seminar_registration
from events.seminars import schedule
from events.seminars.tables import Event, Registration
from lifedesign.settings import SmtpSettings
from lifedesign.worker import deliver_once
from tests.conftest import as_person, as_staff, make_person, parse_mail

INTEROP_DIR = Path(__file__).resolve().parents[1] / "interop"
SECRET = "feed-secret-" + "k" * 40


# ---------------------------------------------------------------- stand-ins for the registration service


def tokyo(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TOKYO)


def future_day(days: int, hour: int = 10) -> datetime:
    today = utcnow().astimezone(TOKYO).date() + timedelta(days=days)
    return datetime(today.year, today.month, today.day, hour, tzinfo=TOKYO)


async def make_event(**fields) -> int:
    now = utcnow()
    starts_at = fields.pop("starts_at", future_day(10))
    values = dict(
        kind="seminar", title="ライフデザインセミナー「仕事と家庭」", title_en="Life design seminar: work and family",
        description="筆記用具をお持ちください。", description_en="Please bring something to write with.",
        venue="金沢区役所 7階 会議室", venue_en="Kanazawa ward office, 7F", starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2), capacity=30, status="published", created_at=now, updated_at=now,
    )
    values.update(fields)
    rows = await Event.insert(Event(**values)).returning(Event.id)
    return rows[0]["id"]


async def confirm(event_id: int, person_id: int) -> int:
    """What register() does for a confirmed place: row, signal, confirmation mail carrying invite_for."""
    async with write_transaction():
        now = utcnow()
        rows = await Registration.insert(
            Registration(event=event_id, person=person_id, status="confirmed", created_at=now, updated_at=now,
                         confirmed_at=now)
        ).returning(Registration.id)
        registration_id = rows[0]["id"]
        await signals.PLACE_CHANGED.send(signals.PlaceChanged(
            registration_id=registration_id, event_id=event_id, person_id=person_id, event_kind="seminar", old=None,
            new="confirmed", reason="registered"))
        part = await signals.INVITE_PART.call(event_id=event_id, person_id=person_id, method="REQUEST")
        assert part is not None
        await queue_mail("invite_new", to_email=await _email(person_id), locale="ja",
                         context=await _context(event_id), key=f"confirm:{registration_id}", calendar=part)
    return registration_id


async def _email(person_id: int) -> str:
    from events.core.tables import Person

    return (await Person.select(Person.email).where(Person.id == person_id).first())["email"]


async def _context(event_id: int) -> dict:
    event = await Event.select().where(Event.id == event_id).first()
    return {"title": event["title"], "venue": event["venue"], "starts_at": event["starts_at"],
            "ends_at": event["ends_at"], "event_url": f"{config().base_url}/events/{event_id}",
            "when": timefmt.span(aware(event["starts_at"]), aware(event["ends_at"]))}


async def change_event(event_id: int, **changes) -> None:
    async with write_transaction():
        event = await Event.select(Event.calendar_sequence).where(Event.id == event_id).first()
        await Event.update({**{getattr(Event, k): v for k, v in changes.items()},
                            Event.calendar_sequence: event["calendar_sequence"] + 1,
                            Event.updated_at: utcnow()}).where(Event.id == event_id)
        await signals.EVENT_CHANGED.send(signals.EventChanged(event_id=event_id, fields=frozenset(changes)))


async def cancel_place(registration_id: int) -> None:
    async with write_transaction():
        row = await Registration.select().where(Registration.id == registration_id).first()
        await Registration.update({Registration.status: "cancelled", Registration.cancelled_at: utcnow(),
                                   Registration.updated_at: utcnow()}).where(Registration.id == registration_id)
        await signals.PLACE_CHANGED.send(signals.PlaceChanged(
            registration_id=registration_id, event_id=row["event"], person_id=row["person"], event_kind="seminar",
            old=row["status"], new="cancelled", reason="cancelled"))


async def cancel_event(event_id: int, *, places_first: bool) -> None:
    """The event cancelled: registration.cancelled for each place AND event.cancelled, in either order."""
    async with write_transaction():
        await Event.update({Event.status: "cancelled", Event.updated_at: utcnow()}).where(Event.id == event_id)
        places = await Registration.select().where(
            (Registration.event == event_id) & (Registration.status == "confirmed")
        )
        if not places_first:
            await signals.EVENT_CANCELLED.send(signals.EventCancelled(event_id=event_id))
        for row in places:
            await Registration.update({Registration.status: "cancelled", Registration.updated_at: utcnow()}).where(
                Registration.id == row["id"]
            )
            await signals.PLACE_CHANGED.send(signals.PlaceChanged(
                registration_id=row["id"], event_id=event_id, person_id=row["person"], event_kind="seminar",
                old="confirmed", new="cancelled", reason="event_cancelled"))
        if places_first:
            await signals.EVENT_CANCELLED.send(signals.EventCancelled(event_id=event_id))


async def published_event(**fields) -> int:
    """An event created and published by the seminar service."""
    starts = fields.pop("starts_at", future_day(12, 10))
    values = dict(
        title="ライフデザインセミナー「仕事と家庭」", title_en="Life design seminar: work and family",
        description="筆記用具をお持ちください。", description_en="Please bring something to write with.",
        venue="金沢区役所 7階 会議室", venue_en="Kanazawa ward office, 7F", starts_at=starts,
        ends_at=starts + timedelta(hours=2), capacity=30,
    )
    values.update(fields)
    event_id = await schedule.create_event(values, actor=as_staff(None))
    await schedule.publish_event(event_id, actor=as_staff(None))
    return event_id


# ---------------------------------------------------------------- reading what arrived


@pytest.fixture
def smtp_settings(settings, smtp_server):
    return dataclasses.replace(settings, smtp=SmtpSettings(host="127.0.0.1", port=smtp_server.port, security="none"))


@pytest.fixture(autouse=True)
def invites_installed():
    install()


async def deliver(smtp_settings, smtp_server) -> list:
    """Send everything due over SMTP; return the newly received messages, parsed."""
    before = len(smtp_server.messages)
    while (await deliver_once(smtp_settings))["sent"]:
        pass
    return [(rcpt, parse_mail(data)) for _, rcpt, data in smtp_server.messages[before:]]


def with_calendar(received: list) -> list:
    """The received mails that carry a calendar (the seminar service also sends mails of its own)."""
    return [(rcpt, m) for rcpt, m in received if m.get_content_type() == "multipart/mixed"]


def calendar_of(message) -> tuple[str, bytes]:
    """The iTIP method and the text/calendar body of a received mail (checked equal to the attachment)."""
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in alternative.iter_parts()]
    assert types == ["text/plain", "text/html", "text/calendar"]
    inline = list(alternative.iter_parts())[2]
    method = inline.get_param("method")
    assert inline.get_param("charset").lower() == "utf-8"
    assert attachment.get_filename() == "invite.ics"
    body = inline.get_payload(decode=True)
    assert attachment.get_payload(decode=True) == body
    assert b"\r\n" in body and b"\n" not in body.replace(b"\r\n", b"")
    return method, body


def parse_ics(body: bytes):
    calendar = vobject.readOne(body.decode("utf-8"), validate=True)
    calendar.validate()
    return calendar


def only_vevent(body: bytes):
    (vevent,) = parse_ics(body).contents["vevent"]
    return vevent


def ical_js(bodies: dict[str, bytes], tmp_path: Path) -> dict[str, dict]:
    if shutil.which("node") is None or not (INTEROP_DIR / "node_modules" / "ical.js").is_dir():
        pytest.skip("ical.js needs node and `npm ci --prefix tests/interop`")
    results = {}
    environment = {**os.environ, "TZ": "America/New_York"}  # a floating time would read as New York time
    for name, body in bodies.items():
        path = tmp_path / f"{name}.ics"
        path.write_bytes(body)
        done = subprocess.run(["node", str(INTEROP_DIR / "parse.js"), str(path)], capture_output=True, text=True,
                              timeout=60, env=environment)
        assert done.returncode == 0, done.stderr
        results[name] = json.loads(done.stdout)
    return results


def js_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ---------------------------------------------------------------- the flow


async def test_register_reschedule_cancel_feed_and_interop(db, smtp_settings, smtp_server, tmp_path):
    student = await make_person("student", "Hanako@Example.jp", name="山田 花子")
    starts = future_day(12, 10)
    event_id = await published_event(starts_at=starts)
    uid = event_uid("seminar", event_id, student, config().mail_domain)

    placed = await seminar_registration.register(event_id, student)
    assert placed["status"] == "confirmed"
    registration_id = placed["id"]
    received = await deliver(smtp_settings, smtp_server)
    # One mail confirms the place and carries the invite.
    assert [rcpt for rcpt, _ in received] == [["hanako@example.jp"]]
    method, invite = calendar_of(received[0][1])
    assert method == "REQUEST"
    vevent = only_vevent(invite)
    assert vevent.uid.value == uid
    assert int(vevent.sequence.value) == 0
    assert vevent.dtstart.value.astimezone(UTC) == starts.astimezone(UTC)
    assert b"DTSTART;TZID=Asia/Tokyo:" in invite and b"BEGIN:VTIMEZONE" in invite
    assert vevent.organizer.value == f"mailto:{config().mail_from}"
    assert vevent.organizer.params["CN"] == [config().mail_from_name]
    (attendee,) = vevent.contents["attendee"]
    assert attendee.value == "mailto:hanako@example.jp"
    assert attendee.params["CN"] == ["山田 花子"]
    assert vevent.summary.value == "ライフデザインセミナー「仕事と家庭」"
    assert vevent.location.value == "金沢区役所 7階 会議室"
    assert f"{config().base_url}/events/{event_id}" in vevent.description.value
    assert "METHOD:REQUEST" in invite.decode()

    # The feed holds the same UID, SEQUENCE and times as the invite.
    token = await feeds.issue_token(student, SECRET)
    first = await feeds.feed(token)
    feed_event = only_vevent(first.body)
    assert (feed_event.uid.value, feed_event.sequence.value) == (uid, "0")
    assert feed_event.dtstart.value == vevent.dtstart.value

    # Reschedule: a REQUEST of its own, same UID, higher SEQUENCE, the new time; the feed follows.
    moved = starts + timedelta(days=1, hours=3)
    await schedule.update_event(event_id, {"starts_at": moved, "ends_at": moved + timedelta(hours=2),
                                           "venue": "金沢公会堂"}, actor=as_staff(None))
    received = with_calendar(await deliver(smtp_settings, smtp_server))
    assert len(received) == 1
    method, update = calendar_of(received[0][1])
    assert method == "REQUEST"
    assert "変更" in received[0][1]["Subject"]
    updated = only_vevent(update)
    assert updated.uid.value == uid
    assert int(updated.sequence.value) == 1
    assert updated.dtstart.value.astimezone(UTC) == moved.astimezone(UTC)
    assert updated.location.value == "金沢公会堂"
    second = await feeds.feed(token)
    assert second.etag != first.etag
    feed_event = only_vevent(second.body)
    assert (feed_event.uid.value, feed_event.sequence.value) == (uid, "1")
    assert feed_event.dtstart.value.astimezone(UTC) == moved.astimezone(UTC)
    registration = await Registration.select(Registration.calendar_sequence).where(
        Registration.id == registration_id).first()
    assert registration["calendar_sequence"] == 1

    # A change that is not time, venue or title sends no invite.
    await schedule.update_event(event_id, {"capacity": 40}, actor=as_staff(None))
    assert with_calendar(await deliver(smtp_settings, smtp_server)) == []

    # Cancel the place: one CANCEL, same UID, STATUS:CANCELLED, SEQUENCE above the last REQUEST; gone from the feed.
    await seminar_registration.cancel_registration(registration_id, actor=as_person(student))
    received = with_calendar(await deliver(smtp_settings, smtp_server))
    assert len(received) == 1
    method, cancel = calendar_of(received[0][1])
    assert method == "CANCEL"
    cancelled = only_vevent(cancel)
    assert cancelled.uid.value == uid
    assert cancelled.status.value == "CANCELLED"
    assert int(cancelled.sequence.value) == 2
    assert "vevent" not in parse_ics((await feeds.feed(token)).body).contents

    # ical.js reads the same instants from everything the flow produced.
    download = await feeds.public_download(event_id)
    assert only_vevent(download).uid.value == event_uid("seminar", event_id, None, config().mail_domain)
    parsed = ical_js({"invite": invite, "update": update, "cancel": cancel, "feed": second.body,
                      "download": download}, tmp_path)
    assert parsed["download"]["method"] == "PUBLISH"
    assert [(e["start_utc"], e["attendees"]) for e in parsed["download"]["events"]] == [(js_utc(moved), [])]
    assert parsed["invite"]["method"] == "REQUEST"
    assert [e["start_utc"] for e in parsed["invite"]["events"]] == [js_utc(starts)]
    assert [e["start_utc"] for e in parsed["update"]["events"]] == [js_utc(moved)]
    assert [(e["uid"], e["sequence"]) for e in parsed["update"]["events"]] == [(uid, 1)]
    assert parsed["cancel"]["method"] == "CANCEL"
    assert [(e["uid"], e["status"], e["start_utc"]) for e in parsed["cancel"]["events"]] == [
        (uid, "CANCELLED", js_utc(moved))]
    assert parsed["feed"]["method"] is None
    assert [(e["uid"], e["start_utc"], e["attendees"]) for e in parsed["feed"]["events"]] == [(uid, js_utc(moved), [])]
    assert parsed["feed"]["name"] == "金沢区のイベント（山田 花子）"


async def test_real_event_cancel_sends_one_cancel_per_confirmed_person(db, smtp_settings, smtp_server):
    people = [await make_person("student") for _ in range(3)]
    event_id = await published_event(capacity=2)
    statuses = [(await seminar_registration.register(event_id, p))["status"] for p in people]
    assert statuses == ["confirmed", "confirmed", "waitlisted"]
    await deliver(smtp_settings, smtp_server)
    await schedule.cancel_event(event_id, actor=as_staff(None), reason="台風のため")
    received = with_calendar(await deliver(smtp_settings, smtp_server))
    assert sorted((rcpt[0], calendar_of(m)[0]) for rcpt, m in received) == sorted(
        [(await _email(p), "CANCEL") for p in people[:2]])
    reminders = await OutboxMessage.select(OutboxMessage.status).where(OutboxMessage.kind == "reminder")
    assert [r["status"] for r in reminders] == ["withdrawn", "withdrawn"]


async def test_registering_again_after_a_cancel_raises_the_sequence(db, smtp_settings, smtp_server):
    student = await make_person("student")
    event_id = await make_event()
    await cancel_place(await confirm(event_id, student))
    await confirm(event_id, student)
    received = await deliver(smtp_settings, smtp_server)
    sequences = [(calendar_of(m)[0], int(only_vevent(calendar_of(m)[1]).sequence.value)) for _, m in received]
    # The new REQUEST must outrank the CANCEL the calendar holds, or it would be ignored.
    assert sequences == [("REQUEST", 0), ("CANCEL", 1), ("REQUEST", 2)]


@pytest.mark.parametrize("places_first", [True, False])
async def test_event_cancelled_sends_exactly_one_cancel_per_person(db, smtp_settings, smtp_server, places_first):
    people = [await make_person("student") for _ in range(3)]
    event_id = await make_event()
    for person in people:
        await confirm(event_id, person)
    other_event = await make_event(title="別のセミナー")
    await confirm(other_event, people[0])
    await deliver(smtp_settings, smtp_server)

    await cancel_event(event_id, places_first=places_first)
    received = await deliver(smtp_settings, smtp_server)
    methods = sorted((rcpt[0], calendar_of(m)[0]) for rcpt, m in received)
    emails = sorted([(await _email(p), "CANCEL") for p in people])
    assert methods == emails
    assert all("中止" in m["Subject"] for _, m in received)
    # The other event's reminder is untouched; this event's are withdrawn.
    reminders = await OutboxMessage.select(OutboxMessage.group_key, OutboxMessage.status).where(
        OutboxMessage.kind == "reminder")
    assert sorted((r["group_key"].endswith(f":e{event_id}"), r["status"]) for r in reminders) == [
        (False, "queued"), (True, "withdrawn"), (True, "withdrawn"), (True, "withdrawn")]


async def test_english_recipient_gets_english_fields_with_japanese_fallback(db, smtp_settings, smtp_server):
    person = await make_person("student", locale="en")
    event_id = await make_event(venue_en="")
    await confirm(event_id, person)
    await change_event(event_id, title_en="Life design seminar (new title)")
    received = await deliver(smtp_settings, smtp_server)
    update = only_vevent(calendar_of(received[-1][1])[1])
    assert update.summary.value == "Life design seminar (new title)"
    assert update.location.value == "金沢区役所 7階 会議室"  # no English venue: the Japanese one
    assert update.description.value.startswith("Please bring something to write with.")
    assert received[-1][1]["Subject"].startswith("[Kanazawa Life Design] Change")


async def test_provider_cancel_and_signal_together_give_one_cancel(db, smtp_settings, smtp_server):
    """The registration's own cancellation mail may ask invite_for(method=CANCEL) before or after the signal."""
    person = await make_person("student")
    event_id = await make_event()
    registration_id = await confirm(event_id, person)
    async with write_transaction():
        await Registration.update({Registration.status: "cancelled"}).where(Registration.id == registration_id)
        part = await signals.INVITE_PART.call(event_id=event_id, person_id=person, method="CANCEL")
        await signals.PLACE_CHANGED.send(signals.PlaceChanged(
            registration_id=registration_id, event_id=event_id, person_id=person, event_kind="seminar",
            old="confirmed", new="cancelled", reason="cancelled"))
        assert await signals.INVITE_PART.call(event_id=event_id, person_id=person, method="CANCEL") is None
    assert part is not None and part.method == "CANCEL"
    cancels = await OutboxMessage.count().where(OutboxMessage.kind == "invite_cancel")
    assert cancels == 0  # the registration's own mail carries the only CANCEL


async def test_an_area_that_only_emits_gets_the_invite_from_the_worker_job(db, smtp_settings, smtp_server):
    from events.invites.invites import send_missing_invites

    person = await make_person("student")
    event_id = await make_event(kind="home_visit", visibility="private", title="家庭訪問")
    async with write_transaction():
        now = utcnow()
        rows = await Registration.insert(Registration(event=event_id, person=person, status="confirmed",
                                                      created_at=now, updated_at=now)).returning(Registration.id)
        await signals.PLACE_CHANGED.send(signals.PlaceChanged(
            registration_id=rows[0]["id"], event_id=event_id, person_id=person, event_kind="home_visit", old=None,
            new="confirmed", reason="visit_confirmed"))
    assert await send_missing_invites() == 1
    assert await send_missing_invites() == 0  # idempotent
    received = await deliver(smtp_settings, smtp_server)
    assert len(received) == 1
    method, body = calendar_of(received[0][1])
    assert method == "REQUEST"
    assert only_vevent(body).uid.value == event_uid("home_visit", event_id, person, config().mail_domain)


async def test_exchange_session_description_carries_the_table_summary(db, smtp_settings, smtp_server):
    """The real exchanges area provides the table plan (signals.TABLE_SUMMARY): no stand-in."""
    from events.exchanges import sessions
    from events.invites.invites import resend_invite

    coordinator = as_staff(await make_person("coordinator"))
    staff = [await make_person("facility_staff") for _ in range(4)]  # each at a facility of their own
    event_id = await make_event(kind="staff_exchange", title="保育交流会")
    registrations = [await confirm(event_id, person) for person in staff]
    session_id = await sessions.create_session(event_id, actor=coordinator, rounds=2, table_size=2,
                                               themes=["保育の楽しさ", ""])
    await sessions.assign_tables(session_id, 7, actor=coordinator)
    await deliver(smtp_settings, smtp_server)
    await resend_invite(registrations[0], actor=coordinator)
    (received,) = await deliver(smtp_settings, smtp_server)
    description = only_vevent(calendar_of(received[1])[1]).description.value
    seats = await sessions.seats_of(session_id, staff[0])
    assert "交流会でのあなたの席（テーブル番号）:" in description
    assert f"第1ラウンド「保育の楽しさ」: テーブル {seats[0]['table']}" in description
    assert f"第2ラウンド: テーブル {seats[1]['table']}" in description
    assert f"/exchanges/{session_id}/my-table" in description


async def test_exchange_summary_failure_does_not_block_the_registration(db):
    from events import signals

    async def broken(event_id, person_id, locale):
        raise RuntimeError("broken")

    real = signals.TABLE_SUMMARY._impl
    signals.TABLE_SUMMARY.provide(broken)
    try:
        person = await make_person("facility_staff")
        event_id = await make_event(kind="staff_exchange")
        await confirm(event_id, person)
    finally:
        signals.TABLE_SUMMARY.provide(real)
    assert await Registration.count().where(Registration.status == "confirmed") == 1


async def test_resend_invite_sends_the_current_invite_again(db, smtp_settings, smtp_server):
    from events.core.tables import AuditEntry
    from events.errors import Conflict, NotFound
    from events.invites.invites import resend_invite

    coordinator = await make_person("coordinator")
    person = await make_person("student")
    event_id = await make_event()
    registration_id = await confirm(event_id, person)
    await change_event(event_id, title="新しい名称")
    await deliver(smtp_settings, smtp_server)
    await resend_invite(registration_id, actor=as_staff(coordinator))
    await resend_invite(registration_id, actor=as_staff(coordinator))
    received = await deliver(smtp_settings, smtp_server)
    assert len(received) == 2
    for _, message in received:
        method, body = calendar_of(message)
        vevent = only_vevent(body)
        assert (method, vevent.sequence.value, vevent.summary.value) == ("REQUEST", "1", "新しい名称")
    assert await AuditEntry.count().where(AuditEntry.action == "invite_resent") == 2
    await cancel_place(registration_id)
    with pytest.raises(Conflict):
        await resend_invite(registration_id, actor=as_staff(coordinator))
    with pytest.raises(NotFound):
        await resend_invite(registration_id + 999, actor=as_staff(coordinator))


async def test_host_family_invite_without_registration_is_in_the_feed_and_cancelled_with_the_event(
    db, smtp_settings, smtp_server
):
    """Home visits: the family holds no registration, its confirmation mail asks invite_for; the visit is
    still in the family's feed, and cancelling the event cancels the family's invite too."""
    family = await make_person("host_family", name="鈴木家")
    student = await make_person("student")
    event_id = await make_event(kind="home_visit", visibility="private", title="家庭訪問（六浦）")
    await confirm(event_id, student)
    async with write_transaction():
        part = await signals.INVITE_PART.call(event_id=event_id, person_id=family, method="REQUEST")
    assert part is not None and part.method == "REQUEST"
    token = await feeds.issue_token(family, SECRET)
    (entry,) = parse_ics((await feeds.feed(token)).body).contents["vevent"]
    assert entry.uid.value == event_uid("home_visit", event_id, family, config().mail_domain)
    await deliver(smtp_settings, smtp_server)
    async with write_transaction():
        await Event.update({Event.status: "cancelled", Event.updated_at: utcnow()}).where(Event.id == event_id)
        await signals.EVENT_CANCELLED.send(signals.EventCancelled(event_id=event_id))
    received = await deliver(smtp_settings, smtp_server)
    assert sorted((rcpt[0], calendar_of(m)[0]) for rcpt, m in received) == sorted(
        [(await _email(family), "CANCEL"), (await _email(student), "CANCEL")])
    assert "vevent" not in parse_ics((await feeds.feed(token)).body).contents
