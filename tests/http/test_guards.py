"""Every route is guarded or on the explicit public list below; every role against every guarded route.

Routes added by any area are picked up automatically: a new route without a guard fails
`test_every_route_is_guarded_or_explicitly_public` until it gets a guard or a line (with its reason) here.
"""

import re

from events import auth
from events.core.tables import ROLES, AuditEntry
from tests.conftest import make_person

# The public routes, each with the reason it needs no login. Token routes are keyed by their secret token.
PUBLIC = {
    ("GET", "/"): "the home page",
    ("GET", "/health"): "monitoring",
    ("GET", "/events"): "the public list of events",
    ("GET", "/events/{event_id:int}"): "an event's page (drafts and private events: events.access decides)",
    ("GET", "/events/{event_id:int}/lottery"): "a lottery's public record (tickets, no names; same visibility rule)",
    ("GET", "/events/{event_id:int}/calendar.ics"): "a public event's calendar file (same visibility rule)",
    ("GET", "/seminars/{event_id:int}"): "old mail links: a redirect to /events/<id>",
    ("GET", "/api/v1/events"): "the public list of events (a range is for coordinators, checked inside)",
    ("GET", "/api/v1/events/{event_id:int}"): "an event (events.access decides)",
    ("GET", "/api/v1/events/{event_id:int}/lottery"): "anyone may verify a draw (registration ids only)",
    ("GET", "/api/v1/facilities"): "facility names for the sign-up form",
    ("GET", "/signup"): "self sign-up", ("POST", "/signup"): "self sign-up",
    ("GET", "/login"): "login", ("POST", "/login"): "login",
    ("GET", "/login/{token:str}"): "the login link (token)", ("POST", "/login/{token:str}"): "the login link (token)",
    ("POST", "/logout"): "logging out (CSRF-checked)",
    ("POST", "/lang"): "the language switch",
    ("POST", "/api/v1/auth/magic-link"): "login by API (the same answer for unknown addresses)",
    ("GET", "/consent/{token:str}"): "the guardian's page (token, no account)",
    ("POST", "/consent/{token:str}"): "the guardian's answer (token, no account)",
    ("GET", "/visits/consent/{token:str}"): "old mail links: a redirect to /consent/<token>",
    ("GET", "/visits/guardian/{token:str}"): "a minor's guardian follows the home visit (token, no account)",
    ("GET", "/api/v1/consent/{token:str}"): "the guardian's request (token)",
    ("POST", "/api/v1/consent/{token:str}"): "the guardian's answer (token)",
    ("GET", "/privacy"): "the privacy notice (purposes, retention, rights), linked from sign-up and consent pages",
    ("GET", "/privacy/guardian"): "a guardian asks for a link to a minor's data (no account)",
    ("POST", "/privacy/guardian"): "a guardian asks for a link (the same answer for unknown addresses, rate-limited)",
    ("GET", "/privacy/guardian/{token:str}"): "a guardian's view of a minor's data (token, audited)",
    ("GET", "/privacy/guardian/{token:str}/data.json"): "a guardian's download of a minor's data (token, audited)",
    ("POST", "/privacy/guardian/{token:str}/delete"): "a guardian's deletion request for a minor (token)",
    ("POST", "/privacy/guardian/{token:str}/correction"): "a guardian's correction request for a minor (token)",
    ("GET", "/feedback/{token:str}"): "a survey link (token, no account)",
    ("GET", "/feedback"): "the survey page (the link's token is in a short-lived cookie, no account)",
    ("POST", "/feedback"): "a survey answer (the token travels in the cookie, or the form body)",
    ("GET", "/feedback/open/{survey_id:int}/{token:str}"): "a survey's on-site link (QR code; per survey, no account)",
    ("GET", "/feedback/open/{survey_id:int}"): "the on-site answering page (a one-time slot in a signed cookie, no account)",
    ("POST", "/feedback/open/{survey_id:int}"): "an on-site survey answer (the slot travels in its cookie)",
    ("GET", "/calendar/{filename:str}"): "a personal calendar feed (secret token)",
    ("GET", "/reminders/unsubscribe/{token:str}"): "one-click unsubscribe (token)",
    ("POST", "/reminders/unsubscribe/{token:str}"): "one-click unsubscribe (RFC 8058, token)",
    ("GET", "/static/{file_path:path}"): "style sheets and scripts", ("HEAD", "/static/{file_path:path}"): "static",
    ("GET", "/schema"): "the OpenAPI document", ("GET", "/schema/openapi.json"): "the OpenAPI document",
    ("GET", "/schema/{path:str}"): "Litestar's schema 404",
}


