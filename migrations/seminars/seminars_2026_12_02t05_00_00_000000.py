from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-02T05:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "PostgreSQL: a waiting-list entry takes its place in line at commit (events.places, rule 1)"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="seminars", description=DESCRIPTION)

    async def queue_at_commit():
        from events.places import install_settle_at_commit  # the current trigger (see 2026-12-02T09)

        await install_settle_at_commit()

    manager.add_raw(queue_at_commit)
    return manager
