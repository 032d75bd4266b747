"""Per-person calendar feeds (a secret, revocable URL) and the public download of a published event.

A conditional GET is answered from the token row's cached (fingerprint, ETag) without building the body:
the fingerprint (events.ical.feed_fingerprint) comes from one aggregate query over the person's
registrations, their events and invite states. The fingerprint is read *before* the body is built, so a
change in between can only pair an old fingerprint with a newer body (a needless rebuild later), never a
new fingerprint with an old body (a wrong 304).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from events import access
from events.access import Actor
from events.config import config
from events.db import raw, utcnow, write_transaction
from events.errors import NotFound
from events.ical import build_feed, build_publish, etag_matches, feed_etag, feed_fingerprint
from events.invites.common import as_utc_datetime, calendar_event, event_row
from events.invites.tables import CalendarFeedToken
from events.seminars.tables import CALENDAR_STATES, LIVE_EVENT_STATES
from events.tokens import digest

REFRESH = timedelta(hours=1)
_STATES_SQL = ", ".join(f"'{s}'" for s in CALENDAR_STATES)
_EVENT_STATES_SQL = ", ".join(f"'{s}'" for s in LIVE_EVENT_STATES)



def derive_token(secret_key: str, nonce: str) -> str:
    mac = hmac.new(secret_key.encode(), f"calendar-feed:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


async def current_token(person_id: int, secret_key: str) -> str | None:
    """The person's live feed token, or None (never issued, rotated away, or the secret key changed)."""
    row = await CalendarFeedToken.select(CalendarFeedToken.nonce, CalendarFeedToken.token_hash).where(
        (CalendarFeedToken.person == person_id) & CalendarFeedToken.revoked_at.is_null()
    ).first()
    if row is None:
        return None
    token = derive_token(secret_key, row["nonce"])
    return token if hmac.compare_digest(digest(token), row["token_hash"]) else None


async def issue_token(person_id: int, secret_key: str) -> str:
    """A new feed URL for the person; the old one (if any) stops working at once."""
    async with write_transaction():
        now = utcnow()
        await CalendarFeedToken.update({CalendarFeedToken.revoked_at: now}).where(
            (CalendarFeedToken.person == person_id) & CalendarFeedToken.revoked_at.is_null()
        )
        nonce = secrets.token_hex(16)
        token = derive_token(secret_key, nonce)
        await CalendarFeedToken.insert(
            CalendarFeedToken(person=person_id, nonce=nonce, token_hash=digest(token), created_at=now)
        )
    return token


def feed_url(token: str) -> str:
    return f"{config().base_url}/calendar/{token}.ics"


def webcal_url(token: str) -> str:
    return "webcal://" + feed_url(token).split("://", 1)[1]


def feed_name(name: str, locale: str) -> str:
    return f"Kanazawa ward events ({name})" if locale == "en" else f"金沢区のイベント（{name}）"


@dataclass(frozen=True)
class FeedResponse:
    status: int  # 200 or 304
    etag: str
    body: bytes = b""


def _latest(*values: object) -> datetime | None:
    moments = [as_utc_datetime(v) for v in values if v is not None]
    return max(moments) if moments else None


# The person's calendar: events they hold a place in (registration confirmed or attended), and events whose
# invite they got without any registration (a host family's confirmed home visit). Five person-id arguments.
_HELD_EVENTS = (
    "FROM event e LEFT JOIN calendar_invite i ON i.event = e.id AND i.person = {} "
    f"WHERE e.status IN ({_EVENT_STATES_SQL}) AND e.id IN ("
    "SELECT r.event FROM registration r WHERE r.person = {} UNION SELECT i2.event FROM calendar_invite i2 "
    "WHERE i2.person = {}) AND ("
    f"EXISTS (SELECT 1 FROM registration r WHERE r.event = e.id AND r.person = {{}} AND r.status IN ({_STATES_SQL})) "
    "OR (i.state = 'active' AND NOT EXISTS (SELECT 1 FROM registration r WHERE r.event = e.id AND r.person = {})))"
)


