"""One mapping from errors to responses: JSON `{status, code, message}` for the API, a friendly page otherwise.

No stack trace ever reaches a client; unexpected errors are logged server-side with an id the
person can quote.
"""

from __future__ import annotations

import logging
import secrets

import asyncpg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from events.errors import DomainError
from lifedesign.rendering import page

log = logging.getLogger("lifedesign")

_HTTP_CODES = {
    400: ("bad_request", "リクエストが正しくありません。"),
    401: ("not_authenticated", "ログインが必要です。"),
    403: ("forbidden", "この操作を行う権限がありません。"),
    404: ("not_found", "ページが見つかりません。"),
    405: ("method_not_allowed", "この方法では利用できません。"),
    413: ("too_large", "送信されたデータが大きすぎます。"),
    429: ("rate_limited", "リクエストが多すぎます。しばらくしてからお試しください。"),
    503: ("busy", "混み合っています。少し待ってからもう一度お試しください。"),
}


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "").split(",")[0]


def _respond(request: Request, status: int, code: str, message: str, extra: dict | None = None,
             headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    retry_after = (extra or {}).get("retry_after")
    if status in (429, 503):
        headers["Retry-After"] = str(retry_after or 2)
    if _wants_json(request):
        body = {"status": status, "code": code, "message": message}
        if extra:
            body.update({k: v for k, v in extra.items() if isinstance(v, (str, int, float, bool, list, dict))})
        return Response(content=body, status_code=status, media_type=MediaType.JSON, headers=headers)
    if status == 401 and request.method == "GET":
        return Response(content="", status_code=303, headers={"Location": f"/login?next={request.url.path}"})
    response = page(request, "pages/error.html", status_code=status, title=message, message=message, code=code)
    response.headers.update(headers)
    return response


def domain_error(request: Request, exc: DomainError) -> Response:
    return _respond(request, exc.status, exc.code, exc.message, exc.extra)


def validation_error(request: Request, exc: ValidationException) -> Response:
    details = exc.extra if isinstance(exc.extra, list) else []
    fields = [f"{d.get('key', '')}: {d.get('message', '')}" for d in details if isinstance(d, dict)]
    message = "入力内容が正しくありません。" + (" (" + "; ".join(fields) + ")" if fields else "")
    return _respond(request, 400, "invalid_input", message, {"errors": details} if details else None)


def http_error(request: Request, exc: HTTPException) -> Response:
    code, default = _HTTP_CODES.get(exc.status_code, ("error", "エラーが発生しました。"))
    detail = exc.detail if exc.detail and exc.detail != default and not exc.detail[0].isascii() else default
    kept = {k: v for k, v in (exc.headers or {}).items() if k.lower() in ("allow", "www-authenticate")}
    return _respond(request, exc.status_code, code, detail, headers=kept)  # 405 says what is allowed (Allow)


def unexpected_error(request: Request, exc: Exception) -> Response:
    incident = secrets.token_hex(4)
    log.exception("unexpected error %s on %s %s", incident, request.method, request.url.path, exc_info=exc)
    return _respond(
        request, 500, "internal_error",
        f"申し訳ありません。システムでエラーが発生しました（番号 {incident}）。時間をおいてお試しください。",
    )


def data_error(request: Request, exc: Exception) -> Response:
    """The database refused a value (too long, out of range, a character it cannot store). The boundary
    (lifedesign.limits, the services' checks) should have said so first; this is the backstop, so hostile
    input is a 422 and never a 500 — logged, since it means a check is missing."""
    if isinstance(exc, OverflowError) and "too large to convert" not in str(exc):
        return unexpected_error(request, exc)
    log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc)
    return _respond(request, 422, "invalid_input", "入力内容が正しくありません（長すぎる、または範囲外の値があります）。")


EXCEPTION_HANDLERS = {
    DomainError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    asyncpg.exceptions.DataError: data_error,
    OverflowError: data_error,  # SQLite: an integer beyond 64 bits
    Exception: unexpected_error,
}
