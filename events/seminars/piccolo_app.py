from pathlib import Path

from piccolo.conf.apps import AppConfig

from events.seminars import tables

APP_CONFIG = AppConfig(
    app_name="seminars",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "seminars"),
    table_classes=[
        tables.Event,
        tables.EventQuestion,
        tables.Registration,
        tables.EventInvitation,
        tables.GuardianConsent,
        tables.LotteryDraw,
        tables.EventMessage,
        tables.IdempotentRequest,
    ],
    migration_dependencies=["events.core.piccolo_app"],
    commands=[],
)
