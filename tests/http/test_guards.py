"""Every role against every guarded route (routes added by any area are picked up automatically)."""

import re

from events import auth
from events.core.tables import ROLES, AuditEntry
from tests.conftest import make_person


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
