from pathlib import Path

from piccolo.conf.apps import AppConfig

from events.invites.tables import CalendarFeedToken, CalendarInvite, ReminderOptOutToken

APP_CONFIG = AppConfig(
    app_name="invites",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "invites"),
    table_classes=[CalendarInvite, CalendarFeedToken, ReminderOptOutToken],
    migration_dependencies=["events.core.piccolo_app", "events.seminars.piccolo_app"],
    commands=[],
)
