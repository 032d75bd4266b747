from pathlib import Path

from piccolo.conf.apps import AppConfig

from events.core import tables

APP_CONFIG = AppConfig(
    app_name="core",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "core"),
    table_classes=[
        tables.Person,
        tables.PersonRole,
        tables.StudentProfile,
        tables.Facility,
        tables.StaffMembership,
        tables.LoginToken,
        tables.WebSession,
        tables.ApiToken,
        tables.RateLimitHit,
        tables.AuditEntry,
        tables.OutboxMessage,
        tables.PrivacyRequest,
        tables.LegalHold,
        tables.GuardianAccess,
        tables.PurgeRun,
        tables.FormerEmail,
    ],
    migration_dependencies=[],
    commands=[],
)
