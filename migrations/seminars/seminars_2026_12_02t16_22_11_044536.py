from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-02T16:22:11:044536"
VERSION = "1.38.0"
DESCRIPTION = "guardian consent: what ended the subject before the guardian answered"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="seminars", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="GuardianConsent",
        tablename="guardian_consent",
        column_name="ended_by",
        db_column_name="ended_by",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 16,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
