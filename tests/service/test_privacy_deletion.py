"""Deletion and correction through the services: the cascades (seat freed, waiting list promoted, CANCEL sent,
visits held or re-planned), anonymised rows, login impossible, statistics unchanged, legal holds decided by a
coordinator (audited), a guardian acting for a minor, an admin acting on paper."""

from __future__ import annotations

from datetime import timedelta

import pytest

from events import auth, clock, consent, places, privacy, signals
from events.core.tables import AuditEntry, OutboxMessage, Person, StudentProfile
from events.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from events.invites.tables import CalendarInvite
from events.people import StudentInfo
from events.seminars import registration
from events.seminars.tables import SEAT_HOLDING_STATES, Event, Registration
from events.visits import proposals
from events.visits.tables import Household, HouseholdAddress, VisitMatch, VisitSlot
from tests.conftest import as_person, as_staff, captured, links_in, make_person, outbox_mails
from tests.service.privacy_helpers import (
    QUESTIONS,
    adult,
    answers_for,
    attendance,
    confirmed_visit,
    email_of,
    family,
    minor,
    past_event_with_named_survey,
    seminar,
    survey_figures,
)


async def status_of(registration_id: int) -> str:
    return (await Registration.select(Registration.status).where(Registration.id == registration_id).first())["status"]


async def mails_to(address: str) -> list[dict]:
    return await OutboxMessage.select().where(OutboxMessage.recipient == address).order_by(OutboxMessage.id)


async def cancelled_invite(event_id: int, person_id: int) -> bool:
    """The person's calendar invite for the event was cancelled and its CANCEL mailed (the invites area's record)."""
    state = await CalendarInvite.select().where((CalendarInvite.event == event_id)
                                                & (CalendarInvite.person == person_id)).first()
    return bool(state) and state["state"] == "cancelled" and state["mailed_method"] == "CANCEL"


async def test_deleting_an_account_ends_its_places_through_the_ledger_and_anonymises_the_rest(db):
    coordinator = await make_person("coordinator")
    student, waiting, other = await adult(), await adult("待機 一郎"), await adult("他の 学生")
    event_id = await seminar(coordinator, capacity=1, questions=QUESTIONS)
    mine = (await registration.register(event_id, student, answers=await answers_for(event_id)))["id"]
    queued = (await registration.register(event_id, waiting, answers=await answers_for(event_id)))["id"]
    past = await past_event_with_named_survey(coordinator, [student, waiting, other])
    figures, counts = await survey_figures(past["survey"], coordinator), await attendance(past["event"])
    old_email = await email_of(student)
    session = await auth.create_session(student)
    token = await auth.create_api_token(student)

    with captured(signals.PLACE_CHANGED) as changes:
        outcome = await privacy.request_deletion(as_person(student), student, via="self")
    assert outcome["status"] == "done" and outcome["cancelled"] == [mine]
    # the seat went to the waiting list through the ledger: one change with the reason, then the promotion
    assert [(c.registration_id, c.new, c.reason) for c in changes][0] == (mine, "cancelled", "account_deleted")
    assert await status_of(mine) == "cancelled"
    assert await status_of(queued) in SEAT_HOLDING_STATES
    assert (await Event.select(Event.taken).where(Event.id == event_id).first())["taken"] == 1
    # the calendar gets its CANCEL (sent by the invites area through the signal) and the person a confirmation;
    # both still leave (the old address stays on those rows until they are sent), tagged for the purge
    sent = await mails_to(old_email)
    assert await cancelled_invite(event_id, student)
    assert {row["kind"] for row in sent} >= {"privacy_deleted", "invite_cancel"}
    assert {row["group_key"] for row in sent} == {f"erased:{student}"}
    assert all(row["status"] == "queued" for row in sent)
    # everything else sent to them before is scrubbed
    assert await OutboxMessage.count().where((OutboxMessage.recipient == "") & (OutboxMessage.kind == "seminar_confirmed")) >= 1

    person = await Person.select().where(Person.id == student).first()
    assert person["name"] == privacy.ERASED_NAME and person["email"] == privacy.erased_email(student)
    assert person["kana"] == "" and not person["active"] and person["erased_at"] is not None
    profile = await StudentProfile.select().where(StudentProfile.person == student).first()
    assert profile["school_name"] == "" and profile["birth_date"] == privacy.ERASED_BIRTH_DATE
    assert profile["school_level"] == "university"  # a coarse category stays for statistics
    answers = (await Registration.select(Registration.answers).where(Registration.id == mine).output(
        load_json=True).first())["answers"]
    assert list(answers.values()) == ["2年"]  # the free-text answer went, the choice stayed

    # login is impossible: no mail for the old address, the old session and API token are dead
    before = len(await outbox_mails("login"))
    await auth.request_login(old_email, client="127.0.0.1")
    assert len(await outbox_mails("login")) == before
    assert await auth.resolve_session(session.session_id, idle=timedelta(hours=2), absolute=timedelta(days=1)) is None
    assert await auth.resolve_api_token(token) is None

    # statistics are what they were: the survey's results and the past event's attendance
    assert await survey_figures(past["survey"], coordinator) == figures
    assert await attendance(past["event"]) == counts
    actions = {r["action"] for r in await AuditEntry.select(AuditEntry.action).where(
        AuditEntry.subject_id == str(student))}
    assert {"privacy_deletion_requested", "privacy_erased"} <= actions
    with pytest.raises(Conflict):  # once is enough
        await privacy.request_deletion(as_person(student), student, via="self")


