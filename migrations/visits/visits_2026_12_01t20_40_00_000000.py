from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-01T20:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "one guardian-consent table: visit consents move to guardian_consent; matches may be on hold"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="visits", description=DESCRIPTION)

    async def one_consent_table():
        from events.db import engine
        from events.schema import add_check, drop_check

        columns = ("student, guardian_email, guardian_name, token_hash, text_version, purpose, decision, created_at, "
                   "expires_at, decided_at, decided_from")
        await engine().run_ddl(
            f"INSERT INTO guardian_consent (subject_kind, subject_id, {columns}) "
            f"SELECT 'visit_request', request, {columns} FROM visit_consent"
        )
        await drop_check("visit_consent", "visit_consent_decision_known")
        await drop_check("visit_match", "visit_match_status_known")
        await add_check(
            "visit_match", "visit_match_status_known",
            "{row}status IN ('proposed','confirmed_by_coordinator','accepted','declined','cancelled','superseded',"
            "'on_hold')",
        )

    manager.add_raw(one_consent_table)
    manager.drop_table(class_name="VisitConsent", tablename="visit_consent", schema=None)
    return manager
