"""Home visits through the services: households, rounds, requests, consent, matching, answers, events, addresses."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from events import clock, consent, signals
from events.core.tables import AuditEntry
from events.db import utcnow
from events.errors import Conflict, Forbidden, Invalid, NotFound
from events.people import StudentInfo
from events.seminars.tables import Event, Registration
from events.visits import confirmations, households, proposals, requests, rounds
from events.visits.tables import VisitMatch
from tests.conftest import as_person, as_staff, captured, links_in, mail_text, make_person, outbox_mails

TOKYO = ZoneInfo("Asia/Tokyo")


def day(offset: int, hour: int) -> datetime:
    base = (utcnow() + timedelta(days=offset)).astimezone(TOKYO)
    return base.replace(hour=hour, minute=0, second=0, microsecond=0)


async def family(district: str, *, tags=(), vetted=True, pets="") -> tuple[int, int]:
    person = await make_person("host_family")
    household = await households.save_household(person, households.HouseholdProfile(
        display_name=f"テスト家 {person}", district=district, children_ages=[2, 5], tags=list(tags), pets=pets))
    await households.save_address(person, households.Address("236-0053", f"横浜市金沢区{district}1-2-{person}",
                                                              "駅から徒歩5分", "045-000-0000"))
    if vetted:
        coordinator = await make_person("coordinator")
        await households.record_vetting(as_staff(coordinator), household, interviewed_on=utcnow().date(),
                                        valid_until=utcnow().date() + timedelta(days=365))
    return person, household


async def minor() -> int:
    born = utcnow().date().replace(year=utcnow().year - 16)
    return await make_person("student", student=StudentInfo("high_school", "金沢高校", 2, born, "parent@example.jp",
                                                            "保護者 太郎"))


@pytest.fixture
def emitted():
    with captured(signals.PLACE_CHANGED) as seen:
        yield seen


async def consent_token(guardian: str) -> str:
    mails = await outbox_mails("consent_request", guardian)
    assert len(mails) == 1
    link = [u for u in links_in(mails[0]) if "/consent/" in u][0]
    return link.rsplit("/", 1)[1]


async def _names(*person_ids: int) -> list[str]:
    from events.core.tables import Person

    rows = {r["id"]: r["name"] for r in await Person.select(Person.id, Person.name).where(Person.id.is_in(person_ids))}
    return [rows[p] for p in person_ids]


async def _email(person_id: int) -> str:
    from events.core.tables import Person

    return (await Person.select(Person.email).where(Person.id == person_id).first())["email"]


async def open_round(coordinator: int) -> int:
    return await rounds.create_round(as_staff(coordinator), name="2026年 夏の家庭訪問", requests_open_at=utcnow() - timedelta(hours=1),
                                     requests_close_at=utcnow() + timedelta(days=7), seed=7)


async def test_full_flow_decline_and_rematch(db, emitted):
    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    fam1, house1 = await family("能見台", tags=["dual_income", "infant"])
    await rounds.offer_slot(fam1, round_id, starts_at=day(10, 10), ends_at=day(10, 13), capacity=2)
    young = await minor()
    adult_a = await make_person("student")
    adult_b = await make_person("student")
    window = [(day(10, 9), day(10, 17))]
    young_request = await requests.submit_request(young, round_id, requests.RequestInput(
        windows=window, districts=["能見台"], wanted_tags=["infant"]))
    await requests.submit_request(adult_a, round_id, requests.RequestInput(windows=window, districts=["能見台"]))
    await requests.submit_request(adult_b, round_id, requests.RequestInput(windows=window, districts=["六浦"]))

    # the minor needs consent: a mail to the guardian with a link; without it no match
    token = await consent_token("parent@example.jp")
    info = await consent.view(token)
    assert ("場所", "能見台（訪問先のご住所は、訪問が確定した後に生徒さんにお知らせします）") in info["facts"]
    assert info["state"] == "pending" and info["subject_kind"] == "visit_request"

    first = await proposals.proposal_view(await proposals.run_matching(round_id, as_staff(coordinator)), actor=as_staff(None))
    unmatched = {u["student_id"]: u["reason"] for u in first["unmatched"]}
    assert unmatched[young] == "no_consent"
    assert "保護者の同意" in [u for u in first["unmatched"] if u["student_id"] == young][0]["reason_label"]

    await consent.decide(token, "give", client="127.0.0.1")
    with pytest.raises(Conflict):  # a token answers once
        await consent.decide(token, "refuse")
    assert len(await outbox_mails("visit_consent_outcome")) == 1
    assert len(await outbox_mails("consent_outcome", "parent@example.jp")) == 1  # the guardian is told too

    proposal_id = await proposals.run_matching(round_id, as_staff(coordinator))
    view = await proposals.proposal_view(proposal_id, actor=as_staff(None))
    matched = {m["student"]: m for m in view["matches"]}
    assert young in matched and len(matched) == 2  # capacity 2, the minor with an adult
    companion = next(s for s in matched if s != young)
    assert view["proposal"]["optimal"]
    assert {u["student_id"] for u in view["unmatched"]} == {adult_a, adult_b} - {companion}

    # nothing is offered before the coordinator confirms
    assert await confirmations.matches_of_student(young) == []
    result = await proposals.confirm_proposal(proposal_id, as_staff(coordinator))
    assert result["offered"] == 2
    assert len(await outbox_mails("visit_offer")) == 3  # two students, one family mail
    with pytest.raises(Conflict):
        await proposals.confirm_proposal(proposal_id, as_staff(coordinator))

    young_match = (await confirmations.matches_of_student(young))[0]
    companion_match = (await confirmations.matches_of_student(companion))[0]
    # the address stays hidden before both sides confirm
    with pytest.raises(Forbidden):
        await households.read_address(house1, actor=as_person(young))
    with pytest.raises(NotFound):  # a student cannot answer for another
        await confirmations.respond(companion_match["id"], young, side="student", accept=True)

    for match in (young_match, companion_match):
        await confirmations.respond(match["id"], fam1, side="family", accept=True)
    await confirmations.respond(young_match["id"], young, side="student", accept=True)
    # an accepted minor alone is not a confirmed visit yet
    assert await Event.count() == 0
    with pytest.raises(Forbidden):
        await households.read_address(house1, actor=as_person(young))
    await confirmations.respond(companion_match["id"], companion, side="student", accept=True)

    event = await Event.select().first()
    assert event["kind"] == "home_visit" and event["visibility"] == "private" and event["status"] == "published"
    assert event["title"] == "家庭訪問（能見台）" and event["venue"] == "能見台"
    assert event["taken"] == 2 and event["capacity"] == 2
    assert await Registration.count().where(Registration.status == "confirmed") == 2
    # the adult's place first, then the minor's: the minor is never confirmed alone, not even for a moment
    assert [(c.person_id, c.new, c.reason) for c in emitted] == [(companion, "confirmed", "visit_confirmed"),
                                                                 (young, "confirmed", "visit_confirmed")]
    # each student once; the family once for the slot, naming both students
    assert len(await outbox_mails("visit_confirmed")) == 3
    family_mail = await outbox_mails("visit_confirmed", await _email(fam1))
    assert len(family_mail) == 1
    assert all(name in mail_text(family_mail[0]) for name in await _names(young, companion))
    # the guardian was told of the match, then of the confirmed visit (area, time, the adult going along)
    told = [mail_text(m) for m in await outbox_mails("visit_guardian", "parent@example.jp")]
    assert len(told) == 2 and "組み合わせが決まりました" in told[0] and "訪問が確定しました" in told[1]
    assert "能見台" in told[1] and (await _names(companion))[0] in told[1] and "能見台1-2-" not in told[1]
    assert await confirmations.host_of_event(event["id"]) == [fam1]  # for the host family's survey

    address = await households.read_address(house1, actor=as_person(young))
    assert address["address"].startswith("横浜市金沢区能見台")
    contact = await households.read_student_contact(young, actor=as_person(fam1))
    assert "@" in contact["email"]
    views = await AuditEntry.select(AuditEntry.action, AuditEntry.actor).where(
        AuditEntry.action.is_in(["viewed_address", "viewed_student_contact"]))
    assert {(v["action"], v["actor"]) for v in views} == {("viewed_address", young), ("viewed_student_contact", fam1)}
    # another student (not on this visit) and another family see nothing
    with pytest.raises(Forbidden):
        await households.read_address(house1, actor=as_person(adult_a if companion != adult_a else adult_b))
    fam2, _ = await family("六浦")
    with pytest.raises(Forbidden):
        await households.read_student_contact(young, actor=as_person(fam2))

    # the companion declines: the minor may not stay alone, so the minor's visit goes on hold at once (same
    # transaction): seats freed, the address closed, the coordinator and the guardian told, the round page flags it
    await confirmations.respond(companion_match["id"], companion, side="student", accept=False)
    event = await Event.select().first()
    assert event["taken"] == 0 and event["status"] == "cancelled"
    assert await confirmations.host_of_event(event["id"]) == []
    assert [(c.person_id, c.old, c.new, c.reason) for c in emitted][-2:] == [
        (companion, "confirmed", "cancelled", "visit_regrouped"), (young, "confirmed", "cancelled", "safeguarding_hold")]
    assert len(await outbox_mails("visit_declined")) == 2  # family and coordinator
    holds = await outbox_mails("safeguarding_hold")
    assert sorted(m["To"].addresses[0].addr_spec for m in holds) == sorted([await _email(coordinator), "parent@example.jp"])
    assert (await VisitMatch.select(VisitMatch.status).where(VisitMatch.id == young_match["id"]).first())["status"] == "on_hold"
    attention = await proposals.needing_attention(round_id)
    assert [a["student"] for a in attention] == [young]
    with pytest.raises(Forbidden):
        await households.read_address(house1, actor=as_person(young))

    # re-match (the one action on the held visit): the minor and the free adult go together; the decliner is not
    # sent back there
    rematch = await proposals.proposal_view(await proposals.run_matching(round_id, as_staff(coordinator)), actor=as_staff(None))
    pairs = {m["student"]: m for m in rematch["matches"]}
    assert set(pairs) == {young, adult_a, adult_b} - {companion}
    result = await proposals.confirm_proposal(rematch["proposal"]["id"], as_staff(coordinator))
    assert result == {"offered": 2, "cancelled": 0, "kept": 0}
    assert await proposals.needing_attention(round_id) == []  # the re-match resolved the held visit
    newcomer = next(s for s in pairs if s != young)
    for student in (young, newcomer):
        match = next(m for m in await confirmations.matches_of_student(student) if m["status"] != "on_hold")
        await confirmations.respond(match["id"], fam1, side="family", accept=True)
        await confirmations.respond(match["id"], student, side="student", accept=True)
    event = await Event.select().first()
    assert event["taken"] == 2 and event["status"] == "published"
    assert await households.read_address(house1, actor=as_person(young))
    # the record of consent is kept with its text version
    record = (await consent.records(consent.Subject("visit_request", young_request)))[0]
    assert record["decision"] == "given" and record["text_version"] == requests.CONSENT_TEXT_VERSION


async def test_address_hidden_a_week_after_the_visit(db):
    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    fam, house = await family("六浦")
    await rounds.offer_slot(fam, round_id, starts_at=day(3, 10), ends_at=day(3, 12), capacity=1)
    student = await make_person("student")
    await requests.submit_request(student, round_id, requests.RequestInput(windows=[(day(3, 9), day(3, 18))]))
    await proposals.confirm_proposal(await proposals.run_matching(round_id, as_staff(coordinator)), as_staff(coordinator))
    match = (await confirmations.matches_of_student(student))[0]
    await confirmations.respond(match["id"], student, side="student", accept=True)
    await confirmations.respond(match["id"], fam, side="family", accept=True)
    assert (await households.read_address(house, actor=as_person(student)))["district"] == "六浦"
    with clock.travel(day(3, 12) + timedelta(days=8)):  # the visit ended 8 days ago
        with pytest.raises(Forbidden):
            await households.read_address(house, actor=as_person(student))
        with pytest.raises(Forbidden):
            await households.read_student_contact(student, actor=as_person(fam))
        # coordinators always can, and it is audited
        await households.read_address(house, actor=as_person(coordinator))
    assert await AuditEntry.count().where((AuditEntry.action == "viewed_address")
                                          & (AuditEntry.actor == coordinator)) == 1
    assert await AuditEntry.count().where(AuditEntry.action == "address_refused") == 1


async def test_unvetted_and_avoided_households_explain_why(db):
    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    fam_unvetted, _ = await family("金沢文庫", vetted=False)
    fam_pets, _ = await family("並木", pets="犬1匹")
    await rounds.offer_slot(fam_unvetted, round_id, starts_at=day(5, 10), ends_at=day(5, 12), capacity=2)
    await rounds.offer_slot(fam_pets, round_id, starts_at=day(6, 10), ends_at=day(6, 12), capacity=2)
    a = await make_person("student")
    b = await make_person("student")
    c = await make_person("student")
    await requests.submit_request(a, round_id, requests.RequestInput(windows=[(day(5, 9), day(5, 13))]))
    await requests.submit_request(b, round_id, requests.RequestInput(windows=[(day(6, 9), day(6, 13))],
                                                                       avoided_tags=["pets"]))
    await requests.submit_request(c, round_id, requests.RequestInput(windows=[(day(8, 9), day(8, 13))]))
    view = await proposals.proposal_view(await proposals.run_matching(round_id, as_staff(coordinator)), actor=as_staff(None))
    reasons = {u["student_id"]: u["reason_label"] for u in view["unmatched"]}
    assert "面談" in reasons[a]
    assert "避けたい条件" in reasons[b]
    assert reasons[c] == "希望の時間帯に枠がありません"
    assert view["matches"] == []


async def test_pin_and_forbid(db):
    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    fam1, house1 = await family("能見台")
    fam2, house2 = await family("六浦")
    await rounds.offer_slot(fam1, round_id, starts_at=day(4, 10), ends_at=day(4, 12), capacity=1)
    await rounds.offer_slot(fam2, round_id, starts_at=day(4, 13), ends_at=day(4, 15), capacity=1)
    student = await make_person("student")
    await requests.submit_request(student, round_id, requests.RequestInput(windows=[(day(4, 9), day(4, 18))],
                                                                             districts=["能見台"]))
    first = await proposals.proposal_view(await proposals.run_matching(round_id, as_staff(coordinator)), actor=as_staff(None))
    assert first["matches"][0]["household"] == house1  # the district preference
    await proposals.set_rule(as_staff(coordinator), round_id, student_id=student, household_id=house1, kind="forbid")
    second = await proposals.proposal_view(await proposals.run_matching(round_id, as_staff(coordinator)), actor=as_staff(None))
    assert second["matches"][0]["household"] == house2
    assert first["proposal"]["id"] != second["proposal"]["id"]
    with pytest.raises(Conflict):  # a superseded draft cannot be confirmed
        await proposals.confirm_proposal(first["proposal"]["id"], as_staff(coordinator))
    await proposals.set_rule(as_staff(coordinator), round_id, student_id=student, household_id=house1, kind="none")
    await proposals.set_rule(as_staff(coordinator), round_id, student_id=student, household_id=house2, kind="pin")
    third = await proposals.proposal_view(await proposals.run_matching(round_id, as_staff(coordinator)), actor=as_staff(None))
    assert third["matches"][0]["household"] == house2
    # the same inputs and seed give the same proposal
    again = await proposals.proposal_view(await proposals.run_matching(round_id, as_staff(coordinator)), actor=as_staff(None))
    assert [(m["student"], m["slot"]) for m in again["matches"]] == [(m["student"], m["slot"]) for m in third["matches"]]
    # input changed after the run: confirming is refused
    late = await make_person("student")
    await requests.submit_request(late, round_id, requests.RequestInput(windows=[(day(4, 9), day(4, 18))]))
    with pytest.raises(Conflict) as refused:
        await proposals.confirm_proposal(again["proposal"]["id"], as_staff(coordinator))
    assert refused.value.code == "input_changed"


async def test_validation(db):
    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    fam, _ = await family("能見台")
    with pytest.raises(Invalid):
        await rounds.offer_slot(fam, round_id, starts_at=day(3, 10), ends_at=day(3, 12), capacity=5)
    with pytest.raises(Invalid):
        await rounds.offer_slot(fam, round_id, starts_at=day(3, 12), ends_at=day(3, 10), capacity=2)
    await rounds.offer_slot(fam, round_id, starts_at=day(3, 10), ends_at=day(3, 12), capacity=2)
    with pytest.raises(Conflict):
        await rounds.offer_slot(fam, round_id, starts_at=day(3, 11), ends_at=day(3, 13), capacity=2)
    with pytest.raises(Invalid):
        await households.save_household(fam, households.HouseholdProfile(display_name="x", district="渋谷"))
    student = await make_person("student")
    with pytest.raises(Forbidden):
        await households.save_household(student, households.HouseholdProfile(display_name="x", district="六浦"))
    with pytest.raises(Invalid):
        await requests.submit_request(student, round_id, requests.RequestInput(windows=[]))
    with pytest.raises(Invalid):
        await requests.submit_request(student, round_id, requests.RequestInput(
            windows=[(day(3, 9), day(3, 12))], wanted_tags=["pets"], avoided_tags=["pets"]))
    with pytest.raises(Invalid):
        await households.record_vetting(as_staff(coordinator), 1, interviewed_on=date(2026, 5, 1), valid_until=date(2026, 4, 1))
    # only one live request per student and round: a second submit replaces the first
    first = await requests.submit_request(student, round_id, requests.RequestInput(windows=[(day(3, 9), day(3, 12))]))
    second = await requests.submit_request(student, round_id, requests.RequestInput(windows=[(day(3, 8), day(3, 12))]))
    assert first == second
    assert await VisitMatch.count() == 0


async def test_left_out_before_comes_first(db):
    coordinator = await make_person("coordinator")
    earlier = await open_round(coordinator)
    left_out = await make_person("student")
    newcomer = await make_person("student")
    await requests.submit_request(left_out, earlier, requests.RequestInput(windows=[(day(2, 9), day(2, 12))]))
    await rounds.set_round_status(as_staff(coordinator), earlier, "closed")
    later = await rounds.create_round(as_staff(coordinator), name="2026年 秋の家庭訪問", requests_open_at=utcnow() - timedelta(hours=1),
                                      requests_close_at=utcnow() + timedelta(days=7))
    fam, _ = await family("富岡")
    await rounds.offer_slot(fam, later, starts_at=day(9, 10), ends_at=day(9, 12), capacity=1)
    for student in (left_out, newcomer):
        await requests.submit_request(student, later, requests.RequestInput(windows=[(day(9, 9), day(9, 13))]))
    data = await proposals.solver_input(later)
    assert {r.student_id: r.priority for r in data.requests} == {left_out: 1, newcomer: 0}
    winners = set()
    for seed in range(6):
        view = await proposals.proposal_view(await proposals.run_matching(later, as_staff(coordinator), seed=seed), actor=as_staff(None))
        winners |= {m["student"] for m in view["matches"]}
        assert view["proposal"]["seed"] == seed
    assert winners == {left_out}