async def test_a_minor_left_alone_at_a_home_is_held_by_the_safeguarding_invariant(db):
    coordinator = await make_person("coordinator")
    family_person, _household = await family("能見台", coordinator)
    young, companion = await minor(), await adult()
    visit = await confirmed_visit(coordinator, family_person, [companion, young])
    event = await Event.select().where(Event.id == visit["event"]).first()
    assert event["taken"] == 2
    family_email = await email_of(family_person)

    with captured(signals.PLACE_CHANGED) as changes:
        await privacy.request_deletion(as_person(companion), companion, via="self")
    assert [(c.person_id, c.reason) for c in changes] == [(companion, "account_deleted"), (young, "safeguarding_hold")]
    matches = {m["student"]: m["status"] for m in await VisitMatch.select(VisitMatch.student, VisitMatch.status)}
    assert matches == {companion: "declined", young: "on_hold"}
    assert [a["student"] for a in await proposals.needing_attention(visit["round"])] == [young]
    holds = await outbox_mails("safeguarding_hold")
    assert sorted(m["To"].addresses[0].addr_spec for m in holds) == sorted([await email_of(coordinator),
                                                                            "parent@example.jp"])
    event = await Event.select().where(Event.id == visit["event"]).first()
    assert event["taken"] == 0 and event["status"] == "cancelled"
    assert await cancelled_invite(visit["event"], family_person)  # the host family's calendar too
    assert "invite_cancel" in {row["kind"] for row in await mails_to(family_email)}


async def test_a_household_that_leaves_puts_its_visits_on_hold_for_a_re_match(db):
    coordinator = await make_person("coordinator")
    family_person, household = await family("六浦", coordinator)
    first, second = await adult("一 学生"), await adult("二 学生")
    visit = await confirmed_visit(coordinator, family_person, [first, second])

    with captured(signals.PLACE_CHANGED) as changes:
        outcome = await privacy.request_deletion(as_person(family_person, "host_family"), family_person, via="self")
    assert outcome["status"] == "done"
    assert sorted((c.person_id, c.reason) for c in changes) == sorted([(first, "safeguarding_hold"),
                                                                       (second, "safeguarding_hold")])
    assert {a["student"] for a in await proposals.needing_attention(visit["round"])} == {first, second}
    assert (await VisitSlot.select(VisitSlot.status).where(VisitSlot.id == visit["slot"]).first())["status"] == "withdrawn"
    assert await HouseholdAddress.count().where(HouseholdAddress.household == household) == 0
    home = await Household.select().where(Household.id == household).first()
    assert home["vetted_until"] is None and home["introduction"] == "" and home["display_name"] == "退会した家庭"
    assert home["district"] == "六浦"  # a coarse statistic stays
    assert len(await outbox_mails("visit_cancelled", await email_of(first))) == 1


