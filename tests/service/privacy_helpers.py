"""A small ward with rows in (nearly) every table that references a person, for the privacy and retention tests.

Built through the services wherever that is cheap (registrations, consent, visits, invites, surveys); the
exchange plan and a lottery record are inserted directly (their services need a solver run or a draw).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from piccolo.conf.apps import Finder

from events import auth, people, privacy
from events.core.tables import Person
from events.db import utcnow, write_transaction
from events.exchanges.tables import ExchangePresence, ExchangeSession, TableSeat
from events.feedback import answering, links, results, sending, surveys
from events.invites import feeds
from events.seminars import invitations, messages, registration, schedule
from events.seminars.tables import Event, LotteryDraw, Registration
from events.visits import confirmations, households, proposals, requests, rounds
from tests.conftest import as_person, as_staff, links_in, make_person, outbox_mails

TOKYO = ZoneInfo("Asia/Tokyo")
SECRET = "feedback-test-secret-" + "k" * 40


def day(offset: int, hour: int):
    base = (utcnow() + timedelta(days=offset)).astimezone(TOKYO)
    return base.replace(hour=hour, minute=0, second=0, microsecond=0)


def person_references(tables=None) -> dict[str, list[tuple[str, str | None]]]:
    """Walk the schema: tablename -> [(column, owner)] for every foreign key to `person` (owner None), and,
    transitively, for every cascading foreign key to a table a person owns (owner = that table). A row is a
    person's when it goes with them (ON DELETE CASCADE: a household, a visit request, a registration …), so a
    row that goes with such a row is theirs too, however many hops away (a guardian's link to a visit request,
    a household's address). A SET NULL reference only names who acted (created_by …): its rows are listed
    (the person's own reference), but what references them is not followed."""
    tables = list(tables or Finder().get_table_classes())
    found: dict[str, list[tuple[str, str | None]]] = {}
    owned: set[str] = set()
    for table in tables:
        for column in table._meta.foreign_key_columns:
            if column._foreign_key_meta.resolved_references._meta.tablename == "person":
                found.setdefault(table._meta.tablename, []).append((column._meta.db_column_name, None))
                if column._foreign_key_meta.on_delete.value == "CASCADE":
                    owned.add(table._meta.tablename)
    grown = True
    while grown:  # to a fixed point: owned tables reached through owned tables
        grown = False
        for table in tables:
            name = table._meta.tablename
            for column in table._meta.foreign_key_columns:
                target = column._foreign_key_meta.resolved_references._meta.tablename
                if target not in owned or target in (name, "person"):
                    continue
                edge = (column._meta.db_column_name, target)
                if edge not in found.setdefault(name, []):
                    found[name].append(edge)
                    grown = True
                if column._foreign_key_meta.on_delete.value == "CASCADE" and name not in owned:
                    owned.add(name)
                    grown = True
    return found


def owning_references(tables=None) -> dict[str, list[tuple[str, str | None]]]:
    """The cascading part of `person_references`: the foreign keys through which a row is a person's own."""
    tables = list(tables or Finder().get_table_classes())
    walked = person_references(tables)
    cascading = {(t._meta.tablename, c._meta.db_column_name) for t in tables for c in t._meta.foreign_key_columns
                 if c._foreign_key_meta.on_delete.value == "CASCADE"}
    return {table: [edge for edge in edges if (table, edge[0]) in cascading] for table, edges in walked.items()}


def uncovered(tables=None) -> list[str]:
    """Tables that reference a person but that no privacy part answers for."""
    return sorted(set(person_references(tables)) - set(privacy.covered_tables()))


async def minor_info(guardian: str = "parent@example.jp") -> people.StudentInfo:
    born = utcnow().date().replace(year=utcnow().year - 16)
    return people.StudentInfo("high_school", "金沢高校", 2, born, guardian, "保護者 太郎")


async def minor(guardian: str = "parent@example.jp", name: str = "佐藤 結衣") -> int:
    return await make_person("student", f"minor-{secrets.token_hex(3)}@school.example.jp", name=name,
                             student=await minor_info(guardian))


async def adult(name: str = "鈴木 葵") -> int:
    return await make_person("student", f"adult-{secrets.token_hex(3)}@univ.example.jp", name=name, kana="すずき あおい",
                             student=people.StudentInfo("university", "横浜市立大学", 2, date(2003, 5, 1)))


async def seminar(coordinator: int, *, capacity: int = 1, days: int = 10, questions=None, private: bool = False) -> int:
    actor = as_staff(coordinator)
    start = day(days, 14)
    values = {"title": "ライフデザインセミナー", "venue": "金沢公会堂", "starts_at": start.isoformat(),
              "ends_at": (start + timedelta(hours=2)).isoformat(), "capacity": capacity,
              "questions": questions or [], "visibility": "private" if private else "public"}
    event_id = await schedule.create_event(values, actor=actor)
    await schedule.publish_event(event_id, actor=actor)
    return event_id


QUESTIONS = [{"kind": "text", "label": "参加の理由"}, {"kind": "single", "label": "学年", "options": ["1年", "2年"]}]


async def answers_for(event_id: int) -> dict[str, str]:
    qs = await schedule.questions_of(event_id)
    text = next(q for q in qs if q["kind"] == "text")
    single = next(q for q in qs if q["kind"] == "single")
    return {str(text["id"]): "家族との時間を考えたいから", str(single["id"]): "2年"}


async def family(district: str, coordinator: int) -> tuple[int, int]:
    person = await make_person("host_family", name="山田 花子")
    household = await households.save_household(person, households.HouseholdProfile(
        display_name=f"山田家 {person}", district=district, children_ages=[2, 5], tags=["infant"],
        introduction="3歳と5歳の子がいます"))
    await households.save_address(person, households.Address("236-0053", f"横浜市金沢区{district}1-2-{person}",
                                                              "駅から徒歩5分", "045-000-0000"))
    await households.record_vetting(as_staff(coordinator), household, interviewed_on=utcnow().date(),
                                    valid_until=utcnow().date() + timedelta(days=365))
    return person, household


async def consent_token(guardian: str) -> str:
    link = [u for u in links_in((await outbox_mails("consent_request", guardian))[-1]) if "/consent/" in u][0]
    return link.rsplit("/", 1)[1]


async def confirmed_visit(coordinator: int, family_person: int, students: list[int], *, days: int = 12) -> dict:
    """A round, one slot at the family's home, requests of `students` (a minor's consent given), matching,
    and both sides' acceptances: a confirmed private home_visit Event."""
    from events import consent

    round_id = await rounds.create_round(as_staff(coordinator), name=f"家庭訪問 {secrets.token_hex(2)}",
                                         requests_open_at=utcnow() - timedelta(hours=1),
                                         requests_close_at=utcnow() + timedelta(days=3), seed=7)
    slot = await rounds.offer_slot(family_person, round_id, starts_at=day(days, 10), ends_at=day(days, 13),
                                   capacity=len(students))
    window = [(day(days, 9), day(days, 17))]
    request_ids = {}
    for student in students:
        request_ids[student] = await requests.submit_request(student, round_id, requests.RequestInput(windows=window))
        profile = await people.student_profile(student)
        if profile["guardian_email"]:
            await consent.decide(await consent_token(profile["guardian_email"]), "give", client="127.0.0.1")
    proposal = await proposals.run_matching(round_id, as_staff(coordinator))
    await proposals.confirm_proposal(proposal, as_staff(coordinator))
    matches = {}
    for student in students:
        match = (await confirmations.matches_of_student(student))[0]
        matches[student] = match["id"]
        await confirmations.respond(match["id"], family_person, side="family", accept=True)
    for student in students:
        await confirmations.respond(matches[student], student, side="student", accept=True)
    event = await Event.select().where(Event.series == f"visit-round-{round_id}").first()
    return {"round": round_id, "slot": slot, "event": event["id"] if event else None, "matches": matches,
            "requests": request_ids}


async def past_event_with_named_survey(coordinator: int, attendees: list[int]) -> dict:
    """An event that ended yesterday, everyone attended, a named survey sent and answered (through its links)."""
    links.configure_secret(SECRET)
    now = utcnow()
    ends = now - timedelta(hours=5)
    row = await Event.insert(Event(kind="seminar", title="ワークライフデザイン講座", starts_at=ends - timedelta(hours=2),
                                   ends_at=ends, capacity=50, taken=len(attendees), status="published",
                                   attendance_taken=True, created_at=now, updated_at=now)).returning(Event.id)
    event_id = row[0]["id"]

    for person in attendees:
        await Registration.insert(Registration(event=event_id, person=person, status="attended", created_at=now,
                                               updated_at=now))
    survey_id = await surveys.create_survey(audience="seminar_student", template="seminar_student", event_id=event_id,
                                            anonymous=False, actor=as_staff(coordinator))
    await sending.run_feedback_jobs()
    survey = await surveys.get_survey(survey_id)
    for index, mail in enumerate(await outbox_mails("feedback_request")):
        token = [u for u in links_in(mail) if "/feedback/" in u][0].rsplit("/feedback/", 1)[1]
        form = {}
        for q in survey["questions"]:
            form[f"q{q['id']}"] = [str(index % 5)] if q["kind"] == "scale" else (
                ["0"] if q["kind"] in ("single", "multi") else [f"感想{index}"])
        await answering.submit_answers(token, form)
    return {"event": event_id, "survey": survey_id}


@dataclass
class World:
    coordinator: int
    student: int  # an adult student with a bit of everything
    minor: int
    family: int
    staff: int
    waiting: int
    seminar: int
    ids: dict = field(default_factory=dict)


async def build_world() -> World:
    coordinator = await make_person("coordinator", "coord@ward.example.jp", name="金沢 花子")
    staff_actor = as_staff(coordinator)
    student = await adult()
    waiting = await adult("待機 一郎")
    young = await minor()
    seminar_id = await seminar(coordinator, capacity=1, questions=QUESTIONS)
    await registration.register(seminar_id, student, answers=await answers_for(seminar_id), idempotency_key="k-1")
    await registration.register(seminar_id, waiting, answers=await answers_for(seminar_id))
    second = await seminar(coordinator, capacity=5)
    await registration.register(second, young)  # pending the guardian's consent
    private = await seminar(coordinator, capacity=5, private=True)
    student_email = (await people.get_person(student))["email"]
    await invitations.invite(private, [(student_email, "鈴木 葵")], actor=staff_actor)
    await registration.register(private, student, actor=staff_actor)  # registered_by the coordinator
    await feeds.issue_token(student, "feed-secret-" + "x" * 40)
    await auth.create_session(student)
    await auth.create_api_token(student, "script")
    await auth.request_login(student_email, client="127.0.0.1")
    await privacy.request_correction(as_person(student), student,
                                     {"email": "new-address@univ.example.jp"}, "大学のアドレスに変わりました")
    await people.view_people(staff_actor)
    await messages.send_message(seminar_id, actor=staff_actor, audience="all", subject="持ち物のご案内",
                                body="筆記用具をお持ちください。")
    family_person, household = await family("能見台", coordinator)
    visit = await confirmed_visit(coordinator, family_person, [student])
    await requests.submit_request(young, visit["round"], requests.RequestInput(windows=[(day(12, 9), day(12, 17))]))
    from events import consent

    await consent.decide(await consent_token("parent@example.jp"), "give", client="127.0.0.1")  # a status-page link
    await proposals.set_rule(staff_actor, visit["round"], student_id=young, household_id=household, kind="forbid")
    await households.read_address(household, actor=staff_actor)
    staff = await make_person("facility_staff", name="保育 太郎")
    now = utcnow()
    exchange = await Event.insert(Event(kind="staff_exchange", title="保育交流会", starts_at=day(20, 14),
                                        ends_at=day(20, 16), capacity=20, status="published", created_by=coordinator,
                                        created_at=now, updated_at=now)).returning(Event.id)
    session = await ExchangeSession.insert(ExchangeSession(event=exchange[0]["id"], rounds=3, table_size=4,
                                                           created_at=now, updated_at=now)).returning(ExchangeSession.id)
    async with write_transaction():
        for round_no in (1, 2, 3):
            await TableSeat.insert(TableSeat(session=session[0]["id"], round=round_no, table_no=1, person=staff))
        await ExchangePresence.insert(ExchangePresence(session=session[0]["id"], person=staff, status="arrived",
                                                       updated_at=now))
        await LotteryDraw.insert(LotteryDraw(event=second, seed="s", algorithm="test", capacity=5, drawn_at=now,
                                             drawn_by=coordinator))
    past = await past_event_with_named_survey(coordinator, [student, waiting])
    corrected = await privacy.request_correction(as_person(waiting), waiting, {"email": "waiting-new@univ.example.jp"})
    await privacy.decide_request(staff_actor, corrected, action="apply")  # a former address, mail sent there
    await privacy.place_hold(staff_actor, staff, "事故報告 2026-03")
    return World(coordinator, student, young, family_person, staff, waiting, seminar_id,
                 ids={"second": second, "private": private, "visit": visit, "household": household,
                      "session": session[0]["id"], "past": past})


async def email_of(person_id: int) -> str:
    return (await Person.select(Person.email).where(Person.id == person_id).first())["email"]


async def survey_figures(survey_id: int, coordinator: int) -> list:
    found = await results.survey_results(survey_id, actor=as_staff(coordinator))
    return [(q["id"], q["summary"].counts, q["summary"].mean) for q in found["questions"]]


async def attendance(event_id: int) -> dict[str, int]:
    rows = await Registration.select(Registration.status).where(Registration.event == event_id)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts
