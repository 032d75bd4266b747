from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-01T23:02:13:000000"
VERSION = "1.38.0"
DESCRIPTION = "index the outbox by recipient: a person's mails are disclosed and scrubbed by address (events.privacy)"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    async def indexes():
        from events.schema import add_index

        await add_index("outbox_message", "outbox_message_recipient", ["recipient"])

    manager.add_raw(indexes)
    return manager
