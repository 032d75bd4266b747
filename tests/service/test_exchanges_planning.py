"""Exchange sessions against a real database: planning, live re-planning, prior meetings, mail, summaries."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from events import people
from events.access import Actor
from events.core.tables import AuditEntry, OutboxMessage, Person
from events.db import write_transaction
from events.errors import Conflict, Forbidden, Invalid, NotFound
from events.exchanges import sessions
from events.exchanges.tables import ExchangeSession, TableSeat
from events.seminars.tables import Event, Registration
from tests.conftest import mail_text, make_person, outbox_mails

# The coordinator the setup calls act as (the audit tests below use a real coordinator's account).
ACTOR = Actor(None, frozenset({"coordinator"}), "test")

# ---------------------------------------------------------------- helpers (used by the HTTP tests too)


async def exchange_event(title: str = "保育士交流会", *, days: int = 14, capacity: int = 100) -> int:
    """A published staff_exchange event (inserted directly; registration services are another area's)."""
    starts = datetime(2026, 6, 1, 5, 0, tzinfo=UTC) + timedelta(days=days)
    now = datetime.now(UTC)
    rows = await Event.insert(Event(
        kind="staff_exchange", title=title, title_en="Nursery staff exchange", venue="金沢区役所 会議室",
        starts_at=starts, ends_at=starts + timedelta(hours=2), capacity=capacity, taken=0,
        audience="facility_staff", status="published", created_at=now, updated_at=now,
    )).returning(Event.id)
    return rows[0]["id"]


async def register(event_id: int, person_id: int, status: str = "confirmed") -> None:
    now = datetime.now(UTC)
    await Registration.insert(Registration(event=event_id, person=person_id, status=status, created_at=now,
                                           updated_at=now, confirmed_at=now))
    await Event.update({Event.taken: Event.taken + 1}).where(Event.id == event_id)


async def staff_of(facility_sizes: list[int], prefix: str = "f") -> dict[int, list[int]]:
    """Facilities with that many staff each: {facility_id: [person ids]}."""
    result: dict[int, list[int]] = {}
    async with write_transaction():  # one commit: the disk's fsync dominates these tests otherwise
        for f, size in enumerate(facility_sizes):
            facility_id = await people.create_facility(f"{prefix}保育園{f}", "nursery", "六浦")
            result[facility_id] = [
                await people.create_person(f"{prefix}{f}-{i}@example.jp", f"職員 {prefix}{f}-{i}",
                                           roles=("facility_staff",), facility_id=facility_id)
                for i in range(size)
            ]
    return result


async def session_with(facility_sizes: list[int], *, rounds: int = 3, table_size: int = 4, prefix: str = "f",
                       days: int = 14, themes=("保育の楽しさ", "保護者対応", "若手の育成")) -> tuple[int, dict[int, list[int]]]:
    event_id = await exchange_event(days=days)
    staff = await staff_of(facility_sizes, prefix)
    async with write_transaction():
        for ids in staff.values():
            for person_id in ids:
                await register(event_id, person_id)
    session_id = await sessions.create_session(event_id, actor=ACTOR, rounds=rounds, table_size=table_size,
                                               themes=list(themes))
    return session_id, staff


async def db_rounds(session_id: int) -> list[list[list[int]]]:
    rows = await TableSeat.select().where(TableSeat.session == session_id)
    rounds: dict[int, dict[int, list[int]]] = {}
    for r in rows:
        rounds.setdefault(r["round"], {}).setdefault(r["table_no"], []).append(r["person"])
    return [[sorted(rounds[r][t]) for t in sorted(rounds[r])] for r in sorted(rounds)]


def assert_facility_rule(rounds, staff: dict[int, list[int]]) -> None:
    facility = {p: f for f, ids in staff.items() for p in ids}
    for round_ in rounds:
        for table in round_:
            assert len({facility[p] for p in table}) == len(table), f"colleagues share table {table}"
        sizes = [len(t) for t in round_]
        assert max(sizes) - min(sizes) <= 1


def repeats(rounds) -> int:
    met = Counter(pair for round_ in rounds for table in round_ for pair in itertools.combinations(sorted(table), 2))
    return sum(n - 1 for n in met.values() if n > 1)


# ---------------------------------------------------------------- tests


async def test_assign_tables_stores_a_plan_that_keeps_the_rules(db):
    session_id, staff = await session_with([3, 3, 3, 2, 2, 2, 1, 1, 1], rounds=4, table_size=4)
    summary = await sessions.assign_tables(session_id, seed=7, actor=ACTOR)
    rounds = await db_rounds(session_id)
    assert len(rounds) == 4
    everyone = sorted(p for ids in staff.values() for p in ids)
    for round_ in rounds:
        assert sorted(p for t in round_ for p in t) == everyone
    assert_facility_rule(rounds, staff)
    assert repeats(rounds) == summary.repeat_pairs == 0
    assert summary.same_facility_pairs == 0
    assert summary.bound == (18 - 3) // (4 - 1)  # person bound: largest facility 3, tables of 4 or 5 → 5
    assert summary.clash_free_rounds == 4 and summary.target == 4
    stored = await ExchangeSession.select().where(ExchangeSession.id == session_id).first()
    assert stored["seed"] == 7 and stored["plan_version"] == 1 and stored["plan_bound"] == summary.bound


async def test_same_seed_gives_the_same_seats(db):
    session_id, _ = await session_with([2, 2, 2, 2, 2, 2], rounds=3, table_size=3)
    await sessions.assign_tables(session_id, seed=11, actor=ACTOR)
    first = await db_rounds(session_id)
    await sessions.assign_tables(session_id, seed=11, actor=ACTOR)
    assert await db_rounds(session_id) == first
    stored = await ExchangeSession.select().where(ExchangeSession.id == session_id).first()
    assert stored["plan_version"] == 2


async def test_replan_keeps_held_rounds_and_drops_the_absent(db):
    session_id, staff = await session_with([3, 3, 2, 2, 2, 2, 2, 1, 1], rounds=4, table_size=4)
    await sessions.assign_tables(session_id, seed=3, actor=ACTOR)
    before = await db_rounds(session_id)
    await sessions.set_current_round(session_id, 2, actor=ACTOR)
    leaver = staff[next(iter(staff))][0]
    latecomer = staff[list(staff)[1]][0]
    summary = await sessions.replan(session_id, actor=ACTOR, absent=[leaver], late=[latecomer], seed=99)
    after = await db_rounds(session_id)
    assert after[:2] == before[:2], "rounds already held must not change"
    assert summary.fixed_rounds == 2
    for round_ in after[2:]:
        seated = [p for t in round_ for p in t]
        assert leaver not in seated
        assert latecomer in seated
    remaining = {f: [p for p in ids if p != leaver] for f, ids in staff.items()}
    assert_facility_rule(after[2:], remaining)
    assert_facility_rule(after[:2], staff)
    assert repeats(after) == summary.repeat_pairs == 0


async def test_held_rounds_cannot_be_undone_and_a_finished_session_is_not_replanned(db):
    session_id, _ = await session_with([2, 2, 2, 2], rounds=2, table_size=2)
    with pytest.raises(Conflict):
        await sessions.set_current_round(session_id, 1, actor=ACTOR)  # nothing planned yet
    await sessions.assign_tables(session_id, seed=1, actor=ACTOR)
    await sessions.set_current_round(session_id, 2, actor=ACTOR)
    with pytest.raises(Conflict):
        await sessions.set_current_round(session_id, 1, actor=ACTOR)
    with pytest.raises(Conflict):
        await sessions.assign_tables(session_id, actor=ACTOR)


async def test_a_facility_larger_than_the_tables_is_refused_in_japanese(db):
    session_id, _ = await session_with([5, 1, 1, 1], rounds=2, table_size=4)
    with pytest.raises(Invalid) as caught:
        await sessions.assign_tables(session_id, actor=ACTOR)
    assert caught.value.code == "facility_larger_than_tables"
    assert "5人" in caught.value.message and "2卓" in caught.value.message
    assert await TableSeat.count() == 0


async def test_later_session_prefers_pairs_who_never_met(db):
    first_id, staff = await session_with([1] * 16, rounds=1, table_size=4, days=1)
    await sessions.assign_tables(first_id, seed=5, actor=ACTOR)
    event_id = await exchange_event("第2回 交流会", days=30)
    async with write_transaction():
        for ids in staff.values():
            for person_id in ids:
                await register(event_id, person_id)
    second_id = await sessions.create_session(event_id, rounds=1, table_size=4, actor=ACTOR)
    prior = await sessions.prior_meetings(second_id, [p for ids in staff.values() for p in ids])
    assert len(prior) == 4 * 6  # four tables of four in the first session
    summary = await sessions.assign_tables(second_id, seed=5, actor=ACTOR)
    assert summary.prior_pairs == 0  # 16 people, tables of 4: a round of strangers exists and is found
    seated = await db_rounds(second_id)
    assert not [pair for t in seated[0] for pair in itertools.combinations(t, 2) if pair in prior]
    # The first session has no earlier one: nothing is "prior" for it.
    assert await sessions.prior_meetings(first_id, [p for ids in staff.values() for p in ids]) == set()


async def test_table_summary_and_mail(db):
    session_id, staff = await session_with([2, 2, 2, 2], rounds=3, table_size=2)
    person_id = staff[next(iter(staff))][0]
    session = await sessions.get_session(session_id)
    assert await sessions.table_summary_for(session["event"], person_id, "ja") is None  # not planned yet
    await sessions.assign_tables(session_id, seed=2, actor=ACTOR)
    text = await sessions.table_summary_for(session["event"], person_id, "ja")
    assert text is not None
    seats = await sessions.seats_of(session_id, person_id)
    assert f"第1ラウンド「保育の楽しさ」: テーブル {seats[0]['table']}" in text
    assert f"/exchanges/{session_id}/my-table" in text
    english = await sessions.table_summary_for(session["event"], person_id, "en")
    assert english.startswith("Your tables") and f"Round 2 (保護者対応): table {seats[1]['table']}" in english
    outsider = await people.create_person("outsider@example.jp", "外部 太郎")
    assert await sessions.table_summary_for(session["event"], outsider, "ja") is None

    assert await sessions.send_table_mail(session_id, actor=ACTOR) == 8
    assert await sessions.send_table_mail(session_id, actor=ACTOR) == 0  # same seats: not sent twice
    email = (await Person.select(Person.email).where(Person.id == person_id).first())["email"]
    mails = await outbox_mails("exchange_tables", email)
    assert len(mails) == 1
    body = mail_text(mails[0])
    assert f"テーブル {seats[2]['table']}" in body and "若手の育成" in body
    assert f"/exchanges/{session_id}/my-table" in body


async def test_the_first_table_mail_is_not_called_an_update_even_after_a_re_plan(db):
    session_id, staff = await session_with([2, 2, 2, 2], rounds=2, table_size=2)
    await sessions.assign_tables(session_id, seed=1, actor=ACTOR)
    await sessions.assign_tables(session_id, seed=2, actor=ACTOR)  # re-planned before anyone was mailed
    assert (await sessions.get_session(session_id))["plan_version"] > 1
    await sessions.send_table_mail(session_id, actor=ACTOR)
    person_id = staff[next(iter(staff))][0]
    email = (await Person.select(Person.email).where(Person.id == person_id).first())["email"]
    [first] = await outbox_mails("exchange_tables", email)
    assert "（更新）" not in first["Subject"]
    thread = f"exchange_tables:{session_id}:{person_id}"  # a later, different seating finds this one
    assert await OutboxMessage.count().where(OutboxMessage.group_key == thread) == 1


async def test_met_matrix_counts_people_and_facilities(db):
    session_id, staff = await session_with([2, 2, 2, 2], rounds=3, table_size=2)
    await sessions.assign_tables(session_id, seed=4, actor=ACTOR)
    coordinator = await coordinator_actor()
    before = await audit_ids()
    matrix = await sessions.met_view(actor=coordinator)
    assert sum(matrix["people_pairs"].values()) == 3 * 4  # 4 tables of 2 per round
    assert sum(matrix["facility_pairs"].values()) == 12
    assert all(a != b for a, b in matrix["facility_pairs"])  # colleagues never sat together
    assert len(matrix["people"]) == 8 and len(matrix["facilities"]) == 4
    [entry] = await audit_since(before)
    assert (entry["action"], entry["actor"], entry["client"]) == ("staff_viewed_met", coordinator.person_id,
                                                                  "test-client")
    one_facility = next(iter(staff))
    only = await sessions.met_view(actor=coordinator, facility_id=one_facility)
    assert sorted(p["id"] for p in only["people"]) == sorted(staff[one_facility])


async def test_session_settings_are_checked(db):
    event_id = await exchange_event()
    with pytest.raises(Invalid):
        await sessions.create_session(event_id, rounds=0, table_size=4, actor=ACTOR)
    with pytest.raises(Invalid):
        await sessions.create_session(event_id, rounds=3, table_size=4, tables=5, actor=ACTOR)
    session_id = await sessions.create_session(event_id, rounds=3, tables=4, themes=["a"], actor=ACTOR)
    assert (await sessions.get_session(session_id))["themes"] == ["a", "", ""]
    with pytest.raises(Conflict):
        await sessions.create_session(event_id, rounds=3, table_size=4, actor=ACTOR)


async def test_concurrent_plans_leave_one_consistent_seating(db):
    import asyncio

    session_id, staff = await session_with([2, 2, 2, 2, 2, 2], rounds=3, table_size=3)
    results = await asyncio.gather(sessions.assign_tables(session_id, seed=1, actor=ACTOR),
                                   sessions.assign_tables(session_id, seed=2, actor=ACTOR))
    assert sorted(r.plan_version for r in results) == [1, 2]
    rounds = await db_rounds(session_id)
    assert len(rounds) == 3 and all(sorted(p for t in r for p in t) == sorted(p for ids in staff.values() for p in ids)
                                    for r in rounds)
    winner = max(results, key=lambda r: r.plan_version)
    assert (await sessions.get_session(session_id))["seed"] == winner.seed


async def test_database_refuses_a_person_twice_in_one_round(db):
    session_id, staff = await session_with([1, 1], rounds=1, table_size=2)
    person_id = staff[next(iter(staff))][0]
    await TableSeat.insert(TableSeat(session=session_id, round=1, table_no=1, person=person_id))
    with pytest.raises(Exception, match="(?i)unique"):
        await TableSeat.insert(TableSeat(session=session_id, round=1, table_no=2, person=person_id))
    # control: another round is fine
    await TableSeat.insert(TableSeat(session=session_id, round=2, table_no=2, person=person_id))


async def test_a_change_while_the_solver_runs_is_not_lost(db, monkeypatch):
    """Someone leaves while the tables are being computed: the stale plan is not stored."""
    import asyncio
    import threading

    session_id, staff = await session_with([2, 2, 2, 2, 2, 2], rounds=2, table_size=3)
    leaver = staff[next(iter(staff))][0]
    solving, release = threading.Event(), threading.Event()
    real = sessions.plan_rotation
    calls = []

    def slow_plan(*args, **kwargs):
        calls.append(len(args[0]))
        if len(calls) == 1:
            solving.set()
            release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(sessions, "plan_rotation", slow_plan)

    async def leave_meanwhile() -> None:
        await asyncio.to_thread(solving.wait, 10)
        await sessions.set_presence(session_id, leaver, "absent", actor=ACTOR)
        release.set()

    summary, _ = await asyncio.gather(sessions.assign_tables(session_id, seed=3, actor=ACTOR), leave_meanwhile())
    assert calls == [12, 11] and summary.people == 11
    assert all(leaver not in [p for t in r for p in t] for r in await db_rounds(session_id))

    # Negative control: with a single attempt the same race is refused, not stored stale.
    calls.clear()
    solving.clear()
    release.clear()

    async def come_back_meanwhile() -> None:
        await asyncio.to_thread(solving.wait, 10)
        await sessions.set_presence(session_id, leaver, "arrived", actor=ACTOR)
        release.set()

    with pytest.raises(Conflict):
        await asyncio.gather(sessions.assign_tables(session_id, seed=3, attempts=1, actor=ACTOR),
                             come_back_meanwhile())
    assert all(leaver not in [p for t in r for p in t] for r in await db_rounds(session_id))


async def test_english_speakers_get_the_table_mail_in_english(db):
    session_id, staff = await session_with([1, 1, 1, 1], rounds=2, table_size=2,
                                           themes=("保育の楽しさ", "保護者対応"))
    await sessions.update_session(session_id, actor=ACTOR, rounds=2, table_size=2, themes=["保育の楽しさ", "保護者対応"],
                                  themes_en=["The joy of childcare", ""])
    person_id = staff[next(iter(staff))][0]
    await people.set_locale(person_id, "en")
    await sessions.assign_tables(session_id, seed=1, actor=ACTOR)
    await sessions.send_table_mail(session_id, actor=ACTOR)
    email = (await Person.select(Person.email).where(Person.id == person_id).first())["email"]
    [mail] = await outbox_mails("exchange_tables", email)
    body = mail_text(mail)
    seats = await sessions.seats_of(session_id, person_id)
    assert mail["Subject"].startswith("Your tables at Nursery staff exchange")
    assert f"Round 1 (The joy of childcare): table {seats[0]['table']}" in body
    assert f"Round 2 (保護者対応): table {seats[1]['table']}" in body  # no English theme: the Japanese one


# ---------------------------------------------------------------- audit: in the service's own transaction


async def coordinator_actor(email: str = "audit-coord@kanazawa.example.jp") -> Actor:
    person_id = await make_person("coordinator", email)
    return Actor.of(await people.get_person(person_id), "test-client")


async def audit_ids() -> int:
    last = await AuditEntry.select(AuditEntry.id).order_by(AuditEntry.id, ascending=False).first()
    return last["id"] if last else 0


async def audit_since(last_id: int) -> list[dict]:
    return await AuditEntry.select().where(AuditEntry.id > last_id).order_by(AuditEntry.id).output(load_json=True)


async def test_a_plan_writes_its_audit_row_with_the_seats(db):
    session_id, staff = await session_with([2, 2, 2, 2], rounds=2, table_size=2)
    actor = await coordinator_actor()
    before = await audit_ids()
    summary = await sessions.assign_tables(session_id, seed=5, actor=actor)
    [entry] = await audit_since(before)
    assert (entry["action"], entry["actor"], entry["client"]) == ("exchange_planned", actor.person_id, "test-client")
    assert (entry["subject_type"], entry["subject_id"]) == ("exchange_session", str(session_id))
    assert entry["detail"]["plan_version"] == summary.plan_version == 1 and entry["detail"]["seed"] == 5

    # The plan's transaction fails after the seats and the audit row were written: neither remains.
    seats = await db_rounds(session_id)
    with pytest.raises(RuntimeError, match="after the plan"):
        async with write_transaction():
            await sessions.assign_tables(session_id, seed=6, actor=actor)
            assert [e["action"] for e in await audit_since(before)] == ["exchange_planned"] * 2
            raise RuntimeError("after the plan")
    assert len(await audit_since(before)) == 1
    assert await db_rounds(session_id) == seats
    assert (await sessions.get_session(session_id))["plan_version"] == 1


async def test_no_plan_is_stored_when_its_audit_row_cannot_be_written(db, monkeypatch):
    session_id, _ = await session_with([2, 2, 2, 2], rounds=2, table_size=2)

    async def broken(*args, **kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(sessions.audit, "record", broken)
    with pytest.raises(RuntimeError, match="audit log unavailable"):
        await sessions.assign_tables(session_id, seed=1, actor=ACTOR)
    assert await TableSeat.count() == 0
    assert (await sessions.get_session(session_id))["plan_version"] == 0


async def test_replan_and_table_mail_are_audited_with_their_actor(db):
    session_id, staff = await session_with([2, 2, 2, 2], rounds=3, table_size=2)
    actor = await coordinator_actor()
    await sessions.assign_tables(session_id, seed=1, actor=actor)
    await sessions.set_current_round(session_id, 1, actor=actor)
    leaver = staff[next(iter(staff))][0]
    before = await audit_ids()
    await sessions.replan(session_id, actor=actor, absent=[leaver], seed=2)
    [entry] = await audit_since(before)
    assert (entry["action"], entry["actor"]) == ("exchange_replanned", actor.person_id)
    assert entry["detail"]["absent"] == [leaver] and entry["detail"]["fixed_rounds"] == 1
    before = await audit_ids()
    queued = await sessions.send_table_mail(session_id, actor=actor)
    [entry] = await audit_since(before)
    assert (entry["action"], entry["actor"], entry["detail"]["queued"]) == ("exchange_tables_mailed",
                                                                            actor.person_id, queued)


async def test_staff_views_are_audited_once_and_refused_to_others(db):
    session_id, staff = await session_with([2, 2, 2], rounds=2, table_size=3)
    await sessions.assign_tables(session_id, seed=1, actor=ACTOR)
    actor = await coordinator_actor()
    before = await audit_ids()
    view = await sessions.session_view(session_id, actor=actor)
    assert len(view["participants"]) == 6 and len(view["seating"]) == 2 and view["gaps"]["unseated"] == []
    chart = await sessions.seating_view(session_id, actor=actor, purpose="chart", round_no=2)
    assert [r["round"] for r in chart["seating"]] == [2]
    await sessions.seating_view(session_id, actor=actor, purpose="cards")
    await sessions.seating_view(session_id, actor=actor)
    entries = await audit_since(before)
    assert [e["action"] for e in entries] == ["staff_viewed_exchange", "staff_viewed_exchange_chart",
                                              "staff_viewed_exchange_cards", "staff_viewed_exchange_seats"]
    assert {(e["actor"], e["subject_id"]) for e in entries} == {(actor.person_id, str(session_id))}
    # A staff member of a facility is not a coordinator: refused, and nothing is read or written.
    own = staff[next(iter(staff))][0]
    outsider = Actor.of(await people.get_person(own), "test-client")
    before = await audit_ids()
    for call in (sessions.session_view(session_id, actor=outsider), sessions.seating_view(session_id, actor=outsider),
                 sessions.met_view(actor=outsider), sessions.assign_tables(session_id, actor=outsider),
                 sessions.send_table_mail(session_id, actor=outsider)):
        with pytest.raises(Forbidden):
            await call
    assert await audit_since(before) == []
    # Unknown session: no view, so no audit entry either.
    with pytest.raises(NotFound):
        await sessions.session_view(session_id + 999, actor=actor)
    assert await audit_since(before) == []
