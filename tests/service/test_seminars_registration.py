"""Registration rules: seats, waiting list, promotion, duplicates, window, audience, answers, idempotency, mails."""

from __future__ import annotations

from datetime import timedelta

import pytest

from events import clock, signals
from events.errors import Conflict, Forbidden, Invalid, NotFound
from events.seminars import registration, schedule
from events.seminars.tables import Registration
from tests.conftest import as_person, as_staff, captured, mail_text, make_person, outbox_mails
from tests.service.seminars_helpers import adult, coordinator, email_of, new_event, soon


async def _status(registration_id: int) -> str:
    return (await Registration.select(Registration.status).where(Registration.id == registration_id).first())["status"]


async def test_seats_then_waitlist_in_order_and_mails(db):
    event_id = await new_event(capacity=2)
    people = [await adult(f"学生{i}") for i in range(4)]
    results = [await registration.register(event_id, p) for p in people]
    assert [r["status"] for r in results] == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert [r["waitlist_rank"] for r in results[2:]] == [1, 2]
    event = await schedule.get_event(event_id)
    assert (event["confirmed_count"], event["waitlist_count"], event["remaining"], event["taken"]) == (2, 2, 0, 2)
    first = await outbox_mails("seminar_confirmed", await email_of(people[0]))
    assert len(first) == 1 and "参加が確定しました" in mail_text(first[0])
    waiting = await outbox_mails("seminar_waitlisted", await email_of(people[3]))
    assert len(waiting) == 1 and "2番目" in mail_text(waiting[0])


async def test_cancel_promotes_first_in_line_in_same_transaction(db):
    """With offers switched off (offer_hours 0) the first in line is confirmed at once."""
    event_id = await new_event(capacity=1, offer_hours=0)
    a, b, c = await adult("A"), await adult("B"), await adult("C")
    ra = await registration.register(event_id, a)
    rb = await registration.register(event_id, b)
    rc = await registration.register(event_id, c)
    await registration.cancel_registration(ra["id"], actor=as_person(a))
    assert await _status(ra["id"]) == "cancelled"
    assert await _status(rb["id"]) == "confirmed"
    assert await _status(rc["id"]) == "waitlisted"
    promoted = await outbox_mails("seminar_promoted", await email_of(b))
    assert len(promoted) == 1 and "繰り上がりました" in promoted[0]["Subject"]
    assert len(await outbox_mails("seminar_cancelled", await email_of(a))) == 1
    assert (await schedule.get_event(event_id))["taken"] == 1
    # the remaining waiter is now first in line
    assert (await registration.get_registration(rc["id"], actor=as_staff(None)))["waitlist_rank"] == 1


async def test_leave_waitlist_keeps_order_of_others(db):
    event_id = await new_event(capacity=1, offer_hours=0)
    ids = [await adult(str(i)) for i in range(4)]
    regs = [await registration.register(event_id, p) for p in ids]
    await registration.leave_waitlist(regs[1]["id"], actor=as_person(ids[1]))
    with pytest.raises(Conflict) as refused:
        await registration.leave_waitlist(regs[0]["id"], actor=as_person(ids[0]))
    assert refused.value.code == "not_waitlisted"
    await registration.cancel_registration(regs[0]["id"], actor=as_person(ids[0]))
    assert await _status(regs[2]["id"]) == "confirmed"
    assert await _status(regs[3]["id"]) == "waitlisted"


async def test_duplicate_registration_refused_but_allowed_after_cancel(db):
    event_id = await new_event(capacity=3)
    person = await adult()
    first = await registration.register(event_id, person)
    with pytest.raises(Conflict) as refused:
        await registration.register(event_id, person)
    assert refused.value.code == "already_registered"
    await registration.cancel_registration(first["id"], actor=as_person(person))
    again = await registration.register(event_id, person)
    assert again["status"] == "confirmed" and again["id"] != first["id"]


async def test_idempotency_key_returns_first_result(db):
    event_id = await new_event(capacity=1)
    person = await adult()
    first = await registration.register(event_id, person, idempotency_key="k-1")
    again = await registration.register(event_id, person, idempotency_key="k-1")
    assert again["id"] == first["id"] and again["status"] == "confirmed" and again["replayed"] is True
    assert await Registration.count().where(Registration.event == event_id) == 1
    assert len(await outbox_mails("seminar_confirmed", await email_of(person))) == 1


async def test_window_and_state_refusals(db):
    coord = await coordinator()
    person = await adult()
    draft = await new_event(coord, publish=False)
    with pytest.raises(NotFound) as e1:  # a draft is seen by staff only (events.access)
        await registration.register(draft, person)
    assert e1.value.code == "event_not_found"
    later = await new_event(coord, registration_opens_at=soon(2).isoformat())
    with pytest.raises(Conflict) as e2:
        await registration.register(later, person)
    assert e2.value.code == "registration_not_open"
    closed = await new_event(coord, registration_closes_at=soon(1).isoformat())
    with clock.travel(timedelta(days=2)):  # the window closed yesterday
        with pytest.raises(Conflict) as e3:
            await registration.register(closed, person)
        assert e3.value.code == "registration_closed"
        # a coordinator may still register someone at the counter after the online window
        result = await registration.register_by_coordinator(closed, email="counter@example.jp", name="窓口 太郎",
                                                            actor=as_staff(coord), participant=registration.Participant())
    assert result["status"] == "confirmed" and result["person_created"] is True
    cancelled = await new_event(coord)
    await schedule.cancel_event(cancelled, actor=as_staff(coord))
    with pytest.raises(Conflict) as e4:
        await registration.register(cancelled, person)
    assert e4.value.code == "event_cancelled"


