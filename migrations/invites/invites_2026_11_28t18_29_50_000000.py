from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-28T18:29:50:000000"
VERSION = "1.38.0"
DESCRIPTION = "one invite state per event and person, one live feed token per person, known invite states"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="invites", description=DESCRIPTION)

    async def constraints():
        from events.schema import add_check, add_unique

        await add_unique("calendar_invite", "calendar_invite_event_person", ["event", "person"])
        await add_check("calendar_invite", "calendar_invite_state_known", "{row}state IN ('active','cancelled')")
        await add_check("calendar_invite", "calendar_invite_sequence_positive", "{row}sequence >= 0")
        await add_unique("calendar_feed_token", "calendar_feed_token_one_live", ["person"], where="revoked_at IS NULL")

    manager.add_raw(constraints)
    return manager
