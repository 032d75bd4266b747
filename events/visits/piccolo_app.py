from pathlib import Path

from piccolo.conf.apps import AppConfig

from events.visits import tables

APP_CONFIG = AppConfig(
    app_name="visits",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "visits"),
    table_classes=[
        tables.Household,
        tables.HouseholdAddress,
        tables.VisitRound,
        tables.VisitSlot,
        tables.VisitRequest,
        tables.VisitPairRule,
        tables.VisitProposal,
        tables.VisitMatch,
        tables.VisitGuardianLink,
    ],
    migration_dependencies=["events.core.piccolo_app", "events.seminars.piccolo_app"],
    commands=[],
)
