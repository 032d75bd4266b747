"""The OpenAPI document says what the API does (lifedesign.openapi): who may call (a bearer scheme), every error
as it is really sent ({status, code, message} under its real statuses), typed bodies, descriptions, the file
types, and 405 answers that say what is allowed."""

from __future__ import annotations

import json

from events import auth
from tests.conftest import make_person

ERROR_REF = "#/components/schemas/ErrorOut"
NEW_ENDPOINTS = {
    ("get", "/api/v1/outbox/messages"), ("get", "/api/v1/feedback/surveys/{survey_id}/answers.csv"),
    ("get", "/api/v1/feedback/surveys/{survey_id}/answers.xlsx"), ("get", "/api/v1/feedback/series"),
    ("post", "/api/v1/people/{person_id}/disable"), ("post", "/api/v1/people/{person_id}/enable"),
    ("patch", "/api/v1/exchanges/facilities/{facility_id}"), ("get", "/api/v1/exchanges/staff"),
    ("get", "/api/v1/exchanges/staff/{person_id}"), ("patch", "/api/v1/exchanges/staff/{person_id}"),
    ("get", "/api/v1/me/calendar-feed"), ("post", "/api/v1/me/calendar-feed"), ("get", "/api/v1/me/tokens"),
    ("post", "/api/v1/me/tokens"), ("delete", "/api/v1/me/tokens/{token_id}"),
    ("get", "/api/v1/exchanges/{session_id}/cards"), ("get", "/api/v1/exchanges/{session_id}/seats"),
    ("post", "/api/v1/outbox/{message_id}/release"), ("post", "/api/v1/outbox/{message_id}/withdraw"),
}


async def _document(client) -> dict:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


async def test_security_errors_and_descriptions_are_declared(client):
    document = await _document(client)
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    text = json.dumps(document)
    assert "status_code" not in text and '"detail"' not in text  # Litestar's body that is never sent
    error = document["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["status", "code", "message"]
    operations = list(_operations(document))
    assert len(operations) > 80
    for path, method, operation in operations:
        label = f"{method.upper()} {path}"
        assert operation.get("description", "").strip(), label
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}, (label, status)
        statuses = set(operation["responses"])
        assert {"401", "503", "default"} <= statuses, label
        if "{" in path:
            assert {"404", "422"} <= statuses, label
        if method in ("post", "put", "patch", "delete"):
            assert {"403", "409"} <= statuses, label
    guarded = [(p, m, o) for p, m, o in operations if "Who may call" in o["description"]]
    assert len(guarded) > 60
    assert all({"bearer": []} in o["security"] for _, _, o in guarded)


async def test_bodies_files_and_new_endpoints_are_typed(client):
    document = await _document(client)
    paths = document["paths"]
    patch = paths["/api/v1/events/{event_id}"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    event_patch = document["components"]["schemas"][patch["$ref"].rsplit("/", 1)[1]]
    assert {"title", "capacity", "starts_at", "questions"} <= set(event_patch["properties"])
    assert not event_patch.get("required")  # every field optional: only the given ones change
    for path, media in (("/api/v1/events/{event_id}/registrations.csv", "text/csv"),
                        ("/api/v1/feedback/surveys/{survey_id}/answers.xlsx",
                         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == [media], path
    upload = paths["/api/v1/exchanges/import/{what}"]["post"]["requestBody"]["content"]
    assert "text/csv" in upload and "application/json" not in upload
    present = {(method, path) for path, method, _ in _operations(document)}
    assert NEW_ENDPOINTS <= present, sorted(NEW_ENDPOINTS - present)
    people = document["components"]["schemas"]["NewPerson"]["properties"]
    assert "student" in people and "facility_id" in people


async def test_real_errors_match_their_documented_status_and_shape(client):
    document = await _document(client)
    student = await auth.create_api_token(await make_person("student", "doc-student@example.jp"), "doc")
    as_student = {"authorization": f"Bearer {student}"}
    probes = [
        ("get", "/api/v1/outbox/messages", "/api/v1/outbox/messages", {}, 401),
        ("get", "/api/v1/outbox/messages", "/api/v1/outbox/messages", as_student, 403),
        ("get", "/api/v1/events/{event_id}", "/api/v1/events/424242", {}, 404),
        ("get", "/api/v1/events/{event_id}", f"/api/v1/events/{2**40}", {}, 422),
        ("get", "/api/v1/me", "/api/v1/me", {"authorization": "Bearer nope"}, 401),
        ("post", "/api/v1/auth/magic-link", "/api/v1/auth/magic-link", {"content-type": "application/json"}, 400),
    ]
    for method, template, url, headers, status in probes:
        response = await client.request(method.upper(), url, headers=headers,
                                        content=b"{" if method == "post" else None)
        assert response.status_code == status, (url, response.status_code)
        body = response.json()
        assert body["status"] == status and body["code"] and body["message"], url
        assert str(status) in document["paths"][template][method]["responses"], (template, status)


async def test_a_method_that_is_not_allowed_says_which_are(client):
    response = await client.delete("/api/v1/facilities")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert response.json()["code"] == "method_not_allowed"