def all_routes(app):
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            guarded = any(hasattr(g, "roles") for g in (handler.guards or []))
            for method in handler.http_methods - {"OPTIONS"}:
                yield method, route.path, guarded


def test_every_route_is_guarded_or_explicitly_public(shared_app):
    routes = set(all_routes(shared_app))
    unguarded = {(method, path) for method, path, guarded in routes if not guarded}
    assert sorted(unguarded - set(PUBLIC)) == [], "routes without a guard and not on the public list"
    guarded = {(method, path) for method, path, is_guarded in routes if is_guarded}
    assert sorted(set(PUBLIC) & guarded) == [], "guarded routes still on the public list (remove them)"
    assert sorted(set(PUBLIC) - unguarded - guarded) == [], "public-list entries for routes that do not exist"


async def test_the_registrations_export_is_for_coordinators_only(client, shared_app):
    """The export of names, e-mail addresses, schools and minors: the guard itself, not just the route list."""
    routes = {(m, p): g for m, p, g in all_routes(shared_app)}
    for path in ("/api/v1/events/{event_id:int}/registrations.csv", "/api/v1/events/{event_id:int}/registrations.xlsx",
                 "/coordinator/events/{event_id:int}/registrations.csv"):
        assert routes[("GET", path)] is True, path
    student = await make_person("student", "export-student@guards.example.jp")
    token = await auth.create_api_token(student, "t")
    for url in ("/api/v1/events/1/registrations.csv", "/coordinator/events/1/registrations.csv"):
        assert (await client.get(url, headers={"Authorization": f"Bearer {token}"})).status_code == 403
        assert (await client.get(url, headers={"accept": "application/json"})).status_code == 401


def guarded_routes(app):
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            guards = [g for g in (handler.guards or []) if hasattr(g, "roles")]
            if not guards:
                continue
            allowed = set(guards[0].roles)
            for method in handler.http_methods:
                yield method, route.path, frozenset(allowed)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}:]+:int\}", "999999", re.sub(r"\{[^}:]+:(str|path)\}", "nothing", path))


def permits(allowed: set[str], role: str) -> bool:
    return "*" in allowed or role in allowed or (role == "admin" and "coordinator" in allowed)


async def test_every_role_against_every_guarded_route(client, app):
    tokens = {}
    for role in ROLES:
        person_id = await make_person(role, f"{role}@guards.example.jp")
        tokens[role] = await auth.create_api_token(person_id, "guards")
    routes = sorted(set(guarded_routes(app)))
    assert len(routes) >= 10
    failures = []
    for method, path, allowed in routes:
        url = concrete(path)
        anonymous = await client.request(method, url, headers={"accept": "application/json"})
        if anonymous.status_code != 401:
            failures.append(f"{method} {path} anonymous -> {anonymous.status_code}")
        for role in ROLES:
            response = await client.request(method, url, headers={"Authorization": f"Bearer {tokens[role]}"})
            if permits(allowed, role):
                if response.status_code in (401, 403) or response.status_code >= 500:
                    failures.append(f"{method} {path} as {role} -> {response.status_code} (allowed)")
            elif response.status_code != 403:
                failures.append(f"{method} {path} as {role} -> {response.status_code} (should be 403)")
    assert not failures, "\n".join(failures)
    assert await AuditEntry.count().where(AuditEntry.action == "authorization_refused") > 0
