from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-28T18:29:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "slot capacity 1-4, known states, one live request per student and round, one rule per pair"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="visits", description=DESCRIPTION)

    async def constraints():
        from events.schema import add_check, add_index, add_unique

        await add_check("visit_slot", "visit_slot_capacity_1_4", "{row}capacity >= 1 AND {row}capacity <= 4")
        await add_check("visit_slot", "visit_slot_ends_after_start", "{row}ends_at > {row}starts_at")
        await add_check("visit_slot", "visit_slot_status_known", "{row}status IN ('offered','withdrawn')")
        await add_check("visit_round", "visit_round_status_known",
                        "{row}status IN ('draft','open','closed','completed')")
        await add_check("visit_request", "visit_request_status_known", "{row}status IN ('active','withdrawn')")
        await add_check("visit_consent", "visit_consent_decision_known",
                        "{row}decision IN ('pending','given','refused','expired')")
        await add_check("visit_pair_rule", "visit_pair_rule_kind_known", "{row}kind IN ('pin','forbid')")
        await add_check(
            "visit_match", "visit_match_status_known",
            "{row}status IN ('proposed','confirmed_by_coordinator','accepted','declined','cancelled','superseded')",
        )
        await add_unique("visit_request", "visit_request_one_live", ["round", "student"], where="status = 'active'")
        await add_unique("visit_pair_rule", "visit_pair_rule_one_per_pair", ["round", "student", "household"])
        # one live match per student and round: a student visits at most one household per round
        await add_unique("visit_match", "visit_match_one_live", ["round", "student"],
                         where="status IN ('confirmed_by_coordinator','accepted')")
        await add_index("visit_match", "visit_match_round_status", ["round", "status"])

    manager.add_raw(constraints)
    return manager
