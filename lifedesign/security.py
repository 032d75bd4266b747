"""Who is asking (session cookie or bearer token), CSRF, role guards and security headers."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from events import audit, auth
from events.access import Actor
from events.db import connection_scope
from lifedesign import csrf, proxies
from lifedesign.settings import get_settings

ANON_CSRF_COOKIE = "ld_csrf"
LANG_COOKIE = "ld_lang"


def session_cookie_name() -> str:
    # The __Host- prefix pins the cookie to this host, path / and https; browsers refuse it over http.
    return "__Host-ld_session" if get_settings().https else "ld_session"


def client_of(request: ASGIConnection) -> str:
    return proxies.client_address(request, get_settings().trusted_proxies)


def actor_of(request: ASGIConnection) -> Actor:
    """Who is asking, as the domain's services take it (person and roles, and the client address)."""
    return Actor.of(getattr(request.state, "person", None), client_of(request))


def cookie_options() -> dict[str, Any]:
    return {"httponly": True, "secure": get_settings().https, "samesite": "lax", "path": "/"}


async def identify(request: Request) -> None:
    """Attach person, auth kind, CSRF token and locale to request.state."""
    settings = get_settings()
    state = request.state
    state.person = None
    state.auth = None
    state.session_raw = None
    state.csrf_token = ""
    state.set_anon_csrf = None
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):  # person and roles in one statement, reused by the handler
        state.person = await auth.identify_token(header[7:].strip())
        if state.person is None:
            raise NotAuthorizedException("APIトークンが無効です。")
        state.auth = "token"
    else:
        raw_session = request.cookies.get(session_cookie_name())
        if raw_session:
            found = await auth.identify_session(
                raw_session,
                idle=timedelta(minutes=settings.session_idle_minutes),
                absolute=timedelta(hours=settings.session_absolute_hours),
            )
            if found is not None:
                session, state.person = found
                state.auth = "session"
                state.session_raw = raw_session
                state.csrf_token = session["csrf_token"]
    if not state.csrf_token and state.auth != "token":  # a bearer call has no form and gets no cookie
        anon = request.cookies.get(ANON_CSRF_COOKIE, "")
        if len(anon) < 20:
            anon = secrets.token_urlsafe(24)
            state.set_anon_csrf = anon
        state.csrf_token = anon
    chosen = state.person["locale"] if state.person else request.cookies.get(LANG_COOKIE, "ja")
    state.locale = request.query_params.get("lang") or chosen
    if state.locale not in ("ja", "en"):
        state.locale = "ja"
    await csrf.check(request, actor_of(request))  # every state-changing request (lifedesign.csrf)


class IdentifyMiddleware(ASGIMiddleware):
    """Runs before guards (Litestar evaluates guards before before_request hooks)."""

    scopes = (ScopeType.HTTP,)

    @staticmethod
    def should_bypass_for_scope(scope: Scope) -> bool:
        return scope["path"].startswith("/static/") or scope["path"] == "/health"  # nobody to identify

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        async with connection_scope():  # PostgreSQL: one pooled connection for the whole request
            await identify(Request(scope, receive))
            await next_app(scope, receive, send)


def requires(*roles: str):
    """A guard: the person must hold one of `roles` (admins may also do what coordinators do)."""

    async def guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        person = connection.state.get("person")
        if person is None:
            raise NotAuthorizedException("ログインが必要です。")
        held = set(person["roles"])
        allowed = set(roles)
        if "coordinator" in allowed:
            allowed.add("admin")
        if not held & allowed and "*" not in allowed:
            await audit.refused(actor_of(connection), "authorization_refused", path=connection.url.path,
                                detail={"needs": sorted(roles)})
            raise PermissionDeniedException("この操作を行う権限がありません。")

    guard.roles = roles  # type: ignore[attr-defined]
    return guard


LOGGED_IN = requires("*")
COORDINATOR = requires("coordinator")
ADMIN = requires("admin")


_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
# Set unless the response chose its own; raw (name, value) pairs, appended without re-scanning the list per header.
_DEFAULT_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"), (b"content-security-policy", _CSP.encode()))
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


async def security_headers(message: Message, scope: Scope) -> None:
    """before_send: headers every response carries; no-store on anything personal. (Async: Litestar runs a sync
    hook in a thread pool, a hand-off for each message of every response.)"""
    if message["type"] != "http.response.start":
        return
    headers = message.get("headers")
    if not isinstance(headers, list):
        headers = message["headers"] = list(headers or [])  # type: ignore[typeddict-unknown-key]
    present = {name.lower() for name, _ in headers}
    https = get_settings().https
    for name, value in (*_DEFAULT_HEADERS, _HSTS) if https else _DEFAULT_HEADERS:
        if name not in present:
            headers.append((name, value))
    state = scope.get("state", {})
    if state.get("person") is not None or state.get("personal"):
        headers[:] = [(name, value) for name, value in headers if name.lower() != b"cache-control"]
        headers.append((b"cache-control", b"no-store"))
    anon = state.get("set_anon_csrf")
    if anon:
        secure = "; Secure" if https else ""
        headers.append((b"set-cookie", f"{ANON_CSRF_COOKIE}={anon}; Path=/; HttpOnly; SameSite=Lax{secure}".encode()))
