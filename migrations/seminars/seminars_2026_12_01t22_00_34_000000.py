from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-01T22:00:34:000000"
VERSION = "1.38.0"
DESCRIPTION = "a registration may be an open waiting-list offer; offers are found by their deadline"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="seminars", description=DESCRIPTION)

    async def offers():
        from events.schema import add_check, add_index, drop_check

        await drop_check("registration", "registration_status_known")
        await add_check(
            "registration",
            "registration_status_known",
            "{row}status IN ('confirmed','waitlisted','offered','pending_consent','applied','cancelled','attended',"
            "'no_show')",
        )
        await add_index("registration", "registration_offer_deadline", ["status", "offer_expires_at"])

    manager.add_raw(offers)
    return manager
