from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-01T23:36:05:000000"
VERSION = "1.38.0"
DESCRIPTION = "outbox: one row per Message-ID (2/2: SQLite cannot add a UNIQUE column, so a unique index)"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    async def indexes():
        from events.schema import add_unique

        await add_unique("outbox_message", "outbox_message_message_id", ["message_id"])

    manager.add_raw(indexes)
    return manager