async def test_a_legal_hold_sends_the_request_to_a_coordinator_whose_decision_is_audited(db):
    coordinator = await make_person("coordinator", "coord@ward.example.jp")
    student = await adult()
    await privacy.place_hold(as_staff(coordinator), student, "事故報告 2026-03")
    outcome = await privacy.request_deletion(as_person(student), student, via="self")
    assert outcome["status"] == "review"
    assert (await Person.select(Person.erased_at).where(Person.id == student).first())["erased_at"] is None
    assert len(await outbox_mails("privacy_review_needed", "coord@ward.example.jp")) == 1
    assert len(await outbox_mails("privacy_request_received", await email_of(student))) == 1
    # asking again changes nothing
    assert (await privacy.request_deletion(as_person(student), student))["request_id"] == outcome["request_id"]

    with pytest.raises(Invalid):  # keeping the data needs a reason the person is told
        await privacy.decide_request(as_staff(coordinator), outcome["request_id"], action="keep")
    await privacy.decide_request(as_staff(coordinator), outcome["request_id"], action="keep", note="調査中のため")
    assert len(await outbox_mails("privacy_request_decided", await email_of(student))) == 1
    with pytest.raises(Conflict):
        await privacy.decide_request(as_staff(coordinator), outcome["request_id"], action="approve")

    again = await privacy.request_deletion(as_person(student), student)
    assert again["status"] == "review" and again["request_id"] != outcome["request_id"]
    with pytest.raises(Forbidden):
        await privacy.decide_request(as_person(student), again["request_id"], action="approve")
    await privacy.decide_request(as_staff(coordinator), again["request_id"], action="approve", note="調査終了")
    assert (await Person.select(Person.erased_at).where(Person.id == student).first())["erased_at"] is not None
    assert await privacy.active_holds(student) == []
    decisions = await AuditEntry.select(AuditEntry.action, AuditEntry.actor).where(
        AuditEntry.action.is_in(["privacy_deletion_kept", "privacy_deletion_approved", "legal_hold_placed"]))
    assert {(d["action"], d["actor"]) for d in decisions} == {
        ("legal_hold_placed", coordinator), ("privacy_deletion_kept", coordinator),
        ("privacy_deletion_approved", coordinator)}


async def test_a_minors_own_request_waits_for_the_guardian_who_acts_by_a_token_link(db):
    coordinator = await make_person("coordinator")
    young = await minor("mother@example.jp")
    event_id = await seminar(coordinator, capacity=3)
    pending = (await registration.register(event_id, young))["id"]
    assert await status_of(pending) == "pending_consent"

    outcome = await privacy.request_deletion(as_person(young), young, via="self")
    assert outcome["status"] == "awaiting_guardian"
    assert await status_of(pending) == "pending_consent"
    mail = (await outbox_mails("privacy_guardian_confirm", "mother@example.jp"))[0]
    token = [u for u in links_in(mail) if "/privacy/guardian/" in u][0].rsplit("/", 1)[1]
    view = await privacy.guardian_view(token, client="127.0.0.1")
    assert [c["id"] for c in view["children"]] == [young] and view["children"][0]["pending_deletion"]
    assert await AuditEntry.count().where((AuditEntry.action == "guardian_viewed_data")
                                          & (AuditEntry.subject_id == str(young))) == 1
    stranger = await minor("someone-else@example.jp")
    with pytest.raises(NotFound):  # the link acts only for the guardian's own minors
        await privacy.guardian_request_deletion(token, stranger, client="127.0.0.1")

    with clock.travel(timedelta(hours=privacy.GUARDIAN_LINK_HOURS + 1)), pytest.raises(DomainError) as expired:
        await privacy.guardian_view(token, client="127.0.0.1")
    assert expired.value.status == 410
    done = await privacy.guardian_request_deletion(token, young, client="127.0.0.1")
    assert done["status"] == "done" and done["request_id"] == outcome["request_id"]
    assert await status_of(pending) == "cancelled"
    assert await consent.state_of(consent.Subject(places.REGISTRATION_SUBJECT, pending)) == "withdrawn"
    record = (await consent.records(consent.Subject(places.REGISTRATION_SUBJECT, pending)))[0]
    assert record["guardian_email"] == "" and record["purpose"] == ""
    assert len(await outbox_mails("privacy_deleted", "mother@example.jp")) == 1
    with pytest.raises(NotFound):  # the guardian was known only through this student: the link went too
        await privacy.guardian_view(token, client="127.0.0.1")