async def test_audience_rules(db):
    coord = await coordinator()
    from datetime import date

    from events import people

    uni = await adult()
    high = await make_person("student", student=people.StudentInfo("high_school", "金沢高校", 3, date(2007, 4, 2)))
    staff = await make_person("facility_staff")
    nobody = await make_person("host_family")
    cases = {"high_school": {high}, "university": {uni}, "students": {uni, high}, "facility_staff": {staff},
             "anyone": {uni, high, staff, nobody}}
    for audience, allowed in cases.items():
        event_id = await new_event(coord, audience=audience, capacity=10)
        for person in (uni, high, staff, nobody):
            if person in allowed:
                assert (await registration.register(event_id, person))["status"] == "confirmed"
            else:
                with pytest.raises(Forbidden) as refused:
                    await registration.register(event_id, person)
                assert refused.value.code == "audience_mismatch"


async def test_answers_validated_and_stored(db):
    event_id = await new_event(questions=[
        {"kind": "single", "label": "きっかけ", "options": ["学校", "友人"], "required": True},
        {"kind": "multi", "label": "関心", "options": ["仕事", "子育て", "お金"]},
        {"kind": "text", "label": "質問"},
        {"kind": "checkbox", "label": "撮影に同意", "required": True},
    ])
    q = [str(x["id"]) for x in (await schedule.get_event(event_id))["questions"]]
    person = await adult()
    bad = [({}, "answer_required"), ({q[0]: "テレビ", q[3]: True}, "invalid_answer"),
           ({q[0]: "学校", q[3]: False}, "answer_required"), ({q[0]: "学校", q[3]: True, "999": "x"}, "unknown_question"),
           ({q[0]: "学校", q[3]: True, q[1]: ["仕事", "宇宙"]}, "invalid_answer")]
    for answers, code in bad:
        with pytest.raises(Invalid) as refused:
            await registration.register(event_id, person, answers=answers)
        assert refused.value.code == code, answers
    good = {q[0]: "学校", q[1]: ["子育て", "仕事"], q[2]: " 両立のこつ ", q[3]: True}
    result = await registration.register(event_id, person, answers=good)
    stored = (await registration.get_registration(result["id"], actor=as_staff(None)))["answers"]
    assert stored == {q[0]: "学校", q[1]: ["仕事", "子育て"], q[2]: "両立のこつ", q[3]: True}


async def test_cancel_cutoff_for_attendee_not_for_coordinator(db):
    coord = await coordinator()
    event_id = await new_event(coord, starts_at=soon(0, hours=10), capacity=1)  # cutoff 24 h: already passed
    person, waiter = await adult(), await adult()
    mine = await registration.register(event_id, person)
    other = await registration.register(event_id, waiter)
    with pytest.raises(Conflict) as refused:
        await registration.cancel_registration(mine["id"], actor=as_person(person))
    assert refused.value.code == "cancel_cutoff_passed"
    with pytest.raises(NotFound):  # someone else's registration: no hint that it exists
        await registration.cancel_registration(mine["id"], actor=as_person(waiter))
    await registration.leave_waitlist(other["id"], actor=as_person(waiter))  # leaving the waiting list is always allowed
    await registration.cancel_registration(mine["id"], actor=as_staff(coord))
    assert await _status(mine["id"]) == "cancelled"
    assert (await schedule.get_event(event_id))["taken"] == 0


async def test_capacity_raise_promotes_and_lowering_below_taken_refused(db):
    coord = await coordinator()
    event_id = await new_event(coord, capacity=1, offer_hours=0)
    regs = [await registration.register(event_id, await adult(str(i))) for i in range(3)]
    with pytest.raises(Invalid) as refused:
        await schedule.update_event(event_id, {"capacity": 0}, actor=as_staff(coord))
    assert refused.value.code == "out_of_range"
    await schedule.update_event(event_id, {"capacity": 2}, actor=as_staff(coord))
    assert [await _status(r["id"]) for r in regs] == ["confirmed", "confirmed", "waitlisted"]
    await schedule.update_event(event_id, {"capacity": 3}, actor=as_staff(coord))
    with pytest.raises(Invalid) as below:
        await schedule.update_event(event_id, {"capacity": 2}, actor=as_staff(coord))
    assert below.value.code == "capacity_below_taken"


async def test_database_check_backs_the_counter(db):
    event_id = await new_event(capacity=1)
    await registration.register(event_id, await adult())
    from events.db import raw, write_transaction

    with pytest.raises(Exception) as raised:
        async with write_transaction():
            await raw("UPDATE event SET taken = taken + 1 WHERE id = {}", event_id)
    assert "event_seats_within_capacity" in str(raised.value)


