from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-07T23:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "event.waiting counted, kept by the ledger (a CHECK on PostgreSQL): a newcomer's rank is one counter"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="seminars", description=DESCRIPTION)

    async def count_and_settle():
        from events.db import engine, is_sqlite
        from events.places import install_settle_at_commit
        from events.schema import add_check, drop_check

        await engine().run_ddl("UPDATE event SET waiting = (SELECT COUNT(*) FROM registration"
                               " WHERE registration.event = event.id AND registration.status = 'waitlisted')")
        if is_sqlite():
            # A CHECK is a trigger on SQLite, run by each UPDATE it watches: the count goes without one there (one
            # writer at a time, and the ledger's invariant test), and the seats' CHECK now runs only when an UPDATE
            # sets the seats, not when it counts the line.
            await drop_check("event", "event_seats_within_capacity")
            await add_check("event", "event_seats_within_capacity", "{row}taken >= 0 AND {row}taken <= {row}capacity",
                            columns=["taken", "capacity"])
        else:
            await add_check("event", "event_waiting_not_negative", "{row}waiting >= 0")
        await install_settle_at_commit()  # the trigger that counts a newcomer in at commit

    manager.add_raw(count_and_settle)
    return manager
