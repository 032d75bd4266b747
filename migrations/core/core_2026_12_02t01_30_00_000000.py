from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-02T01:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "phone numbers of people and guardians (optional, normalised); a facility's reading for 五十音順"


def _varchar(length: int) -> dict:
    return {
        "length": length,
        "default": "",
        "null": False,
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
    }


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    for class_name, tablename, column_name, length in (
        ("Person", "person", "phone", 32),
        ("StudentProfile", "student_profile", "guardian_phone", 32),
        ("Facility", "facility", "kana", 200),
    ):
        manager.add_column(
            table_class_name=class_name,
            tablename=tablename,
            column_name=column_name,
            db_column_name=column_name,
            column_class_name="Varchar",
            column_class=Varchar,
            params=_varchar(length),
            schema=None,
        )

    return manager
