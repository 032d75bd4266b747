"""The OpenAPI document at /schema/openapi.json, made to say what the API really does.

Litestar builds the document from the handlers; this module finishes it once, where a generator cannot know:

- **Who may call**: a bearer `securityScheme` (`Authorization: Bearer ld_…`, from `lifedesign token create` or the
  profile page) and the browser's session cookie; every guarded operation names both and says which roles.
- **Errors as they are sent**: every error is `{status, code, message}` (`ErrorOut`, maybe with `errors`, `field`,
  `retry_after`), under the statuses each operation can really answer — not Litestar's generic 400 body
  `{status_code, detail}`, which this app never sends (lifedesign.errors maps everything).
- **Files**: CSV and XLSX downloads and uploads under their own media types.
- **Ranges**: every integer a request carries within 32 bits, as lifedesign.limits enforces.
"""

from __future__ import annotations

import copy
from typing import Any

from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin

from lifedesign.limits import INT_MAX, INT_MIN

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error: the HTTP status again, a stable machine-readable code, and a message for people "
                   "(Japanese). Some add `errors` (what was wrong, per field), `field` or `retry_after` (seconds).",
    "required": ["status", "code", "message"],
    "properties": {
        "status": {"type": "integer", "examples": [422]},
        "code": {"type": "string", "examples": ["invalid_email"]},
        "message": {"type": "string", "examples": ["メールアドレスの形式が正しくありません。"]},
        "errors": {"description": "details per field or per row"},
        "field": {"type": "string"},
        "retry_after": {"type": "integer"},
    },
    "additionalProperties": True,
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "A personal API token: `lifedesign token create --email …`, or 「APIトークン」 on /profile."},
    "session": {"type": "apiKey", "in": "cookie", "name": "ld_session",
                "description": "A browser's login session (`__Host-ld_session` over https). State-changing calls with "
                               "it need the page's CSRF token in `X-CSRF-Token`."},
}
UNSAFE = {"post", "put", "patch", "delete"}
STATUS_TEXT = {
    400: "The request is malformed: not JSON, or a parameter or field of the wrong type (`invalid_input`).",
    401: "Not logged in, or the bearer token is unknown or revoked (`not_authenticated`).",
    403: "Logged in without the needed role (`forbidden`), or a state-changing browser request that did not come "
         "from our pages (`csrf_failed`).",
    404: "No such thing: an id in the path (or the body) that does not exist or that you may not see.",
    409: "The current state does not allow it (full, closed, already done, changed meanwhile).",
    410: "Gone: a link or a survey that has expired or closed.",
    413: "The request body is too large.",
    422: "A value that is not acceptable: out of range (integers must fit 32 bits), a control character, JSON "
         "nested too deep, or a rule of the domain (each with its own `code`).",
    429: "Too many requests: wait `Retry-After` seconds.",
    503: "Busy or the database is unreachable: retry after `Retry-After` seconds.",
}
FILE_TYPES = {
    ".csv": "text/csv",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
UPLOADS = {"/api/v1/exchanges/import/{what}"}  # the body is the file itself


def _operations(app: Litestar) -> dict[tuple[str, str], Any]:
    found = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                found[(route.path_format or "/", method.lower())] = handler
    return found


def _roles(handler: Any) -> tuple[str, ...]:
    for guard in handler.guards or []:
        if hasattr(guard, "roles"):
            return tuple(guard.roles)
    return ()


def _error(status: int) -> dict[str, Any]:
    return {"description": STATUS_TEXT[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}


def _statuses(path: str, method: str, operation: dict[str, Any], roles: tuple[str, ...]) -> list[int]:
    has_input = bool(operation.get("parameters")) or "requestBody" in operation
    statuses = [401, 503]
    if has_input:
        statuses += [400, 422]
    if roles or method in UNSAFE:
        statuses.append(403)
    if "{" in path or "requestBody" in operation:
        statuses.append(404)
    if method in UNSAFE:
        statuses += [409, 410]
    if "{token}" in path:
        statuses.append(410)
    if "requestBody" in operation or path in UPLOADS:
        statuses.append(413)
    if method in UNSAFE and "/auth/" in path:  # the login request's rate limits (events.auth)
        statuses.append(429)
    return sorted(set(statuses))


def _files(path: str, operation: dict[str, Any]) -> None:
    for suffix, media in FILE_TYPES.items():
        if path.endswith(suffix):
            for status, response in operation.get("responses", {}).items():
                if status.startswith("2"):
                    response["content"] = {media: {"schema": {"type": "string", "format": "binary"}}}
                    response["description"] = f"The file ({media}), as an attachment."
    if path in UPLOADS:
        operation["requestBody"] = {"required": True, "description": "The file itself: CSV (UTF-8 or Shift_JIS) "
                                    "or XLSX; send its name in `X-Filename`.", "content": {
                                        media: {"schema": {"type": "string", "format": "binary"}}
                                        for media in (*FILE_TYPES.values(), "application/octet-stream")}}


def _bound_integers(node: Any) -> None:
    """Every integer the API takes fits 32 bits (lifedesign.limits refuses the rest with a 422)."""
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
            node.setdefault("minimum", INT_MIN)
            node.setdefault("maximum", INT_MAX)
        for value in node.values():
            _bound_integers(value)
    elif isinstance(node, list):
        for value in node:
            _bound_integers(value)


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _request_components(document: dict[str, Any]) -> set[str]:
    """The component schemas a request body uses, directly or through others (responses keep theirs)."""
    schemas = document.get("components", {}).get("schemas", {})
    todo = _refs([op.get("requestBody", {}) for item in document.get("paths", {}).values() for op in item.values()
                  if isinstance(op, dict)])
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo |= _refs(schemas.get(name, {})) - seen
    return seen


def truthful(app: Litestar, document: dict[str, Any]) -> dict[str, Any]:
    """The generated document with its security, error responses and file types made true (a copy)."""
    document = copy.deepcopy(document)
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})["ErrorOut"] = ERROR_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    _bound_integers([p for item in document.get("paths", {}).values() for op in item.values()
                     if isinstance(op, dict) for p in [op.get("parameters", []), op.get("requestBody", {})]])
    for name in _request_components(document):
        _bound_integers(components["schemas"].get(name, {}))
    handlers = _operations(app)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in UNSAFE | {"get", "head"} or not isinstance(operation, dict):
                continue
            handler = handlers.get((path, method))
            roles = _roles(handler) if handler is not None else ()
            responses = {code: spec for code, spec in operation.get("responses", {}).items() if code.startswith("2")}
            for status in _statuses(path, method, operation, roles):
                responses[str(status)] = _error(status)
            responses["default"] = {"description": "An unexpected error (500), with an incident number to quote.",
                                    "content": {"application/json": {"schema": {
                                        "$ref": "#/components/schemas/ErrorOut"}}}}
            operation["responses"] = responses
            _files(path, operation)
            if roles:
                operation["security"] = [{"bearer": []}, {"session": []}]
                who = "any logged-in person" if "*" in roles else ", ".join(
                    sorted({*roles, "admin"} if "coordinator" in roles else set(roles)))
                operation["description"] = (operation.get("description") or operation.get("summary", "")).rstrip() + \
                    f"\n\nWho may call: {who}."
            else:
                operation["security"] = [{}, {"bearer": []}, {"session": []}]
    return document


_DONE: dict[int, tuple[int, dict[str, Any]]] = {}  # id(app) -> (id of the generated document, its truthful copy)


class TruthfulJsonRenderPlugin(JsonRenderPlugin):
    """Serves `truthful(document)`, computed once per application."""

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        done = _DONE.get(id(request.app))
        if done is None or done[0] != id(openapi_schema):
            done = _DONE[id(request.app)] = (id(openapi_schema), truthful(request.app, openapi_schema))
        return self.render_json(request, done[1])
