from pathlib import Path

from piccolo.conf.apps import AppConfig

from events.exchanges import tables

APP_CONFIG = AppConfig(
    app_name="exchanges",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "exchanges"),
    table_classes=[tables.ExchangeSession, tables.TableSeat, tables.ExchangePresence],
    migration_dependencies=["events.core.piccolo_app", "events.seminars.piccolo_app"],
    commands=[],
)
