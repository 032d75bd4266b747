from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-28T19:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "one request per person and survey; known states and kinds"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="feedback", description=DESCRIPTION)

    async def constraints():
        from events.schema import add_check, add_index, add_unique

        await add_unique("feedback_request", "feedback_request_one_per_person", ["survey", "person"])
        await add_check("survey", "survey_status_known", "{row}status IN ('draft','open','closed')")
        await add_check(
            "survey",
            "survey_audience_known",
            "{row}audience IN ('seminar_student','home_visit_student','host_family','exchange_staff')",
        )
        await add_check("survey_question", "survey_question_kind_known", "{row}kind IN ('scale','single','multi','text')")
        await add_index("feedback_request", "feedback_request_survey_event", ["survey", "event"])

    manager.add_raw(constraints)
    return manager
