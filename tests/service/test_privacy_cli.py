"""`lifedesign purge` as an operator runs it: a real process against this run's database."""

import asyncio
import os
import subprocess
import sys

from events.core.tables import LoginToken, PurgeRun


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lifedesign", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


async def test_purge_dry_run_lists_every_category_then_purges_with_progress(db, tmp_path):
    from events import auth
    from tests.conftest import make_person

    await make_person("student", "s@example.jp")
    await auth.request_login("s@example.jp", client="127.0.0.1")
    env = {"LIFEDESIGN_DATA_DIR": str(tmp_path), "LIFEDESIGN_RETENTION_TOKEN_DAYS": "1"}
    preview = await asyncio.to_thread(_run, "purge", "--dry-run", env=env)
    assert preview.returncode == 0, preview.stderr
    for category in ("login_links", "outbox_bodies", "minor_profiles", "household_addresses", "survey_answers",
                     "audit_log"):
        assert category in preview.stdout
    assert "would purge 0 rows" in preview.stdout  # the login link expires in 10 minutes, plus a day
    assert await LoginToken.count() == 1
    done = await asyncio.to_thread(_run, "purge", "--category", "login_links", env=env)
    assert done.returncode == 0 and "purged 0 rows" in done.stdout
    unknown = await asyncio.to_thread(_run, "purge", "--category", "everything", env=env)
    assert unknown.returncode == 1 and "unknown category everything" in unknown.stderr
    assert await PurgeRun.count() == 2
