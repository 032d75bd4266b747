"""Disclosure is complete: a person's export holds every table that references them, found by walking the
schema's foreign keys (Piccolo's Finder), so a table added tomorrow without a privacy part fails here."""

from __future__ import annotations

import pytest
from piccolo.columns import ForeignKey, Varchar
from piccolo.columns.base import OnDelete
from piccolo.conf.apps import Finder
from piccolo.table import Table

from events import privacy
from events.core.tables import Person
from events.db import raw
from events.visits.tables import VisitRequest, VisitRound
from tests.conftest import as_staff
from tests.service.privacy_helpers import build_world, owning_references, person_references, uncovered


class ForgottenTable(Table, tablename="forgotten_notes"):
    """A made-up table that references a person and has no privacy part (the negative control)."""

    person = ForeignKey(Person)
    note = Varchar()


class ForgottenReminder(Table, tablename="forgotten_reminders"):
    """Two hops away: it goes with a visit request, which goes with its student (the second negative control)."""

    request = ForeignKey(VisitRequest, on_delete=OnDelete.cascade)
    note = Varchar()


class ActorTrail(Table, tablename="actor_trail"):
    """References a round, which only names who created it (SET NULL): not the person's, not reported."""

    round = ForeignKey(VisitRound, on_delete=OnDelete.cascade)


def test_every_table_that_references_a_person_has_a_privacy_part():
    from lifedesign import areas  # noqa: F401 - as in production: every area installed (each registers its part)

    references = person_references()
    # the walk finds what we know is there: direct references, and the household's own tables one hop away
    assert {"registration", "guardian_consent", "visit_household", "feedback_answer", "table_seat"} <= set(references)
    assert ("household", "visit_household") in references["visit_household_address"]
    assert ("registered_by", None) in references["registration"]
    assert ("request", "visit_request") in references["visit_guardian_link"]  # two hops: link → request → student
    assert "visit_round" not in references["visit_slot"] and "event_question" not in references
    assert uncovered() == []
    # negative controls: the same check on a schema with one more table reports it, one hop or two away
    assert uncovered([*Finder().get_table_classes(), ForgottenTable]) == ["forgotten_notes"]
    assert uncovered([*Finder().get_table_classes(), ForgottenReminder, ActorTrail]) == ["forgotten_reminders"]


@pytest.fixture
async def world(db):
    return await build_world()


async def _ids_where(table: str, column: str, values: set) -> set:
    if not values:
        return set()
    marks = ", ".join("{}" for _ in values)
    return {row["id"] for row in await raw(f"SELECT id FROM {table} WHERE {column} IN ({marks})", *sorted(values))}


class Owned:
    """The ids of each table's rows that are the person's own (through cascading references, any hops)."""

    def __init__(self, person_id: int):
        self.person_id, self.edges, self.memo = person_id, owning_references(), {}

    async def ids(self, table: str) -> set:
        if table not in self.memo:
            self.memo[table] = set()  # no cycles in the schema; this only guards against one
            found: set = set()
            for column, owner in self.edges.get(table, []):
                found |= await _ids_where(table, column, {self.person_id} if owner is None else await self.ids(owner))
            self.memo[table] = found
        return self.memo[table]

    async def referencing(self, table: str, column: str, owner: str | None) -> set:
        return await _ids_where(table, column, {self.person_id} if owner is None else await self.ids(owner))


async def test_each_persons_export_holds_every_row_that_references_them(world):
    references = person_references()
    nonempty: set[str] = set()
    for person_id in (world.student, world.minor, world.family, world.coordinator, world.staff, world.waiting):
        export = await privacy.export_of(person_id)
        assert set(export["tables"]) == set(privacy.covered_tables())  # every section, even when empty
        owned = Owned(person_id)
        for table, columns in references.items():
            exported = {row["id"] for row in export["tables"][table]}
            for column, owner in columns:
                expected = await owned.referencing(table, column, owner)
                assert expected <= exported, (person_id, table, column, expected - exported)
                if expected:
                    nonempty.add(table)
    # the world exercises (nearly) every referencing table, so the check above is not vacuous
    assert nonempty == set(references), sorted(set(references) - nonempty)


async def test_the_export_shows_what_a_person_would_look_for(world):
    from events.core.tables import StudentProfile
    from events.db import write_transaction

    async with write_transaction():  # the optional phone numbers of the profile
        await Person.update({Person.phone: "090-1234-5678"}).where(Person.id == world.student)
        await StudentProfile.update({StudentProfile.guardian_phone: "080-1111-2222"}).where(
            StudentProfile.person == world.minor)
    data = await privacy.export_of(world.student)
    tables = data["tables"]
    assert tables["person"][0]["phone"] == "090-1234-5678"
    assert (await privacy.export_of(world.minor))["tables"]["student_profile"][0]["guardian_phone"] == "080-1111-2222"
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
