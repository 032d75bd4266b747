from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-01T20:34:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "guardian consent keyed by subject: backfill from registration, drop the registration column"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="seminars", description=DESCRIPTION)

    async def by_subject():
        from events.db import engine
        from events.schema import add_check, add_index, add_unique

        await engine().run_ddl(
            "UPDATE guardian_consent SET subject_kind = 'registration', subject_id = registration "
            "WHERE registration IS NOT NULL"
        )
        await add_index("guardian_consent", "guardian_consent_subject", ["subject_kind", "subject_id"])
        await add_check("guardian_consent", "guardian_consent_decision_known",
                        "{row}decision IN ('pending','given','refused','expired','withdrawn','revoked')")
        await add_unique("event_invitation", "event_invitation_one_per_person", ["event", "person"])
        # SQLite cannot drop a column that an index still names
        await engine().run_ddl("DROP INDEX IF EXISTS guardian_consent_registration")

    manager.add_raw(by_subject)
    manager.drop_column(
        table_class_name="GuardianConsent",
        tablename="guardian_consent",
        column_name="registration",
        db_column_name="registration",
        schema=None,
    )
    return manager
