from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-08T00:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = (
    "registration: drop the single-column indexes on event, person and status; a composite index leads with each "
    "((event, status), (person, event), (status, offer_expires_at)), so every write updates three indexes fewer"
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="seminars", description=DESCRIPTION)
    for column in ("event", "person", "status"):
        manager.alter_column(
            table_class_name="Registration",
            tablename="registration",
            column_name=column,
            db_column_name=column,
            params={"index": False},
            old_params={"index": True},
            schema=None,
        )
    return manager
