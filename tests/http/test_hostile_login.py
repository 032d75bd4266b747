"""The login request against a prying client: no timing difference between known and unknown addresses (the
lookup happens after the answer), X-Forwarded-For believed only from configured proxies, NUL refused."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from litestar import Request

from events import auth
from lifedesign import cli, proxies
from lifedesign.settings import SettingsError, load_settings
from tests.conftest import csrf_from, make_person, outbox_mails


async def _until(condition, *, seconds: float = 20.0) -> None:
    """Polling with a bound (no fixed sleeps): returns as soon as `condition()` holds."""
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_the_login_answer_does_not_wait_for_the_address_lookup(live_server, monkeypatch):
    await make_person("student", "known@example.jp")
    gate = threading.Event()
    held: list[str] = []
    real = auth.send_login_link

    async def at_the_gate(email: str, next_path: str = "/") -> bool:
        held.append(email)
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, 30)
        return await real(email, next_path)

    monkeypatch.setattr(auth, "send_login_link", at_the_gate)
    try:
        async with httpx.AsyncClient(base_url=live_server, timeout=20) as http:
            answers = [await http.post("/api/v1/auth/magic-link", json={"email": email})
                       for email in ("known@example.jp", "nobody@example.jp")]
            assert [a.status_code for a in answers] == [202, 202] and answers[0].json() == answers[1].json()
            form = await http.get("/login")
            page = await http.post("/login", data={"_csrf": csrf_from(form.text), "email": "known@example.jp"})
            assert page.status_code == 200 and "メールを確認してください" in page.text
        # Every answer arrived while the lookups were still held: a known address is answered like an unknown one.
        assert not gate.is_set() and await outbox_mails("login") == []
        await _until(lambda: _true(len(held) == 3))
        # Negative control: the service the handlers used to await does not return while the gate is closed.
        inline = asyncio.create_task(auth.request_login("known@example.jp", client="inline"))
        await _until(lambda: _true(len(held) == 4))
        assert not inline.done()
    finally:
        gate.set()
    await inline
    await _until(lambda: _count_mails(3))  # API + form + inline, all for the known address; none for the other
    assert {m["To"].addresses[0].addr_spec for m in await outbox_mails("login")} == {"known@example.jp"}


async def _true(value: bool) -> bool:
    return value


async def _count_mails(n: int) -> bool:
    return len(await outbox_mails("login")) == n


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """The app as `lifedesign serve` runs it (cli.server_config), on 127.0.0.1."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(cli.server_config(app, "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def test_x_forwarded_for_from_an_untrusted_client_does_not_buy_a_new_rate_limit_bucket(db, shared_app):
    statuses = []
    with serving(shared_app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            for i in range(auth.LOGIN_LIMIT_PER_CLIENT[0] + 1):
                response = await http.post("/api/v1/auth/magic-link", json={"email": f"probe{i}@example.jp"},
                                           headers={"x-forwarded-for": f"198.51.100.{i + 1}"})
                statuses.append(response.status_code)
    assert statuses[:-1] == [202] * auth.LOGIN_LIMIT_PER_CLIENT[0] and statuses[-1] == 429


def _request(peer: str, forwarded: list[str]) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 5000),
                    "query_string": b"", "app": None})


def test_trusted_proxies_name_the_client_and_nobody_else_does():
    trusted = load_settings({"LIFEDESIGN_SECRET_KEY": "k" * 40,
                             "LIFEDESIGN_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7"}).trusted_proxies
    assert trusted == ("10.0.0.0/8", "192.0.2.7/32")
    assert proxies.client_address(_request("203.0.113.9", ["198.51.100.1"]), trusted) == "203.0.113.9"
    assert proxies.client_address(_request("10.1.2.3", ["198.51.100.1"]), trusted) == "198.51.100.1"
    # read from the right: what the client itself wrote at the left is not believed
    assert proxies.client_address(_request("10.1.2.3", ["6.6.6.6, 198.51.100.1, 10.9.9.9"]), trusted) == "198.51.100.1"
    assert proxies.client_address(_request("10.1.2.3", ["6.6.6.6", "198.51.100.1"]), trusted) == "198.51.100.1"
    assert proxies.client_address(_request("10.1.2.3", ["not-an-ip"]), trusted) == "10.1.2.3"
    assert proxies.client_address(_request("10.1.2.3", []), trusted) == "10.1.2.3"
    assert proxies.client_address(_request("10.1.2.3", ["198.51.100.1"]), ()) == "10.1.2.3"  # the default
    with pytest.raises(SettingsError, match="LIFEDESIGN_TRUSTED_PROXIES"):
        load_settings({"LIFEDESIGN_SECRET_KEY": "k" * 40, "LIFEDESIGN_TRUSTED_PROXIES": "10.0.0.300"})


async def test_a_nul_in_the_anonymous_login_request_is_a_clear_error(client):
    for body in ({"email": "a\u0000b@example.jp"}, {"email": "a@example.jp", "next": "/\u0000"}):
        response = await client.post("/api/v1/auth/magic-link", json=body)
        assert response.status_code == 422 and response.json()["code"] == "invalid_characters", body
    form = await client.get("/login")
    page = await client.post("/login", data={"_csrf": csrf_from(form.text), "email": "a\x00b@example.jp"})
    assert page.status_code == 422 and "Traceback" not in page.text
