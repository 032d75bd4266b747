"""The login flow and its protections, end to end."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

from events import auth, clock, people
from events.core.tables import AuditEntry, WebSession
from events.db import utcnow
from lifedesign.settings import SmtpSettings
from lifedesign.worker import deliver_once
from tests.conftest import as_staff, csrf_from, login, make_person, outbox_mails, parse_mail


async def _link_for(email: str) -> str:
    mails = await outbox_mails("login", email)
    return [u for u in re.findall(r"https?://\S+", mails[-1].get_body(("plain",)).get_content()) if "/login/" in u][0]


async def test_whole_login_flow_from_a_mail_captured_by_smtp(client, settings, smtp_server):
    await make_person("host_family", "yamada@example.jp", name="山田 真理子")
    response = await client.post("/api/v1/auth/magic-link", json={"email": "Yamada@Example.jp"})
    assert response.status_code == 202
    smtp_settings = settings.__class__(**{**settings.__dict__, "smtp": SmtpSettings("127.0.0.1", smtp_server.port, "none")})
    tally = await deliver_once(smtp_settings)
    assert tally["sent"] == 1
    sender, recipients, raw = smtp_server.messages[0]
    assert recipients == ["yamada@example.jp"]
    message = parse_mail(raw)
    assert "ログイン" in str(message["subject"])
    link = re.search(r"http://127\.0\.0\.1:8000/login/\S+", message.get_body(("plain",)).get_content()).group(0)
    page = await client.get(urlsplit(link).path)
    assert page.status_code == 200 and "ログインする" in page.text
    # the GET did not log in (mail scanners must not consume the link)
    assert (await client.get("/api/v1/me")).status_code == 401
    done = await client.post(urlsplit(link).path, data={"_csrf": csrf_from(page.text)}, follow_redirects=False)
    assert done.status_code == 303
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    me = await client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["email"] == "yamada@example.jp"
    assert await AuditEntry.count().where(AuditEntry.action == "login") == 1


async def test_same_answer_for_unknown_address(client):
    await make_person("student", "known@example.jp")
    known = await client.post("/api/v1/auth/magic-link", json={"email": "known@example.jp"})
    unknown = await client.post("/api/v1/auth/magic-link", json={"email": "nobody@example.jp"})
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert len(await outbox_mails("login")) == 1


async def test_invalid_email_is_a_clear_json_error(client):
    response = await client.post("/api/v1/auth/magic-link", json={"email": "not-an-address"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_email"
    bad = await client.post("/api/v1/auth/magic-link", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and set(bad.json()) >= {"status", "code", "message"}


async def test_link_is_single_use_and_expires(client):
    await make_person("student", "once@example.jp")
    await login(client, "once@example.jp")
    path = urlsplit(await _link_for("once@example.jp")).path
    page = await client.get(path)
    assert page.status_code == 400 and "使えません" in page.text
    reused = await client.post(path, data={"_csrf": csrf_from(page.text)}, follow_redirects=False)
    assert reused.status_code == 400

    await auth.request_login("once@example.jp", client="t2")
    path = urlsplit(await _link_for("once@example.jp")).path
    with clock.travel(timedelta(minutes=10, seconds=1)):  # the link lives ten minutes
        expired = await client.post(path, data={"_csrf": csrf_from((await client.get("/login")).text)},
                                    follow_redirects=False)
    assert expired.status_code == 400


async def test_csrf_is_required_on_forms(client):
    await make_person("student", "csrf@example.jp")
    await login(client, "csrf@example.jp")
    refused = await client.post("/profile", data={"name": "X", "kana": ""})
    assert refused.status_code == 403
    wrong = await client.post("/profile", data={"name": "X", "kana": "", "_csrf": "forged"})
    assert wrong.status_code == 403
    page = await client.get("/profile")
    ok = await client.post("/profile", data={"name": "新しい 名前", "kana": "", "_csrf": csrf_from(page.text)})
    assert ok.status_code == 200 and "新しい 名前" in ok.text
    assert await AuditEntry.count().where(AuditEntry.action == "csrf_refused") == 2


async def test_rate_limit_per_address(client):
    await make_person("student", "busy@example.jp")
    codes = [(await client.post("/api/v1/auth/magic-link", json={"email": "busy@example.jp"})).status_code
             for _ in range(7)]
    assert codes[:5] == [202] * 5
    assert codes[5] == 429
    limited = await client.post("/api/v1/auth/magic-link", json={"email": "busy@example.jp"})
    assert limited.json()["code"] == "rate_limited" and "retry-after" in limited.headers
    assert len(await outbox_mails("login")) == 5


async def test_new_session_id_at_login_and_logout_ends_it(client):
    await make_person("student", "rotate@example.jp")
    await login(client, "rotate@example.jp")
    first = client.cookies.get("ld_session")
    await login(client, "rotate@example.jp")
    second = client.cookies.get("ld_session")
    assert first and second and first != second
    assert await auth.resolve_session(first, idle=timedelta(hours=1), absolute=timedelta(hours=1)) is None
    page = await client.get("/profile")
    out = await client.post("/logout", data={"_csrf": csrf_from(page.text)}, follow_redirects=False)
    assert out.status_code == 303
    # the old cookie, replayed, is dead on the server
    client.cookies.set("ld_session", second)
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_disabling_an_account_ends_its_sessions(client):
    person_id = await make_person("student", "gone@example.jp")
    await login(client, "gone@example.jp")
    assert (await client.get("/api/v1/me")).status_code == 200
    await people.set_active(as_staff(None, "admin"), person_id, False)
    assert (await client.get("/api/v1/me")).status_code == 401
    assert await WebSession.count().where(WebSession.ended_at.is_null()) == 0


async def test_idle_and_absolute_timeouts(client):
    await make_person("student", "idle@example.jp")
    await login(client, "idle@example.jp")
    with clock.travel(timedelta(hours=3)):  # idle longer than 120 minutes
        assert (await client.get("/api/v1/me")).status_code == 401
    await login(client, "idle@example.jp")
    with clock.travel(utcnow()):
        for _ in range(26):  # busy all the time, but past the absolute 24 hours
            clock.advance(timedelta(hours=1))
            me = await client.get("/api/v1/me")
        assert me.status_code == 401


async def test_api_tokens(client):
    person_id = await make_person("coordinator", "coord@example.jp")
    token = await auth.create_api_token(person_id, "script")
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json()["roles"] == ["coordinator"]
    from events.core.tables import ApiToken

    stored = await ApiToken.select(ApiToken.token_hash).first()
    assert token not in stored["token_hash"]
    tokens = await auth.list_api_tokens(person_id)
    await auth.revoke_api_token(person_id, tokens[0]["id"])
    revoked = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401 and revoked.json()["code"] == "not_authenticated"


async def test_signup_student_minor_needs_guardian(client):
    page = await client.get("/signup")
    form = {"_csrf": csrf_from(page.text), "role": "student", "name": "佐藤 結衣", "email": "yui@example.jp",
            "school_level": "high_school", "school_name": "金沢高校", "grade": "2", "birth_date": "2010-05-01"}
    refused = await client.post("/signup", data=form)
    assert refused.status_code == 422 and "保護者" in refused.text
    ok = await client.post("/signup", data={**form, "guardian_email": "Parent@Example.jp"})
    assert ok.status_code == 200
    profile = await people.student_profile((await people.find_by_email("yui@example.jp"))["id"])
    assert profile["guardian_email"] == "parent@example.jp"
    assert len(await outbox_mails("login", "yui@example.jp")) == 1


async def test_signup_cannot_create_staff_accounts(client):
    page = await client.get("/signup")
    response = await client.post("/signup", data={"_csrf": csrf_from(page.text), "role": "admin", "name": "X",
                                                  "email": "x@example.jp"})
    assert response.status_code == 403
    assert await people.find_by_email("x@example.jp") is None


async def test_security_headers_and_language_switch(client):
    home = await client.get("/")
    for header in ("content-security-policy", "x-content-type-options", "referrer-policy"):
        assert header in home.headers
    switched = await client.post("/lang", data={"_csrf": csrf_from(home.text), "lang": "en", "next": "/"})
    assert '<html lang="en">' in switched.text
