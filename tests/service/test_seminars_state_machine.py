"""A hypothesis state machine over register / cancel / leave waiting list / answer or let expire a waiting-list
offer / change capacity / draw lottery.

After every step: seat holders never exceed capacity and match `Event.taken`, the waitlisted match
`Event.waiting`; nobody holds two live registrations; whoever moved from the waiting list to a seat was
first in line; and every registration whose status changed got exactly one mail while nobody else got any.

Hypothesis drives synchronous rules, so the machine runs in a worker thread with its own event loop
(the database engines open their connections per transaction, so they work from any loop).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule, run_state_machine_as_test

from events import clock, places
from events.core.tables import OutboxMessage, Person
from events.db import raw
from events.errors import DomainError
from events.seminars import allocation, draws, registration, schedule
from events.seminars.tables import SEAT_HOLDING_STATES, Event, Registration
from tests.conftest import as_person, as_staff, make_person
from tests.service.machines import DatabaseMachine
from tests.service.seminars_helpers import soon

PEOPLE = 6
AREA_TABLES = ("idempotent_request", "lottery_draw", "guardian_consent", "registration", "event_question", "event")


class RegistrationMachine(DatabaseMachine):
    async def _reset(self) -> None:
        for table in AREA_TABLES:
            await raw(f"DELETE FROM {table}")
        await raw("DELETE FROM outbox_message")
        self.coordinator = (await Person.select(Person.id).where(Person.email == "sm-coord@example.jp").first())["id"]
        self.people = [r["id"] for r in await Person.select(Person.id).where(Person.email.like("sm-student-%"))]
        self.emails = {p["id"]: p["email"] for p in await Person.select(Person.id, Person.email)}
        self.event_id = None
        self.snapshot: dict[int, tuple[int, str, int | None]] = {}
        self.mail_count: dict[str, int] = {}

    @initialize(lottery=st.sampled_from([False, False, True]), capacity=st.integers(1, 2))
    def create_event(self, lottery: bool, capacity: int) -> None:
        async def go():
            start = soon(10)
            fields = {"title": "状態機械セミナー", "starts_at": start.isoformat(),
                      "ends_at": (start + timedelta(hours=2)).isoformat(), "capacity": capacity}
            if lottery:
                fields.update(allocation="lottery", registration_closes_at=soon(5).isoformat())
            self.event_id = await schedule.create_event(fields, actor=as_staff(self.coordinator))
            await schedule.publish_event(self.event_id, actor=as_staff(self.coordinator))
            await self._observe()

        self.run(go())

    async def _rows(self) -> list[dict]:
        return await Registration.select().where(Registration.event == self.event_id).order_by(Registration.id)

    async def _mails(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        # the registration's own mails; calendar reminders and invite updates belong to the invites area
        for row in await OutboxMessage.select(OutboxMessage.recipient).where(OutboxMessage.kind.like("seminar_%")):
            counts[row["recipient"]] = counts.get(row["recipient"], 0) + 1
        return counts

    async def _observe(self) -> None:
        self.snapshot = {r["id"]: (r["person"], r["status"], r["queue_position"]) for r in await self._rows()}
        self.mail_count = await self._mails()

    def _act(self, action) -> None:
        async def go():
            try:
                await action()
            except DomainError:
                pass  # a refusal changes nothing; the checks below prove it
            await self._check_step()

        self.run(go())

    async def _check_step(self) -> None:
        before, mails_before = self.snapshot, self.mail_count
        rows = await self._rows()
        after = {r["id"]: (r["person"], r["status"], r["queue_position"]) for r in rows}
        mails_after = await self._mails()
        changed_people: dict[int, int] = {}
        for reg_id, (person, status, _) in after.items():
            if reg_id not in before or before[reg_id][1] != status:
                changed_people[person] = changed_people.get(person, 0) + 1
        for person_id, email in self.emails.items():
            got = mails_after.get(email, 0) - mails_before.get(email, 0)
            assert got == changed_people.get(person_id, 0), (email, got, changed_people)
        # promotions come from the head of the waiting list, in order
        waiting_before = sorted((q, i) for i, (_, s, q) in before.items() if s == "waitlisted")
        promoted = {i for i, (_, s, _) in after.items() if i in before and before[i][1] == "waitlisted"
                    and s in SEAT_HOLDING_STATES}
        still_waiting = {i for i, (_, s, _) in after.items() if s == "waitlisted"}
        for _, reg_id in waiting_before:
            if reg_id in promoted:
                continue
            if reg_id in still_waiting:
                later = [r for _, r in waiting_before if r in promoted and after[r][2] > after[reg_id][2]]
                assert not later, f"{later} promoted ahead of {reg_id}"
        self.snapshot, self.mail_count = after, mails_after

    @invariant()
    def seats_never_oversold_and_no_one_twice(self) -> None:
        if self.event_id is None:
            return

        async def go():
            event = await Event.select(Event.capacity, Event.taken, Event.waiting).where(
                Event.id == self.event_id).first()
            rows = await self._rows()
            held = [r for r in rows if r["status"] in SEAT_HOLDING_STATES]
            assert len(held) == event["taken"] <= event["capacity"]
            assert event["waiting"] == sum(r["status"] == "waitlisted" for r in rows)
            live = [r["person"] for r in rows if r["status"] != "cancelled"]
            assert len(live) == len(set(live))
            queue = [r["queue_position"] for r in rows if r["status"] == "waitlisted"]
            assert len(queue) == len(set(queue))

        self.run(go())

    @rule(who=st.integers(0, PEOPLE - 1))
    def register(self, who: int) -> None:
        self._act(lambda: registration.register(self.event_id, self.people[who]))

    @rule()
    def register_next(self) -> None:
        """The next person without a live registration: builds waiting lists quickly."""
        live = {person for person, status, _ in self.snapshot.values() if status != "cancelled"}
        waiting = [p for p in self.people if p not in live]
        if waiting:
            self._act(lambda: registration.register(self.event_id, waiting[0]))

    @rule(who=st.integers(0, PEOPLE - 1), as_coordinator=st.booleans())
    def cancel(self, who: int, as_coordinator: bool) -> None:
        async def action():
            mine = await registration.my_registration(self.event_id, self.people[who])
            if mine and mine["status"] != "cancelled":
                actor = as_staff(self.coordinator) if as_coordinator else as_person(self.people[who])
                await registration.cancel_registration(mine["id"], actor=actor)

        self._act(action)

    @rule(as_coordinator=st.booleans())
    def cancel_a_seat(self, as_coordinator: bool) -> None:
        """Free a seat when people are waiting: the promotion path."""
        holders = [(reg_id, person) for reg_id, (person, status, _) in sorted(self.snapshot.items())
                   if status in SEAT_HOLDING_STATES]
        if holders:
            reg_id, person = holders[-1]
            actor = as_staff(self.coordinator) if as_coordinator else as_person(person)
            self._act(lambda: registration.cancel_registration(reg_id, actor=actor))

    @rule(who=st.integers(0, PEOPLE - 1))
    def leave_waitlist(self, who: int) -> None:
        async def action():
            mine = await registration.my_registration(self.event_id, self.people[who])
            if mine:
                await registration.leave_waitlist(mine["id"], actor=as_person(self.people[who]))

        self._act(action)

    @rule(who=st.integers(0, PEOPLE - 1), accept=st.booleans())
    def answer_offer(self, who: int, accept: bool) -> None:
        async def action():
            mine = await registration.my_registration(self.event_id, self.people[who])
            if mine and mine["status"] == "offered":
                await allocation.answer_offer(mine["id"], actor=as_person(self.people[who]), accept=accept)

        self._act(action)

    @rule()
    def offers_expire(self) -> None:
        async def action():
            with clock.travel(timedelta(hours=49)):
                await places.expire_offers()

        self._act(action)

    @rule(capacity=st.integers(1, 4))
    def change_capacity(self, capacity: int) -> None:
        self._act(lambda: schedule.update_event(self.event_id, {"capacity": capacity}, actor=as_staff(self.coordinator)))

    @rule()
    def draw_lottery(self) -> None:
        self._act(lambda: draws.draw_lottery(self.event_id, actor=as_staff(self.coordinator)))


async def test_registration_state_machine(db):
    await make_person("coordinator", "sm-coord@example.jp")
    for i in range(PEOPLE):
        await make_person("student", f"sm-student-{i}@example.jp")
    await asyncio.to_thread(
        run_state_machine_as_test, RegistrationMachine,
        settings=settings(max_examples=30, stateful_step_count=15, deadline=None,
                          suppress_health_check=list(HealthCheck),
                          # a failure is reported as found: shrinking a database-backed machine can take many minutes
                          phases=[Phase.explicit, Phase.reuse, Phase.generate]),
    )
