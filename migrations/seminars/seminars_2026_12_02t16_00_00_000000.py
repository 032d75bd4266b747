from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-02T16:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "PostgreSQL: the deferred trigger tells the place in line it handed out (a notice; events.places, rule 1)"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="seminars", description=DESCRIPTION)

    async def settle_at_commit():
        from events.places import install_settle_at_commit

        await install_settle_at_commit()

    manager.add_raw(settle_at_commit)
    return manager
