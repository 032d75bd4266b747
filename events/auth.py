"""Password-less login (magic links), server-side sessions, personal API tokens, rate limits.

Secrets are random 256-bit tokens; only their SHA-256 is stored, so a copy of the database
cannot be used to log in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from events import audit
from events.access import Actor
from events.config import config
from events.core.tables import ApiToken, LoginToken, Person, PersonRole, RateLimitHit, WebSession
from events.db import aware, decoded, raw, utcnow, write_transaction
from events.errors import Invalid, NotFound, RateLimited
from events.mail import queue_mail
from events.people import normalize_email
from events.tokens import digest

LOGIN_LIMIT_PER_ADDRESS = (5, timedelta(minutes=15))
LOGIN_LIMIT_PER_CLIENT = (20, timedelta(minutes=15))



def _safe_next(path: str) -> str:
    # Only local paths: an open redirect after login would help phishing.
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path[:500]


async def _over_limit(bucket: str, limit: int, window: timedelta) -> bool:
    """Count and record a hit in the database, so the limit holds across processes."""
    now = utcnow()
    await RateLimitHit.delete().where(RateLimitHit.at < now - timedelta(days=1))
    recent = await RateLimitHit.count().where((RateLimitHit.bucket == bucket) & (RateLimitHit.at > now - window))
    if recent >= limit:
        return True
    await RateLimitHit.insert(RateLimitHit(bucket=bucket, at=now))
    return False


async def accept_login_request(email: str, *, client: str) -> str:
    """The part of a login request a caller waits for: the address checked and both rate limits counted — the
    same work whether or not the address belongs to anyone. Returns the normalised address for
    `send_login_link`, which the shell runs after it has answered (so the answer's timing tells nothing)."""
    email = normalize_email(email)
    async with write_transaction():
        if await _over_limit(f"login-client:{client}", *LOGIN_LIMIT_PER_CLIENT) or await _over_limit(
            f"login-address:{email}", *LOGIN_LIMIT_PER_ADDRESS
        ):
            raise RateLimited("ログインの要求が多すぎます。しばらくしてからもう一度お試しください。", retry_after=300)
    return email


async def send_login_link(email: str, next_path: str = "/") -> bool:
    """Queue a login mail if the address belongs to an active account (True); nothing otherwise."""
    async with write_transaction():
        person = await Person.select().where((Person.email == email) & (Person.active.eq(True))).first()
        if person is None:
            return False
        raw_token = secrets.token_urlsafe(32)
        now = utcnow()
        minutes = config().login_link_minutes
        await LoginToken.insert(
            LoginToken(
                token_hash=digest(raw_token), email=email, created_at=now,
                expires_at=now + timedelta(minutes=minutes), next_path=_safe_next(next_path),
            )
        )
        await queue_mail(
            "login",
            to_email=email,
            to_name=person["name"],
            locale=person["locale"],
            context={"email": email, "link": f"{config().base_url}/login/{raw_token}", "minutes": minutes},
            key=f"login:{digest(raw_token)}",
        )
    return True


async def request_login(email: str, *, client: str, next_path: str = "/") -> None:
    """Both parts in one go (the CLI, sign-up, tests); the HTTP login answers between the two."""
    await send_login_link(await accept_login_request(email, client=client), next_path)


async def login_link_valid(raw_token: str) -> bool:
    row = await LoginToken.select(LoginToken.expires_at, LoginToken.used_at).where(
        LoginToken.token_hash == digest(raw_token)
    ).first()
    return bool(row and row["used_at"] is None and row["expires_at"] > utcnow())


@dataclass(frozen=True)
class NewSession:
    session_id: str  # the raw cookie value; only its hash is stored
    csrf_token: str
    person_id: int
    next_path: str


async def consume_login(raw_token: str, *, client: str) -> NewSession:
    """Single use: the conditional UPDATE lets exactly one of two concurrent clicks win."""
    async with write_transaction():
        now = utcnow()
        rows = await LoginToken.update({LoginToken.used_at: now}).where(
            (LoginToken.token_hash == digest(raw_token)) & LoginToken.used_at.is_null() & (LoginToken.expires_at > now)
        ).returning(LoginToken.email, LoginToken.next_path)
        if not rows:
            raise Invalid(
                "このログイン用リンクは使えません（期限切れ、または使用済み）。もう一度ログインをお試しください。",
                code="login_link_invalid",
                status=400,
            )
        person = await Person.select(Person.id, Person.active).where(Person.email == rows[0]["email"]).first()
        if person is None or not person["active"]:
            raise Invalid("このアカウントは利用できません。", code="account_disabled", status=403)
        session = await create_session(person["id"], next_path=rows[0]["next_path"])
        await audit.record(Actor(person["id"], frozenset(), client), "login", subject_type="person",
                           subject_id=person["id"])
    return session


async def create_session(person_id: int, *, next_path: str = "/") -> NewSession:
    raw_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    now = utcnow()
    async with write_transaction():
        await WebSession.insert(
            WebSession(id_hash=digest(raw_id), person=person_id, csrf_token=csrf, created_at=now, last_seen_at=now)
        )
    return NewSession(session_id=raw_id, csrf_token=csrf, person_id=person_id, next_path=next_path)


async def resolve_session(
    raw_id: str, *, idle: timedelta, absolute: timedelta, now: datetime | None = None
) -> dict[str, Any] | None:
    """The live session behind a cookie, or None when it is unknown, ended, idle too long or too old."""
    now = now or utcnow()
    row = await WebSession.select(
        WebSession.id, WebSession.person, WebSession.csrf_token, WebSession.created_at,
        WebSession.last_seen_at, WebSession.ended_at, WebSession.person.active.as_alias("active"),
    ).where(WebSession.id_hash == digest(raw_id)).first()
    if row is None or row["ended_at"] is not None or not row["active"]:
        return None
    if now - row["last_seen_at"] > idle or now - row["created_at"] > absolute:
        return None
    if now - row["last_seen_at"] > timedelta(minutes=1):  # touch at most once a minute: fewer writes
        async with write_transaction():
            await WebSession.update({WebSession.last_seen_at: now}).where(WebSession.id == row["id"])
    return row


# ---------------------------------------------------------------- identity: one query per request

_PERSON_COLUMNS = frozenset(c._meta.db_column_name for c in Person._meta.columns)
_PERSON = ", ".join(f"person.{name}" for name in sorted(_PERSON_COLUMNS))
_ROLES = f"LEFT JOIN {PersonRole._meta.tablename} ON person_role.person = person.id"


def _person_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The person (as people.get_person gives it) from their rows, one per role."""
    person = decoded({k: v for k, v in rows[0].items() if k in _PERSON_COLUMNS}, Person)
    person["roles"] = sorted({r["role_name"] for r in rows if r["role_name"]})
    return person


async def identify_token(raw_token: str) -> dict[str, Any] | None:
    """The active person behind a personal API token, with their roles — in one statement."""
    rows = await raw(
        f"SELECT {_PERSON}, person_role.role AS role_name FROM api_token JOIN person ON person.id = api_token.person "
        f"{_ROLES} WHERE api_token.token_hash = {{}} AND api_token.revoked_at IS NULL AND person.active = {{}}",
        digest(raw_token), True)
    return _person_of(rows) if rows else None


async def identify_session(raw_id: str, *, idle: timedelta, absolute: timedelta,
                           now: datetime | None = None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The live session behind a cookie and its person with their roles — in one statement (plus, at most
    once a minute, the touch of `last_seen_at`). None when it is unknown, ended, idle too long or too old."""
    now = now or utcnow()
    rows = await raw(
        f"SELECT web_session.id AS session_id, web_session.csrf_token AS session_csrf, "
        f"web_session.created_at AS session_created_at, web_session.last_seen_at AS session_last_seen_at, "
        f"{_PERSON}, person_role.role AS role_name FROM web_session JOIN person ON person.id = web_session.person "
        f"{_ROLES} WHERE web_session.id_hash = {{}} AND web_session.ended_at IS NULL AND person.active = {{}}",
        digest(raw_id), True)
    if not rows:
        return None
    first = rows[0]
    created, last_seen = aware(first["session_created_at"]), aware(first["session_last_seen_at"])
    if now - last_seen > idle or now - created > absolute:
        return None
    if now - last_seen > timedelta(minutes=1):  # touch at most once a minute: fewer writes
        async with write_transaction():
            await WebSession.update({WebSession.last_seen_at: now}).where(WebSession.id == first["session_id"])
    return {"id": first["session_id"], "csrf_token": first["session_csrf"]}, _person_of(rows)


async def end_session(raw_id: str) -> None:
    async with write_transaction():
        await WebSession.update({WebSession.ended_at: utcnow()}).where(
            (WebSession.id_hash == digest(raw_id)) & WebSession.ended_at.is_null()
        )


async def create_api_token(person_id: int, label: str = "") -> str:
    raw_token = "ld_" + secrets.token_urlsafe(32)
    async with write_transaction():
        await ApiToken.insert(
            ApiToken(person=person_id, label=label[:100], token_hash=digest(raw_token), prefix=raw_token[:10], created_at=utcnow())
        )
    return raw_token


async def resolve_api_token(raw_token: str) -> int | None:
    row = await ApiToken.select(ApiToken.id, ApiToken.person, ApiToken.person.active.as_alias("active")).where(
        (ApiToken.token_hash == digest(raw_token)) & ApiToken.revoked_at.is_null()
    ).first()
    if row is None or not row["active"]:
        return None
    return row["person"]


async def list_api_tokens(person_id: int) -> list[dict[str, Any]]:
    return await ApiToken.select(
        ApiToken.id, ApiToken.label, ApiToken.prefix, ApiToken.created_at, ApiToken.revoked_at
    ).where(ApiToken.person == person_id).order_by(ApiToken.id)


async def revoke_api_token(person_id: int, token_id: int) -> None:
    async with write_transaction():
        rows = await ApiToken.update({ApiToken.revoked_at: utcnow()}).where(
            (ApiToken.id == token_id) & (ApiToken.person == person_id) & ApiToken.revoked_at.is_null()
        ).returning(ApiToken.id)
        if not rows:
            raise NotFound("そのトークンは見つかりません。", code="token_not_found")
