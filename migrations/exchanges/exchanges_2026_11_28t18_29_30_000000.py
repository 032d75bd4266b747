from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-28T18:29:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "one seat per person and round, one presence row per person, sane session sizes"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="exchanges", description=DESCRIPTION)

    async def constraints():
        from events.schema import add_check, add_index, add_unique

        await add_unique("table_seat", "table_seat_one_per_round", ["session", "round", "person"])
        await add_index("table_seat", "table_seat_session_round_table", ["session", "round", "table_no"])
        await add_unique("exchange_presence", "exchange_presence_one", ["session", "person"])
        await add_check("exchange_presence", "exchange_presence_status_known",
                        "{row}status IN ('arrived','late','absent')")
        await add_check("exchange_session", "exchange_session_sizes",
                        "{row}rounds >= 1 AND {row}current_round >= 0 AND {row}current_round <= {row}rounds")

    manager.add_raw(constraints)
    return manager
