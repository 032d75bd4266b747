from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-01T23:28:49:000000"
VERSION = "1.38.0"
DESCRIPTION = "anonymous answers unlinkable (2/2): answered from responded_at, which goes; random answer keys"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="feedback", description=DESCRIPTION)

    async def unlink():
        from events.db import engine, is_sqlite

        await engine().run_ddl("UPDATE feedback_request SET answered = (responded_at IS NOT NULL)")
        # The old answer key was HMAC(link token, survey): a logged link would find its answer. New random keys
        # (in one statement, so on PostgreSQL every anonymous answer ends up with one and the same xmin).
        fresh = "lower(hex(randomblob(16)))" if is_sqlite() else "md5(random()::text || clock_timestamp()::text || id)"
        await engine().run_ddl(f"UPDATE feedback_answer SET id = {fresh} WHERE person IS NULL")
        if not is_sqlite():
            await engine().run_ddl("UPDATE feedback_request SET answered = answered WHERE answered")

    manager.add_raw(unlink)
    manager.drop_column(
        table_class_name="FeedbackRequest",
        tablename="feedback_request",
        column_name="responded_at",
        db_column_name="responded_at",
        schema=None,
    )
    return manager
