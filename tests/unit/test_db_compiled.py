"""events.db.compiled gives exactly Piccolo's SQL and arguments (it only parses each template once).

Every table's select, insert, update, delete and count, joins and sub-queries, raw templates with nested
QueryStrings, escaped braces and trailing text: both engines' placeholders. The control shows a naive
compiler that skips nesting is caught by the same comparison.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from piccolo.conf.apps import Finder
from piccolo.querystring import QueryString

from events.db import compiled
from events.seminars.tables import Event, Registration
from lifedesign import areas

ENGINES = ("postgres", "sqlite")


def _queries() -> list[QueryString]:
    assert areas.INSTALLED  # every area's tables are registered
    found: list[QueryString] = []
    for table in Finder().get_table_classes():
        first = table._meta.columns[1] if len(table._meta.columns) > 1 else table._meta.primary_key
        for query in (
            table.select().where(table._meta.primary_key == 7).order_by(first).limit(3),
            table.insert(table()).returning(*table.all_columns()),
            table.update({first: first.default() if callable(first.default) else first.default}).where(
                table._meta.primary_key.is_in([1, 2, 3])),
            table.delete().where(table._meta.primary_key != 0),
            table.count().where(table._meta.primary_key > 1),
            table.exists().where(table._meta.primary_key == 2),
        ):
            found.extend(query.querystrings)
    joined = Registration.select(
        Registration.id, Registration.event.title.as_alias("title"), Registration.person.email.as_alias("email"),
    ).where((Registration.event == 4) & Registration.status.is_in(["confirmed", "waitlisted"])
            & (Registration.created_at < datetime(2026, 1, 1, tzinfo=UTC))).order_by(Registration.event.starts_at)
    found.extend(joined.querystrings)
    found.extend(Event.insert(Event(title="{x} {{}}", capacity=3)).on_conflict(
        action="DO NOTHING").returning(Event.id).querystrings)
    inner = QueryString("(SELECT COALESCE(MAX(queue_position), 0) + {} FROM registration WHERE event = {})", 1, 9)
    found += [
        QueryString("UPDATE event SET taken = taken + {} WHERE id = {} AND taken < capacity RETURNING taken", 1, 5),
        QueryString("{}, {} AS rank", QueryString("SELECT {} AS a, {{literal}}", "x"), inner),
        QueryString("SELECT 1 -- trailing {} {}", "only one"),
        QueryString("no placeholders at all"),
        QueryString("{}{}{}", QueryString(""), QueryString("{}", None), b"\x00"),
    ]
    return found


@pytest.mark.parametrize("engine_type", ENGINES)
def test_the_same_sql_and_arguments_as_piccolo(engine_type):
    queries = _queries()
    assert len(queries) > 60
    for query in queries:
        assert compiled(query, engine_type) == query.compile_string(engine_type=engine_type), query.template
        assert compiled(query, engine_type) == compiled(query, engine_type)  # the cache changes nothing


def test_control_a_compiler_that_skips_nesting_is_caught():
    def flat(query: QueryString, engine_type: str) -> tuple[str, list]:
        values = [a for a in query.args if not isinstance(a, QueryString)]
        return query.template.replace("{}", "?"), values

    assert any(flat(q, "sqlite") != q.compile_string(engine_type="sqlite") for q in _queries())
