from pathlib import Path

from piccolo.conf.apps import AppConfig

from events.feedback.tables import FeedbackAnswer, FeedbackRequest, OnsiteSlotUsed, Survey, SurveyQuestion

APP_CONFIG = AppConfig(
    app_name="feedback",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "feedback"),
    table_classes=[Survey, SurveyQuestion, FeedbackRequest, FeedbackAnswer, OnsiteSlotUsed],
    migration_dependencies=["events.core.piccolo_app", "events.seminars.piccolo_app"],
    commands=[],
)
