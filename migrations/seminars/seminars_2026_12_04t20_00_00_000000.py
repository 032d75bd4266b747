from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-04T20:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "registration (event, queue_position): the next place in line is read from an index, not a scan"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="seminars", description=DESCRIPTION)

    async def index():
        from events.schema import add_index

        await add_index("registration", "registration_event_queue", ["event", "queue_position"])

    manager.add_raw(index)
    return manager