async def test_a_guardian_link_goes_only_to_a_registered_guardian_and_says_the_same_to_anyone(db):
    await minor("father@example.jp")
    await privacy.request_guardian_link("Father@Example.jp", client="127.0.0.1")
    await privacy.request_guardian_link("nobody@example.jp", client="127.0.0.1")
    assert len(await outbox_mails("privacy_guardian_link", "father@example.jp")) == 1
    assert len(await outbox_mails("privacy_guardian_link")) == 1
    with pytest.raises(Invalid):
        await privacy.request_guardian_link("not an address", client="127.0.0.1")


async def test_an_admin_acts_on_a_paper_request_and_staff_cannot_delete_themselves(db):
    admin = await make_person("admin")
    coordinator = await make_person("coordinator")
    student = await adult()
    with pytest.raises(Forbidden):
        await privacy.request_deletion(as_staff(coordinator), student, via="paper")
    outcome = await privacy.request_deletion(as_staff(admin, "admin"), student, via="paper", note="書面 2026-001")
    assert outcome["status"] == "done"
    entry = await AuditEntry.select().where(AuditEntry.action == "privacy_deletion_requested").output(
        load_json=True).first()
    assert entry["actor"] == admin and entry["detail"]["via"] == "paper"
    with pytest.raises(Conflict):
        await privacy.request_deletion(as_staff(coordinator), coordinator, via="self")


async def test_correcting_a_guardian_reruns_the_pending_consent_and_a_minor_cannot_become_an_adult_alone(db):
    coordinator = await make_person("coordinator")
    young = await minor("old-guardian@example.jp")
    event_id = await seminar(coordinator, capacity=3)
    pending = (await registration.register(event_id, young))["id"]
    profile = await StudentProfile.select().where(StudentProfile.person == young).first()
    changed = StudentInfo(profile["school_level"], "金沢総合高校", 3, profile["birth_date"], "new-guardian@example.jp",
                          "新しい 保護者")
    outcome = await privacy.correct_student_profile(as_person(young), young, changed)
    assert set(outcome["changed"]) == {"school_name", "grade", "guardian_email", "guardian_name"}
    assert outcome["consent_reasked"] == 1
    rows = await consent.records(consent.Subject(places.REGISTRATION_SUBJECT, pending))
    assert [(r["guardian_email"], r["decision"]) for r in rows] == [("old-guardian@example.jp", "withdrawn"),
                                                                    ("new-guardian@example.jp", "pending")]
    assert len(await outbox_mails("consent_request", "new-guardian@example.jp")) == 1
    assert await status_of(pending) == "pending_consent"

    grown = StudentInfo("high_school", "金沢総合高校", 3, profile["birth_date"].replace(
        year=profile["birth_date"].year - 3), "new-guardian@example.jp", "新しい 保護者")
    with pytest.raises(Invalid) as refused:
        await privacy.correct_student_profile(as_person(young), young, grown)
    assert refused.value.code == "birth_date_needs_review"
    staff = await privacy.correct_student_profile(as_staff(coordinator), young, grown)  # a coordinator may, audited
    assert staff["changed"] == ["birth_date"]
    assert await AuditEntry.count().where(AuditEntry.action == "staff_corrected_profile") == 1


