"""Both sides answering at the same moment: the visit ends accepted, with one Event and the right seat count.

A delay is injected between reading a match and writing it, so the answers surely overlap. The negative
control (PostgreSQL only: SQLite writers are serialised by BEGIN IMMEDIATE) removes the row locks and shows
the lost update they prevent.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from events.db import utcnow
from events.seminars.tables import Event, Registration
from events.visits import confirmations, proposals, requests, rounds
from events.visits.tables import VisitMatch
from tests.conftest import ON_POSTGRES, as_staff, make_person, outbox_mails
from tests.service.test_visits_services import day, family, open_round


async def offered_pair() -> tuple[int, list[tuple[int, int]]]:
    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    fam, _ = await family("金沢文庫")
    await rounds.offer_slot(fam, round_id, starts_at=day(6, 10), ends_at=day(6, 12), capacity=2)
    students = [await make_person("student") for _ in range(2)]
    for student in students:
        await requests.submit_request(student, round_id, requests.RequestInput(windows=[(day(6, 9), day(6, 13))]))
    await proposals.confirm_proposal(await proposals.run_matching(round_id, as_staff(coordinator)), as_staff(coordinator))
    matches = [(await confirmations.matches_of_student(s))[0]["id"] for s in students]
    return fam, list(zip(students, matches, strict=True))


@pytest.fixture
def slow_reads(monkeypatch):
    original = confirmations._match_context

    async def slow(match_id):
        row = await original(match_id)
        await asyncio.sleep(0.2)
        return row

    monkeypatch.setattr(confirmations, "_match_context", slow)


async def answer_all_at_once(fam: int, pairs: list[tuple[int, int]]) -> None:
    calls = []
    for student, match in pairs:
        calls.append(confirmations.respond(match, student, side="student", accept=True))
        calls.append(confirmations.respond(match, fam, side="family", accept=True))
    await asyncio.gather(*calls)


async def test_simultaneous_answers_confirm_one_visit(db, slow_reads):
    fam, pairs = await offered_pair()
    await answer_all_at_once(fam, pairs)
    assert await VisitMatch.count().where(VisitMatch.status == "accepted") == 2
    events = await Event.select(Event.taken)
    assert [e["taken"] for e in events] == [2]
    assert await Registration.count().where(Registration.status == "confirmed") == 2


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite serialises writers itself; the row locks are PostgreSQL's")
async def test_negative_control_without_row_locks(db, slow_reads, monkeypatch):
    async def no_lock(where, arg):
        return None

    monkeypatch.setattr(confirmations, "lock_slots", no_lock)
    fam, pairs = await offered_pair()
    await answer_all_at_once(fam, pairs)
    # each answer saw the other side still pending: the visits never become accepted
    assert await VisitMatch.count().where(VisitMatch.status == "accepted") < 2


async def test_rerun_after_expiry_of_consent(db):
    """The one consent expiry job (events.consent) expires a visit's pending consent too; the student is told and
    stays unmatched for no_consent. The request expires at the first day asked for at the latest."""
    from events import clock, consent
    from events.people import StudentInfo

    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    born = utcnow().date().replace(year=utcnow().year - 15)
    student = await make_person("student", student=StudentInfo("high_school", "高校", 1, born, "g@example.jp"))
    request_id = await requests.submit_request(student, round_id,
                                               requests.RequestInput(windows=[(day(6, 9), day(6, 13))]))
    assert await consent.expire_due() == 0  # nothing due: cheap and idempotent
    with clock.travel(day(6, 9) + timedelta(minutes=1)):
        assert await consent.expire_due() == 1
        assert await consent.expire_due() == 0
    assert await consent.state_of(consent.Subject("visit_request", request_id)) == "expired"
    assert len(await outbox_mails("visit_consent_outcome")) == 1
    view = await proposals.proposal_view(await proposals.run_matching(round_id, as_staff(coordinator)), actor=as_staff(None))
    assert view["unmatched"][0]["reason"] == "no_consent"
