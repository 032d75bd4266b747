"""Fair allocation: waiting-list offers (accept, decline, expiry chain, the fallback near the start, races),
priority groups, companions who win or wait together, one application per series, accommodation requests."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from events import clock, consent, places
from events.db import utcnow
from events.errors import Conflict, Invalid, NotFound
from events.seminars import allocation, draws, registration
from events.seminars.tables import Registration
from tests.conftest import as_person, as_staff, mail_text, outbox_mails
from tests.service.seminars_helpers import adult, coordinator, email_of, minor, new_event, soon


async def _status(registration_id: int) -> str:
    return (await Registration.select(Registration.status).where(Registration.id == registration_id).first())["status"]


async def _row(registration_id: int) -> dict:
    return await Registration.select().where(Registration.id == registration_id).first()


async def _full_event_with_queue(n_waiting: int, **fields) -> tuple[int, list[int], list[int]]:
    event_id = await new_event(capacity=1, **fields)
    people = [await adult(f"人{i}") for i in range(n_waiting + 1)]
    regs = [(await registration.register(event_id, p))["id"] for p in people]
    return event_id, people, regs


async def test_a_freed_seat_is_offered_then_taken(db):
    event_id, people, regs = await _full_event_with_queue(2)
    await registration.cancel_registration(regs[0], actor=as_person(people[0]))
    offered = await _row(regs[1])
    assert offered["status"] == "offered" and await _status(regs[2]) == "waitlisted"
    deadline = offered["offer_expires_at"]
    assert timedelta(hours=47) < deadline - utcnow() <= timedelta(hours=48)  # offer_hours 48 by default
    mail = (await outbox_mails("seminar_offer", await email_of(people[1])))[0]
    assert "までにお返事ください" in mail["Subject"] and "辞退する" in mail_text(mail)
    with pytest.raises(NotFound):  # only the person (or staff) answers; others learn nothing
        await allocation.answer_offer(regs[1], actor=as_person(people[2]), accept=True)
    taken = await allocation.answer_offer(regs[1], actor=as_person(people[1]), accept=True)
    assert taken["status"] == "confirmed" and await _status(regs[2]) == "waitlisted"
    assert len(await outbox_mails("seminar_offer_accepted", await email_of(people[1]))) == 1


async def test_a_declined_offer_passes_to_the_next_in_line(db):
    event_id, people, regs = await _full_event_with_queue(2)
    await registration.cancel_registration(regs[0], actor=as_person(people[0]))
    await allocation.answer_offer(regs[1], actor=as_person(people[1]), accept=False)
    assert (await _status(regs[1]), await _status(regs[2])) == ("cancelled", "offered")
    with pytest.raises(Conflict) as closed:
        await allocation.answer_offer(regs[1], actor=as_person(people[1]), accept=True)
    assert closed.value.code == "offer_closed"


async def test_unanswered_offers_expire_one_after_another(db):
    event_id, people, regs = await _full_event_with_queue(3)
    await registration.cancel_registration(regs[0], actor=as_person(people[0]))
    assert await places.expire_offers() == 0  # nothing due: the job is cheap and idempotent
    with clock.travel(timedelta(hours=48, minutes=1)):
        assert await places.expire_offers() == 1
        assert (await _status(regs[1]), await _status(regs[2])) == ("cancelled", "offered")
        assert len(await outbox_mails("seminar_offer_expired", await email_of(people[1]))) == 1
        clock.advance(timedelta(hours=48, minutes=1))
        assert await places.expire_offers() == 1
        assert (await _status(regs[2]), await _status(regs[3])) == ("cancelled", "offered")


async def test_near_the_start_a_freed_seat_is_confirmed_at_once(db):
    event_id, people, regs = await _full_event_with_queue(1, starts_at=soon(0, hours=20))  # within 24 h
    await registration.cancel_registration(regs[0], actor=as_staff(await coordinator()))
    assert await _status(regs[1]) == "confirmed"


async def test_an_offer_never_runs_past_the_fallback_point(db):
    start = soon(0, hours=30)
    event_id, people, regs = await _full_event_with_queue(1, starts_at=start)
    await registration.cancel_registration(regs[0], actor=as_staff(await coordinator()))
    assert (await _row(regs[1]))["offer_expires_at"] == start - timedelta(hours=24)


async def test_a_minor_taking_an_offer_waits_for_the_guardian(db):
    event_id = await new_event(capacity=1)
    first = await adult()
    young = await minor(guardian="offer-parent@example.jp")
    r1 = await registration.register(event_id, first)
    r2 = await registration.register(event_id, young)
    await registration.cancel_registration(r1["id"], actor=as_person(first))
    assert await _status(r2["id"]) == "offered"
    assert await outbox_mails("consent_request", "offer-parent@example.jp") == []  # not before the answer
    await allocation.answer_offer(r2["id"], actor=as_person(young), accept=True)
    assert await _status(r2["id"]) == "pending_consent"
    assert len(await outbox_mails("consent_request", "offer-parent@example.jp")) == 1
    assert await consent.state_of(consent.Subject("registration", r2["id"])) == "pending"


async def test_an_accept_racing_the_expiry_job_has_one_outcome(db):
    event_id, people, regs = await _full_event_with_queue(2)
    await registration.cancel_registration(regs[0], actor=as_person(people[0]))
    with clock.travel(timedelta(hours=48, minutes=1)):
        outcomes = await asyncio.gather(
            allocation.answer_offer(regs[1], actor=as_person(people[1]), accept=True), places.expire_offers(),
            return_exceptions=True)
    statuses = (await _status(regs[1]), await _status(regs[2]))
    assert statuses in (("confirmed", "waitlisted"), ("cancelled", "offered")), (statuses, outcomes)
    held = await Registration.count().where((Registration.event == event_id)
                                            & Registration.status.is_in(list(places.SEAT_HOLDING_STATES)))
    assert held == 1


# ---------------------------------------------------------------- priority groups


async def test_ward_residents_are_drawn_first_and_told_why(db):
    event_id = await new_event(capacity=2, allocation="lottery", registration_closes_at=soon(5).isoformat(),
                               priority_rules=["ward"])
    with pytest.raises(Invalid) as missing:
        await registration.register(event_id, await adult("未回答"))
    assert missing.value.code == "ward_tie_required"
    locals_ = [await adult(f"区内{i}") for i in range(2)]
    others = [await adult(f"区外{i}") for i in range(4)]
    regs = {p: await registration.register(event_id, p, ward_tie="lives") for p in locals_}
    regs |= {p: await registration.register(event_id, p, ward_tie="none") for p in others}
    assert regs[locals_[0]]["priority_reason"] == "ward"
    assert allocation.priority_label(regs[locals_[0]]["priority_reason"]) == "金沢区にお住まい・通学・通勤の方"
    assert regs[others[0]]["priority_reason"] == allocation.NO_PRIORITY
    assert allocation.priority_label(regs[others[0]]["priority_reason"], "en") == "No priority rule met"
    for reg in regs.values():  # the public record's group values read back to the recorded reasons
        assert allocation.reason_of_priority(["ward"], reg["priority"]) == reg["priority_reason"]
    await draws.draw_lottery(event_id)
    assert {await _status(regs[p]["id"]) for p in locals_} == {"confirmed"}
    assert {await _status(regs[p]["id"]) for p in others} == {"waitlisted"}
    mail = (await outbox_mails("seminar_applied", await email_of(locals_[0])))[0]
    assert regs[locals_[0]]["lottery_ticket"] in mail_text(mail) and "優先の区分" in mail_text(mail)


async def test_priority_rules_are_locked_once_people_applied(db):
    coord = await coordinator()
    event_id = await new_event(coord, capacity=2, allocation="lottery", registration_closes_at=soon(5).isoformat())
    await registration.register(event_id, await adult())
    from events.seminars import schedule

    with pytest.raises(Conflict) as locked:
        await schedule.update_event(event_id, {"priority_rules": ["first_time"]}, actor=as_staff(coord))
    assert locked.value.code == "allocation_locked"


# ---------------------------------------------------------------- companions


async def _emails(*ids: int) -> list[str]:
    return [await email_of(i) for i in ids]


async def test_companions_win_or_lose_together_in_a_lottery(db):
    event_id = await new_event(capacity=2, allocation="lottery", registration_closes_at=soon(5).isoformat(),
                               max_companions=2)
    lead, friend_a, friend_b = await adult("代表"), await adult("友人A"), await adult("友人B")
    group = await registration.register(event_id, lead, companions=await _emails(friend_a, friend_b))
    assert len(group["companions"]) == 2
    rows = await Registration.select().where(Registration.event == event_id)
    assert len({r["lottery_ticket"] for r in rows}) == 1 and len({r["group_key"] for r in rows}) == 1
    singles = [await adult(f"単独{i}") for i in range(2)]
    for person in singles:
        await registration.register(event_id, person)
    result = await draws.draw_lottery(event_id)
    assert group["lottery_ticket"] in result["waitlist"]  # three cannot fit into two seats
    statuses = {r["person"]: r["status"] for r in await Registration.select().where(Registration.event == event_id)}
    assert {statuses[p] for p in (lead, friend_a, friend_b)} == {"waitlisted"}
    assert {statuses[p] for p in singles} == {"confirmed"}
    record = await draws.public_record(event_id)
    assert {e["size"] for e in record["entries"]} == {1, 3}


async def test_companions_take_seats_together_or_wait_together(db):
    event_id = await new_event(capacity=4, max_companions=1)
    first = await adult("先着")
    await registration.register(event_id, first)
    pair = await registration.register(event_id, await adult("二人の代表"), companions=await _emails(await adult("連れ")))
    assert pair["status"] == "confirmed"  # two of the four seats
    late = await registration.register(event_id, await adult("後から代表"), companions=await _emails(await adult("連れ2")))
    assert late["status"] == "waitlisted"  # one seat left: the pair waits, whole
    single = await registration.register(event_id, await adult("一人"))
    assert single["status"] == "confirmed"  # a single still fits into the one seat left
    assert (await registration.get_registration(late["id"], actor=as_staff(None)))["status"] == "waitlisted"
    with pytest.raises(Invalid) as too_many:
        await registration.register(event_id, await adult(), companions=await _emails(await adult(), await adult()))
    assert too_many.value.code == "too_many_companions"
    with pytest.raises(Invalid) as unknown:
        await registration.register(event_id, await adult(), companions=["nobody@example.jp"])
    assert unknown.value.code == "companion_not_found"


async def test_a_waiting_group_moves_up_whole_and_one_that_does_not_fit_is_passed_over(db):
    event_id = await new_event(capacity=2, max_companions=1, offer_hours=0)
    holders = [await adult("席1"), await adult("席2")]
    held = [await registration.register(event_id, p) for p in holders]
    pair = await registration.register(event_id, await adult("組"), companions=await _emails(await adult("組の連れ")))
    single = await registration.register(event_id, await adult("後ろの一人"))
    assert (pair["status"], single["status"]) == ("waitlisted", "waitlisted")
    await registration.cancel_registration(held[0]["id"], actor=as_person(holders[0]))
    # one seat free: the pair (first in line) does not fit and waits; the single behind it moves up
    assert await _status(pair["id"]) == "waitlisted" and await _status(single["id"]) == "confirmed"
    await registration.cancel_registration(held[1]["id"], actor=as_person(holders[1]))
    await registration.cancel_registration(single["id"], actor=as_staff(await coordinator()))
    statuses = {r["status"] for r in await Registration.select().where(
        (Registration.event == event_id) & (Registration.group_key == (await _row(pair["id"]))["group_key"]))}
    assert statuses == {"confirmed"}


# ---------------------------------------------------------------- series and accommodation


async def test_one_application_per_person_across_a_series(db):
    first = await new_event(capacity=5, series="2026 ライフデザイン講座", one_per_series=True)
    second = await new_event(capacity=5, series="2026 ライフデザイン講座", one_per_series=True, starts_at=soon(20))
    person = await adult()
    await registration.register(first, person)
    with pytest.raises(Conflict) as refused:
        await registration.register(second, person)
    assert refused.value.code == "one_per_series"


async def test_accommodation_requests_reach_coordinators_only(db):
    event_id = await new_event(capacity=5)
    person = await adult()
    made = await registration.register(event_id, person, accommodation="車いすで参加します")
    assert "accommodation" not in await registration.get_registration(made["id"], actor=as_person(person))
    rows = await registration.list_registrations(event_id, actor=as_staff(await coordinator()))
    assert rows[0]["accommodation"] == "車いすで参加します"
