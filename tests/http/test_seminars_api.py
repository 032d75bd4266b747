"""The seminars JSON API: roles, status codes, stable error codes, idempotency, exports, consent, audit."""

from __future__ import annotations

from datetime import timedelta

from events.audit import recent
from events.auth import create_api_token
from events.core.tables import AuditEntry
from events.seminars.tables import Registration
from tests.conftest import links_in, make_person, outbox_mails
from tests.service.seminars_helpers import minor, soon


async def _bearer(role: str, **kwargs) -> tuple[int, dict[str, str]]:
    person_id = await make_person(role, **kwargs)
    return person_id, {"Authorization": f"Bearer {await create_api_token(person_id, 'test')}"}


def _event_body(**overrides) -> dict:
    start = soon(10)
    return {"kind": "seminar", "title": "ライフデザインセミナー ～仕事と子育て、わたしの未来～", "venue": "金沢公会堂",
            "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat(), "capacity": 1,
            "allocation": "first_come", "audience": "students", **overrides}


async def _published(client, coord: dict[str, str], **overrides) -> int:
    created = await client.post("/api/v1/events", json=_event_body(**overrides), headers=coord)
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]
    published = await client.post(f"/api/v1/events/{event_id}/publish", headers=coord)
    assert published.status_code == 200 and published.json()["status"] == "published"
    return event_id


async def test_event_lifecycle_and_roles(client):
    _, coord = await _bearer("coordinator")
    _, student = await _bearer("student")
    refused = await client.post("/api/v1/events", json=_event_body(), headers=student)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    anonymous = await client.post("/api/v1/events", json=_event_body())
    assert anonymous.status_code == 401
    bad = await client.post("/api/v1/events", json=_event_body(starts_at="2026-12-01T10:00:00"), headers=coord)
    assert bad.status_code == 422 and bad.json()["code"] == "datetime_without_offset"
    created = await client.post("/api/v1/events", json=_event_body(), headers=coord)
    event_id = created.json()["id"]
    assert (await client.get(f"/api/v1/events/{event_id}")).status_code == 404  # drafts are not public
    assert (await client.get(f"/api/v1/events/{event_id}", headers=coord)).json()["status"] == "draft"
    await client.post(f"/api/v1/events/{event_id}/publish", headers=coord)
    shown = (await client.get(f"/api/v1/events/{event_id}")).json()
    assert (shown["capacity"], shown["confirmed_count"], shown["waitlist_count"], shown["remaining"]) == (1, 0, 0, 1)
    assert event_id in [e["id"] for e in (await client.get("/api/v1/events")).json()]
    patched = await client.patch(f"/api/v1/events/{event_id}", json={"capacity": 5, "venue": "金沢区役所"}, headers=coord)
    assert patched.status_code == 200 and patched.json()["capacity"] == 5 and patched.json()["calendar_sequence"] == 1
    wrong = await client.patch(f"/api/v1/events/{event_id}", json={"capacity": "many"}, headers=coord)
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid_input"  # the typed body (EventPatch)
    copy = await client.post(f"/api/v1/events/{event_id}/duplicate", json={"venue": "横浜市立金沢高等学校"}, headers=coord)
    assert copy.status_code == 201 and copy.json()["status"] == "draft"
    start = soon(1).isoformat()
    end = soon(30).isoformat()
    month = await client.get("/api/v1/events", params={"start": start, "end": end}, headers=coord)
    assert {event_id, copy.json()["id"]} <= {e["id"] for e in month.json()}
    assert (await client.get("/api/v1/events", params={"start": start, "end": end}, headers=student)).status_code == 403
    cancelled = await client.post(f"/api/v1/events/{event_id}/cancel", json={"reason": "会場の都合"}, headers=coord)
    assert cancelled.json() == {"id": event_id, "status": "cancelled", "registrations_cancelled": 0}