async def _fingerprint(person: dict, locale: str) -> str:
    person_id = person["id"]
    # One query. The change times span all the person's rows, not only the held ones: a place that ends
    # changes its registration's time.
    (aggregate,) = await raw(
        "SELECT COUNT(*) AS n, MAX(e.updated_at) AS e_max, "
        "(SELECT MAX(updated_at) FROM registration WHERE person = {}) AS r_max, "
        f"(SELECT MAX(updated_at) FROM calendar_invite WHERE person = {{}}) AS i_max {_HELD_EVENTS}",
        *[person_id] * 7,
    )
    return feed_fingerprint(
        # The base URL is in every entry's link; a move of the site must change the key too.
        name=f"{feed_name(person['name'], locale)}\0{config().base_url}",
        locale=locale,
        event_count=int(aggregate["n"] or 0),
        latest_change=_latest(aggregate["e_max"], aggregate["r_max"], aggregate["i_max"]),
        refresh=REFRESH,
    )


async def _body(person_id: int, name: str, locale: str) -> bytes:
    rows = await raw(
        "SELECT e.id, e.kind, e.title, e.title_en, e.description, e.description_en, e.venue, e.venue_en, "
        "e.starts_at, e.ends_at, e.status, e.updated_at, "
        "(SELECT MAX(r.updated_at) FROM registration r WHERE r.event = e.id AND r.person = {}) AS r_updated, "
        f"i.sequence AS invite_sequence, i.updated_at AS i_updated {_HELD_EVENTS}",
        *[person_id] * 6,
    )
    entries = [
        calendar_event(
            row, person_id=person_id, locale=locale, sequence=row["invite_sequence"] or 0,
            last_modified=_latest(row["updated_at"], row["r_updated"], row["i_updated"]) or utcnow(),
        )
        for row in rows
    ]
    return build_feed(entries, name=name, refresh=REFRESH)


async def feed(raw_token: str, if_none_match: str | None = None) -> FeedResponse:
    """The feed behind a token: 304 when the client holds the current body, else the body. Unknown → NotFound."""
    token = await CalendarFeedToken.select(
        CalendarFeedToken.id, CalendarFeedToken.person, CalendarFeedToken.fingerprint, CalendarFeedToken.etag,
        CalendarFeedToken.person.name.as_alias("name"), CalendarFeedToken.person.locale.as_alias("locale"),
        CalendarFeedToken.person.active.as_alias("active"),
    ).where((CalendarFeedToken.token_hash == digest(raw_token)) & CalendarFeedToken.revoked_at.is_null()).first()
    if token is None or not token["active"]:
        raise NotFound("このカレンダーのURLは使えません。", code="feed_not_found")
    person = {"id": token["person"], "name": token["name"], "locale": token["locale"]}
    locale = person["locale"] if person["locale"] in ("ja", "en") else "ja"
    fingerprint = await _fingerprint(person, locale)
    if token["etag"] and token["fingerprint"] == fingerprint and etag_matches(if_none_match, token["etag"]):
        return FeedResponse(status=304, etag=token["etag"])
    body = await _body(person["id"], feed_name(person["name"], locale), locale)
    etag = feed_etag(body)
    if (token["fingerprint"], token["etag"]) != (fingerprint, etag):
        async with write_transaction():
            await CalendarFeedToken.update(
                {CalendarFeedToken.fingerprint: fingerprint, CalendarFeedToken.etag: etag}
            ).where(CalendarFeedToken.id == token["id"])
    if etag_matches(if_none_match, etag):
        return FeedResponse(status=304, etag=etag)
    return FeedResponse(status=200, etag=etag, body=body)


async def public_download(event_id: int, locale: str = "ja") -> bytes:
    """METHOD:PUBLISH of a published public event ("add to my calendar"); others are not found."""
    event = await event_row(event_id)
    if event is None or event["status"] not in LIVE_EVENT_STATES or not access.event_visible(
            event, Actor.of(None), member=False):  # what anyone may see (events.access), and still on
        raise NotFound("そのイベントは見つかりません。", code="event_not_found")
    entry = calendar_event(
        event, person_id=None, locale=locale, sequence=max(0, event["calendar_sequence"] or 0),
        last_modified=event["updated_at"] or event["starts_at"],
    )
    return build_publish(entry, organizer_email=config().mail_from, organizer_name=config().mail_from_name)
