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


async def test_english_on_request(client):
    page = await client.get("/login?lang=en")
    assert '<html lang="en">' in page.text
    assert "Send me a sign-in link" in page.text and "ログイン用リンクを送る" not in page.text
    missing = await client.get("/no/such/page?lang=en", headers={"accept": "text/html"})
    assert missing.status_code == 404 and "Page not found." in missing.text


async def test_every_catalog_compiles_and_has_no_empty_translation():
    from babel.messages.pofile import read_po

    from lifedesign.i18n import LOCALE_DIR

    catalogs = sorted((LOCALE_DIR / "en" / "LC_MESSAGES").glob("*.po"))
    assert catalogs
    for path in catalogs:
        with path.open("rb") as handle:
            catalog = read_po(handle)
        empty = [m.id for m in catalog if m.id and not m.string]
        assert not empty, f"{path.name}: untranslated {empty[:5]}"