async def test_register_waitlist_cancel_promote_over_http(client):
    _, coord = await _bearer("coordinator")
    first_id, first = await _bearer("student")
    _, second = await _bearer("student")
    event_id = await _published(client, coord)
    one = await client.post(f"/api/v1/events/{event_id}/registrations", headers=first)
    assert one.status_code == 201 and one.json()["status"] == "confirmed"
    twice = await client.post(f"/api/v1/events/{event_id}/registrations", headers=first)
    assert twice.status_code == 409 and twice.json()["code"] == "already_registered"
    two = await client.post(f"/api/v1/events/{event_id}/registrations", headers=second)
    assert two.json()["status"] == "waitlisted" and two.json()["waitlist_rank"] == 1
    mine = await client.get(f"/api/v1/events/{event_id}/registrations/me", headers=second)
    assert mine.json()["status"] == "waitlisted"
    # someone else's registration is invisible and cannot be cancelled
    assert (await client.delete(f"/api/v1/registrations/{one.json()['id']}", headers=second)).status_code == 404
    gone = await client.delete(f"/api/v1/registrations/{one.json()['id']}", headers=first)
    assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
    offer = (await client.get(f"/api/v1/events/{event_id}/registrations/me", headers=second)).json()
    assert offer["status"] == "offered"  # the freed seat is held for the first in line until they answer
    bad = await client.post(f"/api/v1/registrations/{offer['id']}/offer", json={"decision": "maybe"}, headers=second)
    assert bad.status_code == 422
    taken = await client.post(f"/api/v1/registrations/{offer['id']}/offer", json={"decision": "accept"},
                              headers=second)
    assert taken.status_code == 200 and taken.json()["status"] == "confirmed"
    closed = await client.post(f"/api/v1/registrations/{offer['id']}/offer", json={"decision": "decline"},
                               headers=second)
    assert closed.status_code == 409 and closed.json()["code"] == "offer_closed"
    listing = await client.get("/api/v1/me/registrations", headers=first)
    assert [r["status"] for r in listing.json()] == ["cancelled"]
    assert first_id


