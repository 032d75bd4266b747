"""Cross-site request forgery: every state-changing request must come from our own pages (or be a bearer call).

Two independent checks, on every POST/PUT/PATCH/DELETE, anonymous ones included, whatever the content type:

1. **Where it comes from.** Browsers say it: `Sec-Fetch-Site` (only `same-origin`, or `none` for a request the
   person typed, passes) and `Origin` (must be this site: the configured base URL, or the host the request was
   sent to). A request that carries neither is not from a browser (a script, a mail client), so this check
   has nothing to go on and the next one decides.
2. **A token only our pages hold.** A cookie session or an anonymous visitor (who may be logged *into someone
   else's account* by a forged login — login CSRF) must send the CSRF token of its session or of its `ld_csrf`
   cookie, as the form field `_csrf` or the header `X-CSRF-Token`. One exception: an anonymous call with a JSON
   body (`application/json`), which a browser cannot send to another site without a CORS preflight that this
   app never grants; that is how scripts call the anonymous API (`POST /api/v1/auth/magic-link`).

Bearer-token calls carry no ambient credential and pass. One-click unsubscribe (RFC 8058) is posted by mail
providers' servers, with the token in its path, and is exempt.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from urllib.parse import urlsplit

from litestar import Request

from events import audit
from events.access import Actor
from events.errors import Forbidden
from lifedesign.settings import get_settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXEMPT_PREFIXES = ("/reminders/unsubscribe/",)
SAME_SITE = frozenset({"same-origin", "none"})
MESSAGE = "フォームの有効期限が切れました。ページを再読み込みしてもう一度お試しください。"


@lru_cache(maxsize=4)
def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _allowed_origins(request: Request) -> set[str]:
    host = request.headers.get("host", "")
    return {_origin_of(get_settings().base_url), f"{request.url.scheme}://{host}".lower()}


def foreign_origin(request: Request) -> str:
    """Why the browser says this request comes from another site ("" when it does not say so)."""
    site = request.headers.get("sec-fetch-site", "").strip().lower()
    if site and site not in SAME_SITE:
        return f"sec-fetch-site:{site}"
    origin = request.headers.get("origin")
    if origin is not None and origin.strip().lower() not in _allowed_origins(request):
        return f"origin:{origin.strip()[:100]}"
    return ""


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def _sent_token(request: Request) -> str:
    sent = request.headers.get("x-csrf-token", "")
    media = request.headers.get("content-type", "").lower()
    if not sent and ("application/x-www-form-urlencoded" in media or "multipart/form-data" in media):
        form = await request.form()
        sent = str(form.get("_csrf", ""))
    return sent


def _needs_login(request: Request) -> bool:
    """A route behind a role guard: an anonymous request to it is the guard's to refuse (401), not ours."""
    handler = request.scope.get("route_handler")
    return any(hasattr(guard, "roles") for guard in (getattr(handler, "guards", None) or []))


async def check(request: Request, actor: Actor) -> None:
    """Raise Forbidden(code="csrf_failed") — audited — unless this state-changing request is our own."""
    if request.method in SAFE_METHODS or request.state.auth == "token":
        return
    if request.url.path.startswith(EXEMPT_PREFIXES):
        return
    reason = foreign_origin(request)
    if not reason:
        if request.state.auth != "session" and (_is_json(request) or _needs_login(request)):
            return  # an anonymous script's JSON call (no browser sends one cross-site), or the guard's 401
        sent = await _sent_token(request)
        expected = request.state.csrf_token or ""
        if sent and expected and secrets.compare_digest(sent.encode(), expected.encode()):
            return
        reason = "token"
    await audit.refused(actor, "csrf_refused", path=request.url.path, detail={"reason": reason})
    raise Forbidden(MESSAGE, code="csrf_failed")
