from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-28T18:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "constraints Piccolo cannot add portably (events.schema)"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    async def constraints():
        from events.schema import add_check, add_unique

        await add_unique("person_role", "person_role_unique", ["person", "role"])
        await add_unique("staff_membership", "staff_membership_unique", ["person", "facility"])
        await add_check(
            "outbox_message",
            "outbox_status_known",
            "{row}status IN ('queued','inflight','awaiting_retry','sent','failed','withdrawn')",
        )
        await add_check("person", "person_email_lower", "{row}email = lower({row}email)")

    manager.add_raw(constraints)
    return manager
