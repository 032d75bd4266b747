"""Run in a subprocess by test_migration_upgrade.py: a database at the schema before the kernel, with a pending
seminar consent and a given home-visit consent in the old tables, then every migration; prints what became of them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime


async def main() -> None:
    from piccolo.apps.migrations.commands.forwards import run_forwards

    from events.db import prepare_sqlite, raw
    from lifedesign.settings import get_settings

    settings = get_settings()
    if settings.database_kind == "sqlite":
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        prepare_sqlite(str(settings.sqlite_path))
    before = {"core": "all", "seminars": "2026-11-28T18:26:00:000000", "invites": "all",
              "visits": "2026-11-28T18:29:30:000000"}
    for app, target in before.items():
        result = await run_forwards(app, migration_id=target)
        assert result.success, result.message
    now = datetime(2026, 11, 30, 10, tzinfo=UTC)
    await raw("INSERT INTO person (email, name, kana, locale, active, reminders, created_at) "
              "VALUES ('m@example.jp', '佐藤 結衣', '', 'ja', true, true, {})", now)
    await raw("INSERT INTO event (kind, title, title_en, description, description_en, venue, venue_en, starts_at, "
              "ends_at, capacity, taken, cancel_cutoff_hours, audience, allocation, status, visibility, series, "
              "calendar_sequence, lottery_seed, attendance_taken, created_at, updated_at) VALUES ('seminar', 'セミナー', "
              "'', '', '', '会場', '', {}, {}, 5, 1, 24, 'anyone', 'first_come', 'published', 'public', '', 0, '', "
              "false, {}, {})", now, now, now, now)
    await raw("INSERT INTO registration (event, person, status, answers, calendar_sequence, created_at, updated_at) "
              "VALUES (1, 1, 'pending_consent', {}, 0, {}, {})", "{}", now, now)
    await raw("INSERT INTO guardian_consent (registration, student, guardian_email, guardian_name, token_hash, "
              "text_version, purpose, decision, created_at, expires_at, decided_from) VALUES (1, 1, 'g@example.jp', "
              "'', 'hash-seminar', '2025-1', '参加', 'pending', {}, {}, '')", now, now)
    await raw("INSERT INTO visit_round (name, description, requests_open_at, requests_close_at, status, seed, "
              "created_at) VALUES ('夏', '', {}, {}, 'open', 1, {})", now, now, now)
    await raw("INSERT INTO visit_request (round, student, windows, districts, wanted_tags, avoided_tags, note, "
              "is_minor, status, created_at, updated_at) VALUES (1, 1, '[]', '[]', '[]', '[]', '', true, 'active', "
              "{}, {})", now, now)
    await raw("INSERT INTO visit_consent (request, student, guardian_email, guardian_name, token_hash, text_version, "
              "purpose, decision, created_at, expires_at, decided_at, decided_from) VALUES (1, 1, 'g@example.jp', "
              "'保護者', 'hash-visit', 'visit-consent-2026-1', '訪問', 'given', {}, {}, {}, '127.0.0.1')", now, now, now)
    result = await run_forwards("all")
    assert result.success, result.message
    rows = await raw("SELECT subject_kind, subject_id, student, token_hash, decision, guardian_name, decided_from "
                     "FROM guardian_consent ORDER BY id")
    tables = await raw("SELECT COUNT(*) AS n FROM registration")
    print(json.dumps({"consents": rows, "registrations": tables[0]["n"]}, ensure_ascii=False))


asyncio.run(main())
