from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-28T18:26:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "capacity CHECK, one live registration per person and event, idempotency keys"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="seminars", description=DESCRIPTION)

    async def constraints():
        from events.schema import add_check, add_index, add_unique

        await add_check("event", "event_seats_within_capacity", "{row}taken >= 0 AND {row}taken <= {row}capacity")
        await add_check(
            "registration",
            "registration_status_known",
            "{row}status IN ('confirmed','waitlisted','pending_consent','applied','cancelled','attended','no_show')",
        )
        await add_unique("registration", "registration_one_live_per_person", ["event", "person"],
                         where="status <> 'cancelled'")
        await add_unique("idempotent_request", "idempotent_request_key", ["person", "scope", "key"])
        await add_index("registration", "registration_event_status", ["event", "status"])

    manager.add_raw(constraints)
    return manager
