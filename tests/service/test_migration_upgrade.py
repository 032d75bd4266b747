"""An existing database moves to the one guardian-consent table without losing a consent (SQLite and PostgreSQL).

A subprocess (its own database and engine) migrates up to the schema before the kernel, writes a pending seminar
consent and a given home-visit consent in the old tables, then applies every migration.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from tests.conftest import _BASE_DB_URL, ON_POSTGRES

ROOT = Path(__file__).resolve().parents[2]


async def test_old_consents_survive_the_upgrade(tmp_path):
    env = {**os.environ, "LIFEDESIGN_DATA_DIR": str(tmp_path)}
    database = ""
    if ON_POSTGRES:
        import asyncpg

        database = f"lifedesign_upgrade_{secrets.token_hex(3)}"
        connection = await asyncpg.connect(_BASE_DB_URL)
        await connection.execute(f'CREATE DATABASE "{database}"')
        await connection.close()
        env["LIFEDESIGN_DATABASE_URL"] = _BASE_DB_URL.rsplit("/", 1)[0] + f"/{database}"
    else:
        env["LIFEDESIGN_DATABASE_URL"] = f"sqlite:///{tmp_path / 'upgrade.sqlite3'}"
    try:
        done = subprocess.run([sys.executable, str(ROOT / "tests/service/upgrade_script.py")], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        if database:
            connection = await asyncpg.connect(_BASE_DB_URL)
            await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await connection.close()
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["registrations"] == 1
    assert [(r["subject_kind"], r["subject_id"], r["student"], r["token_hash"], r["decision"])
            for r in outcome["consents"]] == [("registration", 1, 1, "hash-seminar", "pending"),
                                              ("visit_request", 1, 1, "hash-visit", "given")]
    assert outcome["consents"][1]["guardian_name"] == "保護者" and outcome["consents"][1]["decided_from"] == "127.0.0.1"
