"""HTTP: personal feeds (ETag, 304, rotation), the profile block, public downloads, one-click unsubscribe, resend."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import vobject

from events.auth import create_api_token
from events.config import config
from events.core.tables import OutboxMessage, Person
from events.ical import event_uid
from events.invites.tables import CalendarFeedToken
from tests.conftest import csrf_from, login, make_person, parse_mail
from tests.service.test_invites_flow import (  # noqa: F401 - invites_installed is an autouse fixture
    cancel_place,
    change_event,
    confirm,
    future_day,
    invites_installed,
    make_event,
)


async def issue_feed(client) -> str:
    """Press the profile's button; return the feed path shown on the profile."""
    profile = await client.get("/profile")
    assert 'id="calendar-feed-issue"' in profile.text
    response = await client.post("/profile/calendar-feed", data={"_csrf": csrf_from(profile.text)},
                                 follow_redirects=False)
    assert response.status_code == 303
    return feed_path((await client.get("/profile")).text)


def feed_path(profile_html: str) -> str:
    url = re.search(r'id="calendar-feed-url" type="text" readonly value="([^"]+)"', profile_html).group(1)
    webcal = re.search(r'<a href="(webcal://[^"]+)" id="calendar-feed-webcal"', profile_html).group(1)
    assert webcal == "webcal://" + url.split("://", 1)[1]
    assert url.startswith(config().base_url + "/calendar/") and url.endswith(".ics")
    return urlsplit(url).path


async def test_feed_etag_304_byte_identical_and_rotation(client):
    person = await make_person("student", "feed@example.jp", name="佐藤 葵")
    event_id = await make_event()
    registration_id = await confirm(event_id, person)
    await confirm(await make_event(title="第2回", starts_at=future_day(20)), person)
    await login(client, "feed@example.jp")
    profile = await client.get("/profile")
    assert 'id="calendar-feed-issue"' in profile.text
    path = await issue_feed(client)
    profile = (await client.get("/profile")).text
    assert 'id="calendar-feed-copy"' in profile and "/static/calendar-feed.js" in profile
    assert 'action="/profile/calendar-feed"' in profile and 'id="calendar-feed-rotate"' in profile

    first = await client.get(path)
    assert first.status_code == 200
    assert first.headers["content-type"] == "text/calendar; charset=utf-8"
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{40}"', etag)  # strong: no W/
    assert first.headers["cache-control"] == "no-store"  # a logged-in browser
    calendar = vobject.readOne(first.text, validate=True)
    assert calendar.x_wr_calname.value == "金沢区のイベント（佐藤 葵）"
    assert "method" not in calendar.contents
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT1H" in first.text and "X-PUBLISHED-TTL:PT1H" in first.text
    assert sorted(e.uid.value for e in calendar.vevent_list) == sorted(
        event_uid("seminar", eid, person, config().mail_domain) for eid in (event_id, event_id + 1))
    assert "ATTENDEE" not in first.text

    again = await client.get(path)
    assert again.content == first.content and again.headers["etag"] == etag
    not_modified = await client.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert (await client.get(path, headers={"If-None-Match": '"other"'})).status_code == 200

    await change_event(event_id, title="新しい名称")
    changed = await client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert "新しい名称" in changed.text
    await cancel_place(registration_id)
    fewer = await client.get(path)
    assert len(vobject.readOne(fewer.text).vevent_list) == 1

    # Rotation: the old URL is dead at once, the new one serves the same feed.
    profile = await client.get("/profile")
    await client.post("/profile/calendar-feed", data={"_csrf": csrf_from(profile.text)})
    new_path = feed_path((await client.get("/profile")).text)
    assert new_path != path
    gone = await client.get(path)
    assert gone.status_code == 404
    assert (await client.get(new_path)).content == fewer.content
    assert (await client.get("/calendar/unknown-token.ics")).status_code == 404
    client.cookies.clear()  # a calendar client: no session
    anonymous = await client.get(new_path)
    assert anonymous.headers["cache-control"] == "private, no-cache"
    assert anonymous.content == fewer.content
    assert (await client.get(new_path.removesuffix(".ics"))).status_code == 404


async def test_304_comes_from_the_cached_fingerprint_without_rebuilding(client):
    person = await make_person("student", "cache@example.jp")
    event_id = await make_event()
    await confirm(event_id, person)
    await login(client, "cache@example.jp")
    path = await issue_feed(client)
    await client.get(path)
    # Plant a different ETag for the same fingerprint: only a cached answer can match it.
    await CalendarFeedToken.update({CalendarFeedToken.etag: '"planted"'}).where(CalendarFeedToken.person == person)
    assert (await client.get(path, headers={"If-None-Match": '"planted"'})).status_code == 304
    # Negative control: once the data changes, the fingerprint differs and the body is rebuilt.
    await change_event(event_id, venue="金沢公会堂")
    rebuilt = await client.get(path, headers={"If-None-Match": '"planted"'})
    assert rebuilt.status_code == 200 and "金沢公会堂" in rebuilt.text


