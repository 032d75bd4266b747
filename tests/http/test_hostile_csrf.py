"""Forged requests from other sites (lifedesign.csrf): every state-changing request, anonymous ones and any
content type included, must come from our own pages; a bad login link leaves the current session alone."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from events import auth
from events.core.tables import AuditEntry, WebSession
from tests.conftest import csrf_from, login, make_person, outbox_mails
from tests.http.test_guards import all_routes, concrete

EVIL = "https://attacker.example"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


async def _login_path(email: str) -> str:
    await auth.request_login(email, client="test")
    mails = await outbox_mails("login", email)
    link = [u for u in re.findall(r"https?://\S+", mails[-1].get_body(("plain",)).get_content()) if "/login/" in u][0]
    return urlsplit(link).path


async def test_login_csrf_with_text_plain_from_another_site_is_refused(client):
    """The reported attack: the attacker's own login link, POSTed by the victim's browser as text/plain."""
    await make_person("student", "attacker@example.jp")
    path = await _login_path("attacker@example.jp")
    forged = await client.post(path, content=b"x=1", follow_redirects=False,
                               headers={"content-type": "text/plain", "origin": EVIL, "sec-fetch-site": "cross-site"})
    assert forged.status_code == 403 and "ld_session" not in forged.headers.get("set-cookie", "")
    assert await WebSession.count() == 0  # nobody was logged in
    # Without the browser's headers (an old browser), the missing token still refuses it …
    bare = await client.post(path, content=b"x=1", headers={"content-type": "text/plain"}, follow_redirects=False)
    assert bare.status_code == 403 and await WebSession.count() == 0
    refusals = await AuditEntry.select(AuditEntry.detail).where(AuditEntry.action == "csrf_refused").output(
        load_json=True)
    assert [r["detail"]["reason"] for r in refusals] == ["sec-fetch-site:cross-site", "token"]
    # … and the link still works from our own page.
    page = await client.get(path)
    done = await client.post(path, data={"_csrf": csrf_from(page.text)}, follow_redirects=False,
                             headers={"origin": "http://127.0.0.1:8000", "sec-fetch-site": "same-origin"})
    assert done.status_code == 303 and await WebSession.count() == 1


async def test_a_valid_token_does_not_help_a_request_the_browser_says_is_cross_site(client):
    await make_person("student", "victim@example.jp")
    await login(client, "victim@example.jp")
    csrf = csrf_from((await client.get("/profile")).text)
    for headers in ({"origin": EVIL}, {"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"},
                    {"origin": "null"}):
        forged = await client.post("/profile", data={"_csrf": csrf, "name": "乗っ取り", "kana": ""}, headers=headers)
        assert forged.status_code == 403, headers
    me = (await client.get("/api/v1/me")).json()
    assert me["name"] != "乗っ取り"
    ours = await client.post("/profile", data={"_csrf": csrf, "name": "本人", "kana": ""},
                             headers={"origin": "http://127.0.0.1:8000", "sec-fetch-site": "same-origin"})
    assert ours.status_code == 200 and (await client.get("/api/v1/me")).json()["name"] == "本人"
    # A JSON call of a cookie session needs the token as well, whatever its content type.
    for media in ("application/json", "text/plain"):
        refused = await client.post("/logout", content=b"{}", headers={"content-type": media}, follow_redirects=False)
        assert refused.status_code == 403, media
    assert (await client.get("/api/v1/me")).status_code == 200


async def test_a_bad_login_link_leaves_the_current_session_alone(client):
    await make_person("student", "stays@example.jp")
    await login(client, "stays@example.jp")
    page = await client.get("/login/not-a-real-token")
    bad = await client.post("/login/not-a-real-token", data={"_csrf": csrf_from(page.text)}, follow_redirects=False)
    assert bad.status_code == 400
    me = await client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["email"] == "stays@example.jp"


async def test_every_anonymous_state_changing_route_refuses_a_forged_request(client, app):
    """The whole route table: each unguarded POST/PUT/PATCH/DELETE, sent by a browser from another site as
    text/plain (no CORS preflight needed), is refused before it does anything."""
    routes = sorted({(m, p) for m, p, guarded in all_routes(app) if m in UNSAFE and not guarded})
    assert len(routes) >= 8
    failures = []
    for method, path in routes:
        if path.startswith("/reminders/unsubscribe/"):
            continue  # RFC 8058: posted by the mail provider's server; the token in the path is the proof
        for headers in ({"origin": EVIL}, {"sec-fetch-site": "cross-site"}, {}):
            response = await client.request(method, concrete(path), content=b"decision=yes&email=a@example.jp",
                                            headers={"content-type": "text/plain", "accept": "application/json",
                                                     **headers})
            if response.status_code != 403 or response.json().get("code") != "csrf_failed":
                failures.append(f"{method} {path} {headers} -> {response.status_code}")
    assert not failures, "\n".join(failures)


async def test_scripts_still_call_the_anonymous_json_api(client):
    await make_person("student", "script@example.jp")
    accepted = await client.post("/api/v1/auth/magic-link", json={"email": "script@example.jp"})
    assert accepted.status_code == 202
    forged = await client.post("/api/v1/auth/magic-link", json={"email": "script@example.jp"},
                               headers={"origin": EVIL})
    assert forged.status_code == 403 and forged.json()["code"] == "csrf_failed"
    token = await auth.create_api_token(await make_person("coordinator", "bot@example.jp"), "bot")
    bearer = await client.post("/api/v1/facilities", json={"name": "金沢スクリプト保育園"},
                               headers={"authorization": f"Bearer {token}", "origin": EVIL})
    assert bearer.status_code == 201  # a bearer call carries no ambient credential: no CSRF to forge
