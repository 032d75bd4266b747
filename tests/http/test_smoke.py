from tests.conftest import login, make_person


async def test_health_and_home(client, settings):
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": settings.database_kind}
    home = await client.get("/")
    assert home.status_code == 200
    assert '<html lang="ja">' in home.text
    assert "しあわせ育む" in home.text
    schema = await client.get("/schema/openapi.json")
    assert schema.status_code == 200
    assert "/api/v1/auth/magic-link" in schema.json()["paths"]


async def test_login_flow(client):
    await make_person("student", "yui@example.jp")
    await login(client, "yui@example.jp")
    profile = await client.get("/profile")
    assert profile.status_code == 200
    assert "yui@example.jp" in profile.text
    assert profile.headers["cache-control"] == "no-store"
