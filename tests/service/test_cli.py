"""The CLI as a user runs it: a real process, real exit codes, one clear line on error."""

import asyncio
import os
import subprocess
import sys

from events import people


def _run_blocking(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lifedesign", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_help_lists_every_command():
    result = _run_blocking("--help")
    assert result.returncode == 0
    for command in ("serve", "migrate", "worker", "demo", "users", "token"):
        assert command in result.stdout


async def test_users_add_token_create_and_demo(db, tmp_path):
    """Against the test database of this run: SQLite, or PostgreSQL when the suite runs there."""
    env = {"LIFEDESIGN_DATA_DIR": str(tmp_path)}  # subprocesses run off the event loop (asyncio.to_thread)

    added = await asyncio.to_thread(_run_blocking, "users", "add", "--email", "Coord@Example.jp", "--name", "金沢 花子", "--role", "coordinator", env=env)
    assert added.returncode == 0, added.stderr
    token = await asyncio.to_thread(_run_blocking, "token", "create", "--email", "coord@example.jp", env=env)
    assert token.returncode == 0
    assert token.stdout.strip().startswith("ld_") and len(token.stdout.strip().splitlines()) == 1
    again = await asyncio.to_thread(_run_blocking, "users", "add", "--email", "coord@example.jp", "--name", "X", "--role", "admin", env=env)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "email_taken" in again.stderr and "Traceback" not in again.stderr
    bad = await asyncio.to_thread(_run_blocking, "users", "add", "--email", "nope", "--name", "X", "--role", "admin", env=env)
    assert bad.returncode == 1 and "invalid_email" in bad.stderr
    unknown = await asyncio.to_thread(_run_blocking, "token", "create", "--email", "ghost@example.jp", env=env)
    assert unknown.returncode == 1 and "ghost@example.jp" in unknown.stderr
    demo = await asyncio.to_thread(_run_blocking, "demo", env=env)
    assert demo.returncode == 0, demo.stderr
    assert "金沢" in demo.stdout or "facilities" in demo.stdout
    assert ("SQLite database" in demo.stdout and "test.sqlite3" in demo.stdout) or "PostgreSQL database" in demo.stdout
    twice = await asyncio.to_thread(_run_blocking, "demo", env=env)
    assert twice.returncode == 0, twice.stderr
    assert (await people.find_by_email("coord@example.jp"))["name"] == "金沢 花子"  # it went to this run's database
