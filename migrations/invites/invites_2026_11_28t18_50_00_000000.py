from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-28T18:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "index registration (person, event) for the feed's per-event look-ups"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="invites", description=DESCRIPTION)

    async def indexes():
        from events.schema import add_index

        # The feed asks "does this person hold this event?" once per event; with only the person index
        # that is a scan of all the person's registrations each time (quadratic in the feed's size).
        await add_index("registration", "registration_person_event", ["person", "event"])

    manager.add_raw(indexes)
    return manager