async def test_a_correction_request_goes_to_coordinators_who_apply_or_reject_it(db):
    coordinator = await make_person("coordinator", "coord@ward.example.jp")
    student = await adult()
    with pytest.raises(Invalid):
        await privacy.request_correction(as_person(student), student, {"shoe_size": "27"})
    with pytest.raises(Invalid):
        await privacy.request_correction(as_person(student), student, {})
    request_id = await privacy.request_correction(as_person(student), student, {"email": "New@Univ.example.jp"})
    listing = await privacy.view_requests(as_staff(coordinator))
    assert [r["id"] for r in listing["requests"]] == [request_id]
    assert len(await outbox_mails("privacy_review_needed", "coord@ward.example.jp")) == 1
    await privacy.decide_request(as_staff(coordinator), request_id, action="apply")
    assert await email_of(student) == "new@univ.example.jp"
    rejected = await privacy.request_correction(as_person(student), student, {"name": "別の 名前"})
    await privacy.decide_request(as_staff(coordinator), rejected, action="reject", note="ご本人確認ができません")
    assert (await Person.select(Person.name).where(Person.id == student).first())["name"] == "鈴木 葵"
    actions = [r["action"] for r in await AuditEntry.select(AuditEntry.action).where(
        AuditEntry.action.like("privacy_correction_%")).order_by(AuditEntry.id)]
    assert actions == ["privacy_correction_requested", "privacy_correction_applied", "privacy_correction_requested",
                       "privacy_correction_rejected"]


async def test_mail_to_an_address_before_a_correction_stays_the_persons_until_retention(db, settings):
    """After a correction of the e-mail address, the mail sent to the old address is still the person's: it is in
    their export (and so is the old address), it is scrubbed when they are deleted, and retention drops the old
    address with that mail. Controls: another person's mail is in nobody else's export, and the same search that
    finds nothing after the deletion finds the old address before it."""
    from events import retention
    from lifedesign import worker

    coordinator = await make_person("coordinator", "coord@ward.example.jp")
    student, other = await adult(), await adult("他の 学生")
    old = await email_of(student)
    event_id = await seminar(coordinator, capacity=5, days=10)
    for person in (student, other):
        await registration.register(event_id, person)
    request_id = await privacy.request_correction(as_person(student), student, {"email": "New@Univ.example.jp"})
    await privacy.decide_request(as_staff(coordinator), request_id, action="apply")
    while (await worker.deliver_once(settings))["sent"]:
        pass
    export = (await privacy.export_of(student))["tables"]
    assert [row["email"] for row in export["former_email"]] == [old]
    recipients = {row["recipient"] for row in export["outbox_message"]}
    assert old in recipients and await email_of(other) not in recipients
    assert len([r for r in export["outbox_message"] if r["recipient"] == old]) == len(await mails_to(old)) >= 1
    assert old not in {r["recipient"] for r in (await privacy.export_of(other))["tables"]["outbox_message"]}

    with clock.travel(timedelta(days=7 * 31)):  # retention: the old address goes with the mail sent to it
        assert (await retention.run(dry_run=True)).counts()["former_emails"] == 1
    kept = await adult("三人目 学生")
    kept_request = await privacy.request_correction(as_person(kept), kept, {"email": "third@univ.example.jp"})
    await privacy.decide_request(as_staff(coordinator), kept_request, action="apply")
    assert len(await _traces({"old": old})) >= 2  # control: before the deletion the old address is found
    admin = await make_person("admin")
    await privacy.request_deletion(as_staff(admin, "admin"), student, via="paper", note="書面")
    while (await worker.deliver_once(settings))["sent"]:
        pass
    await retention.run(only=["erased_mail"])
    assert await _traces({"old": old}) == []
    assert len((await privacy.export_of(kept))["tables"]["former_email"]) == 1  # someone else's stays


async def _traces(needles: dict[str, str]) -> list[str]:
    """Every text column of every table, searched for each needle: where a deleted person can still be found."""
    from piccolo.columns import JSON, Text, Varchar
    from piccolo.conf.apps import Finder

    from events.db import raw

    found = []
    for table in Finder().get_table_classes():
        for column in table._meta.columns:
            if not isinstance(column, Varchar | Text | JSON):
                continue
            name = column._meta.db_column_name
            for what, needle in needles.items():
                rows = await raw(f"SELECT id FROM {table._meta.tablename} WHERE CAST({name} AS TEXT) LIKE {{}}",
                                 f"%{needle}%")
                found += [f"{table._meta.tablename}.{name}#{row['id']}: {what}" for row in rows]
    return found


