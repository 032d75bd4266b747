"""Input limits at the boundary, before any handler or query sees the request: hostile input is a clear error
(422, `{status, code, message}` under /api/, a friendly page elsewhere), never a 500 from the database.

- **Integers** in the path, in the query (parameters declared `int`) and anywhere in a JSON body must fit the
  database's 32-bit integer columns (PostgreSQL `integer`; SQLite takes 64 bits, but one rule serves both).
- **Control characters** (NUL and the other C0 controls but tab, line feed and carriage return, and DEL) are
  refused in the path, the query, form fields and JSON strings: PostgreSQL cannot store a NUL, and nobody
  types one. Uploaded files are the importer's to read (events.sheets).
- **JSON nesting** deeper than `MAX_JSON_DEPTH` is refused before it is parsed.

Single-line text that may reach a mail header is normalised where it is stored (events.people.one_line).
"""

from __future__ import annotations

import json
import re
import typing
from typing import Any

from litestar import Request
from litestar.datastructures import UploadFile
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from events.errors import Invalid

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
MAX_JSON_DEPTH = 32
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DIGITS = re.compile(r"\s*[+-]?\d+\s*")


def out_of_range(where: str) -> Invalid:
    return Invalid(f"数値が大きすぎます（{INT_MIN}〜{INT_MAX}）: {where}", code="number_out_of_range", field=where)


def bad_characters(where: str) -> Invalid:
    return Invalid(f"使用できない文字（制御文字）が含まれています: {where}", code="invalid_characters", field=where)


def _is_int_type(annotation: Any) -> bool:
    if annotation is int:
        return True
    return any(_is_int_type(arg) for arg in typing.get_args(annotation) if arg is not bool)


def _int_query_names(scope: Scope) -> set[str]:
    """The query parameters the route declares as integers (by the name they have in the URL)."""
    handler = scope.get("route_handler")
    signature = getattr(handler, "parsed_fn_signature", None)
    names = set()
    for name, parameter in (signature.parameters.items() if signature else ()):
        if _is_int_type(parameter.annotation):
            definition = getattr(parameter, "kwarg_definition", None)
            names.add(getattr(definition, "query", None) or name)
    return names


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects, read from the bytes (strings skipped), without parsing."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def check_value(value: Any, where: str) -> None:
    """A decoded JSON value: every integer in range, no control character in any string (keys included)."""
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, float):
            continue
        if isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                raise out_of_range(path)
        elif isinstance(item, str):
            if CONTROL.search(item):
                raise bad_characters(path)
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, dict):
            for key, v in item.items():
                if CONTROL.search(key):
                    raise bad_characters(path)
                stack.append((v, f"{path}.{key}" if path else key))


def _is_json(media: str) -> bool:
    media = media.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def check_path(scope: Scope) -> None:
    """The path and its parameters (no Request needed)."""
    if CONTROL.search(scope.get("path", "")):
        raise bad_characters("path")
    for name, value in (scope.get("path_params") or {}).items():
        if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
            raise out_of_range(name)
        if isinstance(value, str) and CONTROL.search(value):
            raise bad_characters(name)


def reads_nothing_more(scope: Scope) -> bool:
    """A GET/HEAD/OPTIONS without a query string: once its path is checked, nothing else of it is input."""
    return not scope.get("query_string") and scope.get("method") in ("GET", "HEAD", "OPTIONS")


async def check_request(request: Request) -> None:
    scope = request.scope
    check_path(scope)
    int_names = _int_query_names(scope)
    for name, value in request.query_params.multi_items():
        if CONTROL.search(name) or CONTROL.search(value):
            raise bad_characters(name)
        if name in int_names and _DIGITS.fullmatch(value) and not INT_MIN <= int(value) <= INT_MAX:
            raise out_of_range(name)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    media = request.headers.get("content-type", "").lower()
    if _is_json(media):
        body = await request.body()
        if json_depth(body) > MAX_JSON_DEPTH:
            raise Invalid(f"JSON の入れ子が深すぎます（{MAX_JSON_DEPTH}段まで）。", code="json_too_deep")
        try:
            decoded = json.loads(body)
        except (ValueError, RecursionError):
            return  # not JSON at all: the handler's decoder answers 400
        check_value(decoded, "")
    elif "application/x-www-form-urlencoded" in media or "multipart/form-data" in media:
        form = await request.form()
        for name, value in form.multi_items():
            if CONTROL.search(name) or (not isinstance(value, UploadFile) and CONTROL.search(str(value))):
                raise bad_characters(name)


class InputLimitsMiddleware(ASGIMiddleware):
    """Runs first: nothing downstream (identity, CSRF, handlers, the database) sees a refused request."""

    scopes = (ScopeType.HTTP,)

    @staticmethod
    def should_bypass_for_scope(scope: Scope) -> bool:
        return scope["path"].startswith("/static/")

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if reads_nothing_more(scope):  # most page views and /health: no Request object, no query parsing
            check_path(scope)
        else:
            await check_request(Request(scope, receive))
        await next_app(scope, receive, send)