async def test_idempotency_key_header_replays_first_answer(client):
    _, coord = await _bearer("coordinator")
    _, student = await _bearer("student")
    event_id = await _published(client, coord, capacity=3)
    headers = {**student, "Idempotency-Key": "4f7c-retry"}
    first = await client.post(f"/api/v1/events/{event_id}/registrations", headers=headers)
    again = await client.post(f"/api/v1/events/{event_id}/registrations", headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    event = (await client.get(f"/api/v1/events/{event_id}")).json()
    assert event["confirmed_count"] == 1


async def test_coordinator_registers_by_email_and_views_are_audited(client):
    coord_id, coord = await _bearer("coordinator")
    _, student = await _bearer("student")
    event_id = await _published(client, coord, capacity=5, audience="anyone")
    denied = await client.post(f"/api/v1/events/{event_id}/registrations",
                               json={"email": "x@example.jp", "name": "誰か"}, headers=student)
    assert denied.status_code == 403 and denied.json()["code"] == "coordinator_only"
    phoned = await client.post(f"/api/v1/events/{event_id}/registrations",
                               json={"email": "Tel.Caller@Example.jp", "name": "電話 花子", "participant": "adult"},
                               headers=coord)
    assert phoned.status_code == 201 and phoned.json()["person_created"] is True
    assert len(await outbox_mails("seminar_confirmed", "tel.caller@example.jp")) == 1
    assert (await client.get(f"/api/v1/events/{event_id}/registrations", headers=student)).status_code == 403
    rows = (await client.get(f"/api/v1/events/{event_id}/registrations", headers=coord)).json()
    assert [r["email"] for r in rows] == ["tel.caller@example.jp"]
    csv_response = await client.get(f"/api/v1/events/{event_id}/registrations.csv", headers=coord)
    assert csv_response.content.startswith(b"\xef\xbb\xbf") and "電話 花子" in csv_response.content.decode("utf-8-sig")
    xlsx = await client.get(f"/api/v1/events/{event_id}/registrations.xlsx", headers=coord)
    assert xlsx.content[:2] == b"PK"
    actions = [e["action"] for e in await recent(action=None) if e["actor"] == coord_id]
    assert "staff_viewed_registrations" in actions and actions.count("staff_exported_registrations") == 2


async def test_consent_flow_over_http(client):
    _, coord = await _bearer("coordinator")
    student_id = await minor(guardian="parent@example.jp")
    token = await create_api_token(student_id, "t")
    event_id = await _published(client, coord, capacity=2)
    made = await client.post(f"/api/v1/events/{event_id}/registrations", headers={"Authorization": f"Bearer {token}"})
    assert made.json()["status"] == "pending_consent"
    link = [u for u in links_in((await outbox_mails("consent_request", "parent@example.jp"))[0]) if "/consent/" in u][0]
    consent_token = link.rsplit("/", 1)[1]
    shown = await client.get(f"/api/v1/consent/{consent_token}")
    assert shown.status_code == 200 and shown.json()["state"] == "pending"
    assert shown.headers["cache-control"] == "no-store"
    bad = await client.post(f"/api/v1/consent/{consent_token}", json={"decision": "maybe"})
    assert bad.status_code == 422
    given = await client.post(f"/api/v1/consent/{consent_token}", json={"decision": "give"})
    assert given.status_code == 200 and given.json() == {"decision": "given", "subject_kind": "registration",
                                                         "subject_id": made.json()["id"]}
    assert (await client.get(f"/api/v1/registrations/{made.json()['id']}",
                             headers={"Authorization": f"Bearer {token}"})).json()["status"] == "confirmed"
    again = await client.post(f"/api/v1/consent/{consent_token}", json={"decision": "refuse"})
    assert again.status_code == 409 and again.json()["code"] == "consent_already_decided"
    assert (await client.get("/api/v1/consent/nonsense")).status_code == 404


async def test_lottery_over_http_and_attendance(client):
    _, coord = await _bearer("coordinator")
    tokens = [(await _bearer("student"))[1] for _ in range(3)]
    event_id = await _published(client, coord, capacity=2, allocation="lottery",
                                registration_closes_at=soon(5).isoformat())
    for headers in tokens:
        assert (await client.post(f"/api/v1/events/{event_id}/registrations", headers=headers)).json()["status"] == "applied"
    assert (await client.post(f"/api/v1/events/{event_id}/draw", headers=tokens[0])).status_code == 403
    drawn = await client.post(f"/api/v1/events/{event_id}/draw", headers=coord)
    assert drawn.status_code == 200 and len(drawn.json()["winners"]) == 2
    again = await client.post(f"/api/v1/events/{event_id}/draw", headers=coord)
    assert again.status_code == 409 and again.json()["code"] == "lottery_already_drawn"
    verified = (await client.get(f"/api/v1/events/{event_id}/lottery")).json()
    assert verified["ok"] is True and set(verified["winners"]) == set(drawn.json()["winners"])
    assert all(set(e) == {"ticket", "priority", "size"} for e in verified["entries"])  # no names, no ids
    rows = {r["lottery_ticket"]: r["id"] for r in await Registration.select(Registration.id, Registration.lottery_ticket)}
    loser = rows[drawn.json()["waitlist"][0]]
    left = await client.post(f"/api/v1/registrations/{loser}/leave-waitlist", headers=coord)
    assert left.status_code == 200 and left.json()["status"] == "cancelled"
    early = await client.post(f"/api/v1/registrations/{rows[drawn.json()['winners'][0]]}/attendance",
                              json={"status": "attended"}, headers=coord)
    assert early.status_code == 409 and early.json()["code"] == "too_early_for_attendance"
    found = await client.get(f"/api/v1/events/{event_id}/checkin", params={"q": "テスト"}, headers=coord)
    assert len(found.json()) == 2

    # declaring the draw void: staff only, a reason is required, audited, shown on the public record, never redrawn
    assert (await client.post(f"/api/v1/events/{event_id}/lottery/cancel", json={"reason": "x"},
                              headers=tokens[0])).status_code == 403
    blank = await client.post(f"/api/v1/events/{event_id}/lottery/cancel", json={"reason": "  "}, headers=coord)
    assert blank.status_code == 422 and blank.json()["code"] == "reason_required"
    void = await client.post(f"/api/v1/events/{event_id}/lottery/cancel", json={"reason": "締切の時刻を誤って設定"},
                             headers=coord)
    assert void.status_code == 200 and void.json()["cancel_reason"] == "締切の時刻を誤って設定"
    assert void.json()["cancelled_at"] and void.json()["seed"] == verified["seed"]
    twice = await client.post(f"/api/v1/events/{event_id}/lottery/cancel", json={"reason": "再度"}, headers=coord)
    assert twice.status_code == 409 and twice.json()["code"] == "no_draw_to_cancel"
    assert (await client.post(f"/api/v1/events/{event_id}/draw", headers=coord)).json()["code"] == "lottery_already_drawn"
    assert await AuditEntry.count().where((AuditEntry.action == "lottery_cancelled")
                                          & (AuditEntry.subject_id == str(event_id))) == 1
    public = await client.get(f"/events/{event_id}/lottery")
    assert public.status_code == 200 and "締切の時刻を誤って設定" in public.text and "無効" in public.text


async def test_openapi_lists_the_seminar_endpoints(client):
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    for path in ("/api/v1/events", "/api/v1/events/{event_id}", "/api/v1/events/{event_id}/registrations",
                 "/api/v1/registrations/{registration_id}", "/api/v1/events/{event_id}/publish"):
        assert path in paths, path