async def _needles(person_id: int) -> dict[str, str]:
    from events.visits.tables import Household, HouseholdAddress

    person = await Person.select().where(Person.id == person_id).first()
    profile = await StudentProfile.select().where(StudentProfile.person == person_id).first() or {}
    home = await Household.select().where(Household.person == person_id).first() or {}
    address = (await HouseholdAddress.select().where(HouseholdAddress.household == home["id"]).first() or {}
               if home else {})
    values = {"email": person["email"], "name": person["name"], "kana": person["kana"], "phone": person["phone"],
              "school": profile.get("school_name"), "guardian_email": profile.get("guardian_email"),
              "guardian_name": profile.get("guardian_name"), "guardian_phone": profile.get("guardian_phone"),
              "household": home.get("display_name"), "introduction": home.get("introduction"),
              "address": address.get("address"), "home_phone": address.get("phone")}
    return {k: v for k, v in values.items() if v}


async def test_after_deletion_and_the_days_purge_no_text_column_anywhere_holds_the_person(db, settings):
    """Rows anonymised, found by searching the whole schema (a new column cannot be forgotten either); negative
    control: the same search before the deletion finds each person in many places."""
    from events import retention
    from events.db import write_transaction
    from lifedesign import worker
    from tests.service.privacy_helpers import build_world

    world = await build_world()
    async with write_transaction():  # phone numbers, as people enter them on their profile
        await Person.update({Person.phone: "090-1234-5678", Person.kana: "すずき ただひとり"}).where(
            Person.id == world.student)  # a kana and a school no one else in the world has
        await StudentProfile.update({StudentProfile.school_name: "金沢文庫大学"}).where(
            StudentProfile.person == world.student)
        await Person.update({Person.phone: "090-8765-4321"}).where(Person.id == world.family)
        await StudentProfile.update({StudentProfile.guardian_phone: "080-1111-2222"}).where(
            StudentProfile.person == world.minor)
    gone = {pid: await _needles(pid) for pid in (world.student, world.minor, world.family)}
    for needles in gone.values():
        assert len(await _traces(needles)) >= 3  # the negative control: the search does find people
    admin = await make_person("admin")
    for person_id in gone:
        outcome = await privacy.request_deletion(as_staff(admin, "admin"), person_id, via="paper", note="書面")
        assert outcome["status"] == "done"
    while (await worker.deliver_once(settings))["sent"]:
        pass  # the CANCELs and confirmations leave, then the day's purge scrubs them
    await retention.run(only=["erased_mail"])
    left = {pid: await _traces(needles) for pid, needles in gone.items()}
    assert left == {pid: [] for pid in gone}


async def test_a_guardian_of_two_keeps_the_mail_about_the_other_child(db):
    coordinator, admin = await make_person("coordinator"), await make_person("admin")
    first, second = await minor("both@example.jp", name="兄 一郎"), await minor("both@example.jp", name="妹 花子")
    event_id = await seminar(coordinator, capacity=5)
    await registration.register(event_id, first)
    await registration.register(event_id, second)
    await privacy.request_guardian_link("both@example.jp", client="127.0.0.1")
    mail = (await outbox_mails("privacy_guardian_link", "both@example.jp"))[0]
    token = [u for u in links_in(mail) if "/privacy/guardian/" in u][0].rsplit("/", 1)[1]

    await privacy.request_deletion(as_staff(admin, "admin"), first, via="paper")
    to_guardian = await mails_to("both@example.jp")
    requests = [m for m in to_guardian if m["kind"] == "consent_request"]
    assert len(requests) == 1 and requests[0]["status"] == "queued"  # the sister's request still leaves
    assert await OutboxMessage.count().where((OutboxMessage.kind == "consent_request")
                                             & (OutboxMessage.status == "withdrawn")
                                             & (OutboxMessage.recipient == "")) == 1  # the brother's does not
    deleted = [m for m in to_guardian if m["kind"] == "privacy_deleted"]
    assert len(deleted) == 1 and deleted[0]["group_key"] == f"erased:{first}"  # scrubbed once sent
    view = await privacy.guardian_view(token, client="127.0.0.1")  # the link still serves the other child
    assert [c["id"] for c in view["children"]] == [second]
