"""Disclosure is complete: a person's export holds every table that references them, found by walking the
schema's foreign keys (Piccolo's Finder), so a table added tomorrow without a privacy part fails here."""

from __future__ import annotations

import pytest
from piccolo.columns import ForeignKey, Varchar
from piccolo.conf.apps import Finder
from piccolo.table import Table

from events import privacy
from events.core.tables import Person
from events.db import raw
from tests.conftest import as_staff
from tests.service.privacy_helpers import build_world, person_references, uncovered


class ForgottenTable(Table, tablename="forgotten_notes"):
    """A made-up table that references a person and has no privacy part (the negative control)."""

    person = ForeignKey(Person)
    note = Varchar()


def test_every_table_that_references_a_person_has_a_privacy_part():
    from lifedesign import areas  # noqa: F401 - as in production: every area installed (each registers its part)

    references = person_references()
    # the walk finds what we know is there: direct references, and the household's own tables one hop away
    assert {"registration", "guardian_consent", "visit_household", "feedback_answer", "table_seat"} <= set(references)
    assert ("household", "visit_household") in references["visit_household_address"]
    assert ("registered_by", None) in references["registration"]
    assert uncovered() == []
    # negative control: the same check on a schema with one more table reports it
    assert uncovered([*Finder().get_table_classes(), ForgottenTable]) == ["forgotten_notes"]


@pytest.fixture
async def world(db):
    return await build_world()


async def _ids_referencing(table: str, column: str, owner: str | None, person_id: int) -> set:
    if owner is None:
        rows = await raw(f"SELECT id FROM {table} WHERE {column} = {{}}", person_id)
    else:
        rows = await raw(f"SELECT id FROM {table} WHERE {column} IN (SELECT id FROM {owner} WHERE person = {{}})",
                         person_id)
    return {row["id"] for row in rows}


async def test_each_persons_export_holds_every_row_that_references_them(world):
    references = person_references()
    nonempty: set[str] = set()
    for person_id in (world.student, world.minor, world.family, world.coordinator, world.staff, world.waiting):
        export = await privacy.export_of(person_id)
        assert set(export["tables"]) == set(privacy.covered_tables())  # every section, even when empty
        for table, columns in references.items():
            exported = {row["id"] for row in export["tables"][table]}
            for column, owner in columns:
                expected = await _ids_referencing(table, column, owner, person_id)
                assert expected <= exported, (person_id, table, column, expected - exported)
                if expected:
                    nonempty.add(table)
    # the world exercises (nearly) every referencing table, so the check above is not vacuous
    assert nonempty == set(references), sorted(set(references) - nonempty)


async def test_the_export_shows_what_a_person_would_look_for(world):
    data = await privacy.export_of(world.student)
    tables = data["tables"]
    assert tables["person"][0]["email"].startswith("adult-") and tables["person"][0]["roles"] == ["student"]
    assert tables["student_profile"][0]["school_name"] == "横浜市立大学"
    own = [r for r in tables["registration"] if "as" not in r]
    assert {r["status"] for r in own} >= {"confirmed", "attended"}
    assert any("家族との時間を考えたいから" in (r["answers"] or {}).values() for r in own)
    assert tables["visit_request"] and tables["visit_match"][0]["status"] == "accepted"
    assert tables["feedback_answer"] and tables["feedback_request"]
    assert tables["outbox_message"] and all("message" not in r for r in tables["outbox_message"])
    assert all("token_hash" not in r and "nonce" not in r for r in tables["calendar_feed_token"])
    assert any(note.startswith("無記名") for note in data["notes"])
    # the staff views of their data are disclosed: the coordinator read the people list and the visit address
    family = await privacy.export_of(world.family)
    assert any(e["action"] == "viewed_address" and e["as"] == "subject" for e in family["tables"]["audit_entry"])
    assert family["tables"]["visit_household_address"][0]["address"].startswith("横浜市金沢区能見台")


async def test_a_staff_view_of_someones_data_is_audited(world):
    from events.core.tables import AuditEntry

    await privacy.view_person_data(as_staff(world.coordinator), world.student)
    entry = await AuditEntry.select().where(AuditEntry.action == "staff_viewed_person_data").first()
    assert entry["subject_id"] == str(world.student) and entry["actor"] == world.coordinator
    with pytest.raises(privacy.Forbidden):
        await privacy.view_person_data(privacy.Actor(world.student, frozenset({"student"})), world.family)