async def test_rotate_needs_csrf_and_login(client):
    await make_person("student", "csrf@example.jp")
    assert (await client.post("/profile/calendar-feed", data={})).status_code in (401, 403)
    await login(client, "csrf@example.jp")
    refused = await client.post("/profile/calendar-feed", data={"_csrf": "wrong"})
    assert refused.status_code == 403
    assert await CalendarFeedToken.count() == 0


async def test_public_download_of_published_public_events_only(client):
    public = await make_event(title="公開セミナー")
    response = await client.get(f"/events/{public}/calendar.ics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert 'filename="event-' in response.headers["content-disposition"]
    calendar = vobject.readOne(response.text, validate=True)
    assert calendar.method.value == "PUBLISH"
    assert calendar.vevent.uid.value == event_uid("seminar", public, None, config().mail_domain)
    assert "ATTENDEE" not in response.text
    english = await client.get(f"/events/{public}/calendar.ics?lang=en")
    assert "SUMMARY:Life design seminar: work and family" in english.text
    private = await make_event(visibility="private", kind="home_visit")
    draft = await make_event(status="draft")
    for event_id in (private, draft, 99999):
        assert (await client.get(f"/events/{event_id}/calendar.ics")).status_code == 404


async def _reminder_token(person_id: int) -> str:
    rows = await OutboxMessage.select(OutboxMessage.message).where(OutboxMessage.kind == "reminder")
    header = parse_mail(bytes(rows[0]["message"]))["List-Unsubscribe"]
    return urlsplit(header.split(">")[0].lstrip("<")).path


async def test_one_click_unsubscribe_without_csrf_or_session(client):
    person = await make_person("student", "unsub@example.jp")
    await confirm(await make_event(), person)
    path = await _reminder_token(person)
    page = await client.get(path)
    assert page.status_code == 200 and 'id="confirm-unsubscribe"' in page.text
    assert page.headers["cache-control"] == "no-store"
    # RFC 8058: the mail client POSTs this body, with no cookie and no CSRF token.
    response = await client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert "停止しました" in response.text
    assert (await Person.select(Person.reminders).where(Person.id == person).first())["reminders"] is False
    statuses = await OutboxMessage.select(OutboxMessage.status).where(OutboxMessage.kind == "reminder")
    assert [s["status"] for s in statuses] == ["withdrawn"]
    assert (await client.get("/reminders/unsubscribe/nope")).status_code == 404
    assert (await client.post("/reminders/unsubscribe/nope", data={"List-Unsubscribe": "One-Click"})).status_code == 404


async def test_resend_invite_api_and_form(client):
    coordinator = await make_person("coordinator", "coord@example.jp")
    student = await make_person("student", "stud@example.jp")
    registration_id = await confirm(await make_event(), student)
    token = await create_api_token(coordinator, "test")
    response = await client.post(f"/api/v1/registrations/{registration_id}/resend-invite",
                                 headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202, response.text
    assert response.json() == {"registration_id": registration_id, "sequence": 0, "status": "queued"}
    assert await OutboxMessage.count().where(OutboxMessage.kind == "invite_resend") == 1
    missing = await client.post("/api/v1/registrations/99999/resend-invite",
                                headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "registration_not_found"
    student_token = await create_api_token(student, "mine")
    refused = await client.post(f"/api/v1/registrations/{registration_id}/resend-invite",
                                headers={"Authorization": f"Bearer {student_token}"})
    assert refused.status_code == 403
    assert "/api/v1/registrations/{registration_id}/resend-invite" in (await client.get("/schema/openapi.json")).json()[
        "paths"]

    await login(client, "coord@example.jp")
    csrf = csrf_from((await client.get("/profile")).text)
    form = await client.post(f"/coordinator/registrations/{registration_id}/resend-invite",
                             data={"_csrf": csrf, "next": "/coordinator/events/1"}, follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == "/coordinator/events/1"
    offsite = await client.post(f"/coordinator/registrations/{registration_id}/resend-invite",
                                data={"_csrf": csrf, "next": "//evil.example/"}, follow_redirects=False)
    assert offsite.status_code == 200 and "再送しました" in offsite.text
    assert await OutboxMessage.count().where(OutboxMessage.kind == "invite_resend") == 3


async def test_feed_of_a_disabled_account_is_gone(client):
    from events.invites import feeds

    person = await make_person("student")
    await confirm(await make_event(), person)
    token = await feeds.issue_token(person, "k" * 40)
    assert (await client.get(f"/calendar/{token}.ics")).status_code == 200
    await Person.update({Person.active: False}).where(Person.id == person)
    assert (await client.get(f"/calendar/{token}.ics")).status_code == 404
