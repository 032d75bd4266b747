"""Hostile input at the boundary (lifedesign.limits): huge integers, control characters, deep JSON, CR/LF in
names that reach mail headers — a clear 422, never a 500, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import re
from datetime import date

from events import auth, consent, people
from events.core.tables import AuditEntry, StudentProfile
from events.db import raw
from tests.conftest import csrf_from, mail_text, make_person, outbox_mails
from tests.http.test_guards import all_routes

HUGE = (2**31, 2**63, 2**64 + 1, -(2**63) - 1)


async def _admin(client) -> dict[str, str]:
    token = await auth.create_api_token(await make_person("admin", "admin@hostile.example.jp"), "hostile")
    return {"authorization": f"Bearer {token}", "accept": "application/json"}


async def test_every_integer_in_a_path_beyond_32_bits_is_a_422(client, app):
    headers = await _admin(client)
    failures = []
    routes = sorted({(m, p) for m, p, _ in all_routes(app) if ":int}" in p and m != "HEAD"})
    assert len(routes) > 40
    for method, path in routes:
        for number in HUGE[:2]:
            url = re.sub(r"\{[^}:]+:int\}", str(number), re.sub(r"\{[^}:]+:(str|path)\}", "x", path))
            response = await client.request(method, url, headers=headers, json={} if method != "GET" else None)
            if response.status_code != 422 or response.json().get("code") != "number_out_of_range":
                failures.append(f"{method} {url} -> {response.status_code}")
    assert not failures, "\n".join(failures)
    page = await client.get(f"/events/{2**63}")
    assert page.status_code == 422 and "<html" in page.text and "Traceback" not in page.text


async def test_integers_in_the_query_and_the_body_beyond_32_bits_are_a_422(client):
    headers = await _admin(client)
    for url in ("/api/v1/outbox?limit={}", "/api/v1/audit?limit={}", "/api/v1/feedback/surveys/1/results?event={}"):
        for number in HUGE:
            response = await client.get(url.format(number), headers=headers)
            assert response.status_code == 422 and response.json()["code"] == "number_out_of_range", (url, number)
    event = {"title": "講座", "starts_at": "2030-05-01T10:00:00+09:00", "ends_at": "2030-05-01T12:00:00+09:00"}
    for number in HUGE:
        made = await client.post("/api/v1/events", json={**event, "capacity": number}, headers=headers)
        assert made.status_code == 422 and made.json()["code"] == "number_out_of_range", number
        nested = await client.post("/api/v1/feedback/surveys", headers=headers,
                                   json={"audience": "seminar_student", "event_id": number})
        assert nested.status_code == 422, number
    created = await client.post("/api/v1/events", json={**event, "capacity": 30}, headers=headers)
    assert created.status_code == 201
    patched = await client.patch(f"/api/v1/events/{created.json()['id']}", json={"capacity": 2**40}, headers=headers)
    assert patched.status_code == 422
    fine = await client.patch(f"/api/v1/events/{created.json()['id']}", json={"capacity": 40}, headers=headers)
    assert fine.status_code == 200 and fine.json()["capacity"] == 40


async def test_nul_and_control_characters_are_refused_everywhere(client):
    headers = await _admin(client)
    for body in ({"email": "x\u0000@example.jp"}, {"email": "x@example.jp", "next": "/\u0007"}):
        response = await client.post("/api/v1/auth/magic-link", json=body)
        assert response.status_code == 422 and response.json()["code"] == "invalid_characters"
    assert (await client.get("/api/v1/people?q=%00", headers=headers)).status_code == 422
    assert (await client.get("/api/v1/consent/abc%00def")).status_code == 422
    assert (await client.post("/api/v1/facilities", json={"name": "保育園\u0000"}, headers=headers)).status_code == 422
    form = await client.get("/signup")
    signup = await client.post("/signup", data={"_csrf": csrf_from(form.text), "role": "host_family",
                                                "email": "nul@example.jp", "name": "山田\x00花子"})
    assert signup.status_code == 422 and "<html" in signup.text
    # Tab, line feed and carriage return are text; a multi-line field keeps them.
    ok = await client.post("/api/v1/facilities", json={"name": "金沢\tさくら保育園"}, headers=headers)
    assert ok.status_code == 201


async def test_json_nested_too_deep_is_a_422_not_a_crash(client):
    headers = await _admin(client)
    for depth in (33, 1000, 100_000):
        body = "[" * depth + "]" * depth
        response = await client.post("/api/v1/facilities", content=body.encode(),
                                     headers={**headers, "content-type": "application/json"})
        assert response.status_code == 422 and response.json()["code"] == "json_too_deep", depth
    deep_string = '{"name": "' + "[" * 5000 + '"}'  # brackets inside a string are not nesting
    response = await client.post("/api/v1/facilities", content=deep_string.encode(),
                                 headers={**headers, "content-type": "application/json"})
    assert response.status_code in (201, 422) and response.json().get("code") != "json_too_deep"


async def test_cr_lf_in_a_guardian_name_never_reaches_a_mail_header(db):
    info = people.StudentInfo("high_school", "金沢\r\n高校", 2, date(2010, 5, 1), guardian_email="mama@example.jp",
                              guardian_name="金沢 花子\r\nBcc: victim@example.jp").validated(date(2026, 4, 1))
    assert info.guardian_name == "金沢 花子 Bcc: victim@example.jp" and info.school_name == "金沢 高校"
    student = await make_person("student", "minor@example.jp", student=info)
    assert (await consent.guardian_of(student))[1] == "金沢 花子 Bcc: victim@example.jp"
    # A name stored before the rule (raw, with CR/LF) still yields a one-line display name, and a mail that builds.
    await StudentProfile.update({StudentProfile.guardian_name: "古い\r\nBcc: x@example.jp"}).where(
        StudentProfile.person == student)
    email, name = await consent.guardian_of(student)
    assert (email, name) == ("mama@example.jp", "古い Bcc: x@example.jp")
    from events.db import write_transaction
    from events.mail import queue_mail

    async with write_transaction():
        await queue_mail("login", to_email=email, to_name=name, context={"email": email, "link": "x", "minutes": 10},
                         key="guardian-name-test")
    (mail,) = await outbox_mails("login")
    assert mail["Bcc"] is None and mail["To"].addresses[0].display_name == "古い Bcc: x@example.jp"
    assert mail_text(mail)


async def test_a_refused_request_with_a_long_path_is_still_audited(client):
    student = await make_person("student", "long@example.jp")
    token = await auth.create_api_token(student, "t")
    long_path = "/api/v1/exchanges/import/" + "x" * 400
    refused = await client.post(long_path, headers={"authorization": f"Bearer {token}"}, json={})
    assert refused.status_code == 403
    (entry,) = await AuditEntry.select().where(AuditEntry.action == "authorization_refused").output(load_json=True)
    assert entry["detail"]["path"] == long_path and long_path.startswith(entry["subject_id"])
    rows = await raw("SELECT subject_id FROM audit_entry")
    assert all(len(r["subject_id"]) <= 64 for r in rows)