async def test_attendance_and_checkin_search(db):
    coord = await coordinator()
    event_id = await new_event(coord, starts_at=soon(0, hours=2), capacity=5)
    yui = await make_person("student", name="佐藤 結衣", kana="サトウ ユイ")
    ren = await make_person("student", name="高橋 蓮", kana="たかはし れん")
    r1 = await registration.register(event_id, yui)
    await registration.register(event_id, ren)
    found = await registration.checkin_search(event_id, "さとう", actor=as_staff(None))
    assert [r["id"] for r in found] == [r1["id"]]
    assert len(await registration.checkin_search(event_id, "ﾀｶﾊｼ", actor=as_staff(None))) == 1  # half-width katakana too
    assert len(await registration.checkin_search(event_id, "", actor=as_staff(None))) == 2
    assert (await registration.mark_attendance(r1["id"], "attended", actor=as_staff(coord)))["status"] == "attended"
    assert (await registration.mark_attendance(r1["id"], "no_show", actor=as_staff(coord)))["status"] == "no_show"
    with pytest.raises(Invalid):
        await registration.mark_attendance(r1["id"], "maybe", actor=as_staff(coord))
    event = await schedule.get_event(event_id)
    assert event["attendance_taken"] and event["confirmed_count"] == 2


async def test_attendance_refused_long_before_event(db):
    coord = await coordinator()
    event_id = await new_event(coord)
    reg = await registration.register(event_id, await adult())
    with pytest.raises(Conflict) as refused:
        await registration.mark_attendance(reg["id"], "attended", actor=as_staff(coord))
    assert refused.value.code == "too_early_for_attendance"


async def test_event_cancel_cancels_all_and_mails_once(db):
    coord = await coordinator()
    event_id = await new_event(coord, capacity=1)
    a, b = await adult(), await adult()
    await registration.register(event_id, a)
    await registration.register(event_id, b)
    with captured(signals.PLACE_CHANGED) as seen:
        assert await schedule.cancel_event(event_id, actor=as_staff(coord), reason="台風の接近のため") == 2
        assert await schedule.cancel_event(event_id, actor=as_staff(coord)) == 0
    for person in (a, b):
        mails = await outbox_mails("seminar_event_cancelled", await email_of(person))
        assert len(mails) == 1 and "台風の接近のため" in mail_text(mails[0])
    assert sorted((c.old, c.new, c.reason) for c in seen) == [("confirmed", "cancelled", "event_cancelled"),
                                                              ("waitlisted", "cancelled", "event_cancelled")]
    assert (await schedule.get_event(event_id))["taken"] == 0


async def test_change_notifies_registered_and_raises_sequence(db):
    coord = await coordinator()
    event_id = await new_event(coord, capacity=1)
    a, b = await adult(), await adult()
    await registration.register(event_id, a)
    await registration.register(event_id, b)
    new_start = soon(11)
    with captured(signals.EVENT_CHANGED) as changes:
        await schedule.update_event(event_id, {"starts_at": new_start.isoformat(),
                                               "ends_at": (new_start + timedelta(hours=2)).isoformat()},
                                    actor=as_staff(coord))
    event = await schedule.get_event(event_id)
    assert event["calendar_sequence"] == 1
    assert changes[-1].event_id == event_id and changes[-1].fields == {"starts_at", "ends_at"}
    # one mail per person for one change: the confirmed place gets the updated invite, the waiting list a notice
    assert len(await outbox_mails("invite_update", await email_of(a))) == 1
    assert len(await outbox_mails("seminar_changed", await email_of(a))) == 0
    assert len(await outbox_mails("seminar_changed", await email_of(b))) == 1
    assert len(await outbox_mails("invite_update", await email_of(b))) == 0
    await schedule.update_event(event_id, {"description": "持ち物: 筆記用具"}, actor=as_staff(coord))  # not a notifying field
    assert (await schedule.get_event(event_id))["calendar_sequence"] == 1
    assert len(await outbox_mails("seminar_changed", await email_of(b))) == 1


async def test_confirmed_signal_and_invite_provider(db):
    from events.mime import CalendarPart

    event_id = await new_event(capacity=1)
    person = await adult()
    calls = []

    async def provider(*, event_id, person_id, method, event=None, person=None):
        calls.append((event_id, person_id, method))
        assert (event or {}).get("id") == event_id and (person or {}).get("id") == person_id  # the rows come along
        return None

    previous = signals.INVITE_PART._impl
    signals.INVITE_PART.provide(provider)
    try:
        with captured(signals.PLACE_CHANGED) as confirmed:
            reg = await registration.register(event_id, person)
    finally:
        signals.INVITE_PART.provide(previous)
    assert [(c.registration_id, c.event_id, c.person_id, c.old, c.new, c.reason) for c in confirmed] == [
        (reg["id"], event_id, person, None, "confirmed", "registered")]
    assert calls == [(event_id, person, "REQUEST")]
    assert CalendarPart  # the provider's return type, passed through to queue_mail
