"""The defects where areas met, each tried as a user would (HTTP with bearer tokens, or the guardian's page).

Each test fails on the code before the kernel: a home visit or a private event taken by anyone, a minor left
alone at a home after the adult cancels, a minor registered at the counter without consent, consent pages
answering 500, staff views that wrote no audit entry.
"""

from __future__ import annotations

from datetime import timedelta

from events import consent, safeguarding
from events.auth import create_api_token
from events.core.tables import AuditEntry, Person
from events.people import StudentInfo
from events.seminars.tables import Event, Registration
from events.visits import confirmations, proposals, requests, rounds
from events.visits.tables import VisitMatch
from tests.conftest import as_staff, csrf_from, links_in, make_person, outbox_mails
from tests.service.seminars_helpers import new_event, soon
from tests.service.test_visits_services import day, family, open_round


async def _bearer(person_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_api_token(person_id, 'test')}"}


async def _minor(guardian: str = "parent@example.jp") -> int:
    born = soon(0).date().replace(year=soon(0).year - 16)
    return await make_person("student", student=StudentInfo("high_school", "金沢高校", 2, born, guardian, "保護者 太郎"))


async def _give_consent(guardian: str) -> None:
    mail = (await outbox_mails("consent_request", guardian))[-1]
    token = [u for u in links_in(mail) if "/consent/" in u][0].rsplit("/", 1)[1]
    await consent.decide(token, "give", client="127.0.0.1")


async def confirmed_visit(*, capacity: int = 2) -> dict:
    """A slot confirmed by both sides for a minor and an adult student (the minor's guardian consented)."""
    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    host, household = await family("能見台")
    await rounds.offer_slot(host, round_id, starts_at=day(10, 10), ends_at=day(10, 13), capacity=capacity)
    young, grown = await _minor(), await make_person("student")
    window = [(day(10, 9), day(10, 17))]
    for student in (young, grown):
        await requests.submit_request(student, round_id, requests.RequestInput(windows=window))
    await _give_consent("parent@example.jp")
    proposal = await proposals.run_matching(round_id, as_staff(coordinator))
    await proposals.confirm_proposal(proposal, as_staff(coordinator))
    for student in (young, grown):
        match = (await confirmations.matches_of_student(student))[0]
        await confirmations.respond(match["id"], host, side="family", accept=True)
        await confirmations.respond(match["id"], student, side="student", accept=True)
    event = await Event.select().where(Event.kind == "home_visit").first()
    places = {r["person"]: r["id"] for r in await Registration.select().where(Registration.event == event["id"])}
    return {"coordinator": coordinator, "round": round_id, "host": host, "household": household, "young": young,
            "grown": grown, "event": event["id"], "places": places}


# ---------------------------------------------------------------- who may hold a place


async def test_a_home_visit_place_comes_only_from_a_match(client):
    visit = await confirmed_visit(capacity=3)  # one seat still free
    stranger = await make_person("student")
    taken = await client.post(f"/api/v1/events/{visit['event']}/registrations", headers=await _bearer(stranger))
    assert taken.status_code == 404 and taken.json()["code"] == "event_not_found"  # a private event: no hint
    coordinator = await _bearer(visit["coordinator"])
    counter = await client.post(f"/api/v1/events/{visit['event']}/registrations", headers=coordinator,
                                json={"email": "walk.in@example.jp", "name": "窓口 花子", "participant": "adult"})
    assert counter.status_code == 403 and counter.json()["code"] == "visit_by_match_only"
    event = await Event.select(Event.taken).where(Event.id == visit["event"]).first()
    assert event["taken"] == 2 and await Registration.count().where(Registration.event == visit["event"]) == 2


async def test_a_private_event_only_by_invitation_or_a_coordinator(client):
    coordinator = await make_person("coordinator")
    event_id = await new_event(coordinator, visibility="private", capacity=5, audience="anyone")
    guest, stranger = await make_person("student"), await make_person("student")
    refused = await client.post(f"/api/v1/events/{event_id}/registrations", headers=await _bearer(stranger))
    assert refused.status_code == 404
    assert (await client.get(f"/api/v1/events/{event_id}", headers=await _bearer(stranger))).status_code == 404
    email = (await Person.select(Person.email).where(Person.id == guest).first())["email"]
    invited = await client.post(f"/api/v1/events/{event_id}/invitations", headers=await _bearer(coordinator),
                                json={"guests": [{"email": email}, {"email": "new.guest@example.jp", "name": "新 来"}]})
    assert invited.status_code == 201 and invited.json() == {"invited": 2, "already": 0, "people_created": 1}
    assert len(await outbox_mails("seminar_invitation", email)) == 1
    assert (await client.get(f"/api/v1/events/{event_id}", headers=await _bearer(guest))).status_code == 200
    mine = await client.post(f"/api/v1/events/{event_id}/registrations", headers=await _bearer(guest))
    assert mine.status_code == 201 and mine.json()["status"] == "confirmed"
    assert (await client.post(f"/api/v1/events/{event_id}/registrations",
                              headers=await _bearer(stranger))).status_code == 404
    listed = (await client.get(f"/api/v1/events/{event_id}/invitations", headers=await _bearer(coordinator))).json()
    assert {row["email"]: row["registration_status"] for row in listed} == {email: "confirmed",
                                                                           "new.guest@example.jp": None}


# ---------------------------------------------------------------- safeguarding holds at all times


async def test_the_adult_cancels_and_the_minor_is_never_left_alone(client):
    visit = await confirmed_visit()
    grown_place = visit["places"][visit["grown"]]
    cancelled = await client.delete(f"/api/v1/registrations/{grown_place}", headers=await _bearer(visit["grown"]))
    assert cancelled.status_code == 200
    statuses = {r["person"]: r["status"] for r in await Registration.select().where(Registration.event == visit["event"])}
    assert statuses == {visit["grown"]: "cancelled", visit["young"]: "cancelled"}  # nobody holds the home visit
    assert (await Event.select(Event.taken).where(Event.id == visit["event"]).first())["taken"] == 0
    # the minor no longer reads the address; the adult's match shows declined, the minor's on hold
    young_match = (await confirmations.matches_of_student(visit["young"]))[0]
    address = await client.get(f"/api/v1/visits/matches/{young_match['id']}/address", headers=await _bearer(visit["young"]))
    assert address.status_code in (403, 404)
    matches = {m["student"]: m["status"] for m in await VisitMatch.select(VisitMatch.student, VisitMatch.status)}
    assert matches == {visit["grown"]: "declined", visit["young"]: "on_hold"}
    # the coordinator and the guardian are told; the family hears the adult declined
    coordinator_email = (await Person.select(Person.email).where(Person.id == visit["coordinator"]).first())["email"]
    assert len(await outbox_mails("safeguarding_hold", coordinator_email)) == 1
    assert len(await outbox_mails("safeguarding_hold", "parent@example.jp")) == 1
    assert [a["student"] for a in await proposals.needing_attention(visit["round"])] == [visit["young"]]


async def test_unsafe_places_are_found_by_the_rule_itself():
    """The pure rule, with a negative control for each clause."""
    from datetime import date

    day_of_visit = date(2027, 5, 1)
    adult = safeguarding.Visitor(1, 10, minor=False, consented=False)
    minor = safeguarding.Visitor(2, 20, minor=True, consented=True)
    unconsented = safeguarding.Visitor(3, 30, minor=True, consented=False)
    valid = date(2027, 12, 31)
    assert safeguarding.unsafe([adult, minor], vetted_until=valid, day=day_of_visit) == {}
    assert safeguarding.unsafe([minor], vetted_until=valid, day=day_of_visit) == {2: ("alone",)}
    assert safeguarding.unsafe([adult, unconsented], vetted_until=valid, day=day_of_visit) == {3: ("consent",)}
    assert safeguarding.unsafe([adult, minor], vetted_until=date(2027, 4, 30), day=day_of_visit) == {
        1: ("vetting",), 2: ("vetting",)}
    assert safeguarding.may_confirm([minor, unconsented], vetted_until=valid, day=day_of_visit) == set()
    assert safeguarding.may_confirm([adult, minor, unconsented], vetted_until=valid, day=day_of_visit) == {1, 2}


async def test_a_guardian_revoking_consent_puts_the_visit_on_hold(client):
    visit = await confirmed_visit()
    mail = (await outbox_mails("consent_request", "parent@example.jp"))[-1]
    path = "/consent/" + [u for u in links_in(mail) if "/consent/" in u][0].rsplit("/", 1)[1]
    page = await client.get(path)
    assert page.status_code == 200 and "同意を取り消す" in page.text
    asked = await client.post(path, data={"_csrf": csrf_from(page.text), "decision": "revoke"})
    assert asked.status_code == 200 and "同意を取り消しますか" in asked.text
    assert len(await outbox_mails("safeguarding_hold", "parent@example.jp")) == 0  # nothing happened yet
    revoked = await client.post(path, data={"_csrf": csrf_from(asked.text), "decision": "revoke", "confirmed": "1"})
    assert revoked.status_code == 200 and "同意の取り消しを承りました" in revoked.text
    statuses = {r["person"]: r["status"] for r in await Registration.select().where(Registration.event == visit["event"])}
    assert statuses[visit["young"]] == "cancelled" and statuses[visit["grown"]] == "confirmed"
    assert len(await outbox_mails("safeguarding_hold", "parent@example.jp")) == 1


async def test_vetting_that_no_longer_covers_the_day_holds_every_visitor(db):
    from events.visits import households

    visit = await confirmed_visit()
    coordinator = as_staff(visit["coordinator"])
    today = soon(0).date()
    await households.record_vetting(coordinator, visit["household"], interviewed_on=today - timedelta(days=300),
                                    valid_until=today + timedelta(days=5))  # the visit is on day 10
    statuses = {r["person"]: r["status"] for r in await Registration.select().where(Registration.event == visit["event"])}
    assert set(statuses.values()) == {"cancelled"}
    assert await households.enforce_vetting() == 0  # nothing left to hold: the job is idempotent


# ---------------------------------------------------------------- counter registrations of minors


async def test_a_minor_registered_at_the_counter_waits_for_consent(client):
    coordinator = await make_person("coordinator")
    event_id = await new_event(coordinator, capacity=5, audience="students")
    headers = await _bearer(coordinator)
    path = f"/api/v1/events/{event_id}/registrations"
    unknown = await client.post(path, headers=headers, json={"email": "teen@example.jp", "name": "高校 一郎"})
    assert unknown.status_code == 422 and unknown.json()["code"] == "participant_required"
    born = soon(0).date().replace(year=soon(0).year - 15).isoformat()
    no_guardian = await client.post(path, headers=headers, json={
        "email": "teen@example.jp", "name": "高校 一郎", "participant": "student", "birth_date": born})
    assert no_guardian.status_code == 422 and no_guardian.json()["code"] == "guardian_required"
    made = await client.post(path, headers=headers, json={
        "email": "teen@example.jp", "name": "高校 一郎", "participant": "student", "birth_date": born,
        "school_name": "金沢高校", "grade": 1, "guardian_email": "mum@example.jp"})
    assert made.status_code == 201 and made.json()["status"] == "pending_consent"
    assert len(await outbox_mails("consent_request", "mum@example.jp")) == 1


# ---------------------------------------------------------------- consent pages never answer 500


async def test_bad_input_on_consent_pages_is_a_clear_4xx(client):
    event_id = await new_event(capacity=2)
    from events.seminars import registration

    await registration.register(event_id, await _minor("guard@example.jp"))
    mail = (await outbox_mails("consent_request", "guard@example.jp"))[0]
    token = [u for u in links_in(mail) if "/consent/" in u][0].rsplit("/", 1)[1]
    page = await client.get(f"/consent/{token}")
    csrf = csrf_from(page.text)
    missing = await client.post(f"/consent/{token}", data={"_csrf": csrf})
    assert missing.status_code == 422 and "選んでください" in missing.text
    bogus = await client.post(f"/consent/{token}", data={"_csrf": csrf, "decision": "maybe"})
    assert bogus.status_code == 422
    unknown = await client.post("/consent/not-a-token", data={"_csrf": csrf, "decision": "give"})
    assert unknown.status_code == 404 and "このリンクは無効です" in unknown.text
    api_missing = await client.post(f"/api/v1/consent/{token}", json={})
    assert api_missing.status_code == 422 and api_missing.json()["code"] == "invalid_decision"
    api_unknown = await client.post("/api/v1/consent/not-a-token", json={"decision": "give"})
    assert api_unknown.status_code == 404 and api_unknown.json()["code"] == "consent_not_found"
    assert (await client.get(f"/consent/{token}")).status_code == 200  # nothing was decided by bad input


async def test_consent_expires_at_the_event_start_at_the_latest(db):
    from events.seminars import registration
    from events.seminars.tables import GuardianConsent

    starts = soon(0, hours=10)  # the usual 72 hours would run past the start
    event_id = await new_event(capacity=2, starts_at=starts)
    await registration.register(event_id, await _minor("soon@example.jp"))
    row = await GuardianConsent.select(GuardianConsent.expires_at).first()
    assert row["expires_at"] == starts


# ---------------------------------------------------------------- staff views are audited


async def test_staff_views_of_visits_and_mail_write_an_audit_entry(client):
    visit = await confirmed_visit()
    headers = await _bearer(visit["coordinator"])
    proposal = await proposals.latest_proposal_id(visit["round"])
    views = {
        f"/api/v1/visits/proposals/{proposal}": "staff_viewed_proposal",
        f"/api/v1/visits/rounds/{visit['round']}/slots": "staff_viewed_visit_slots",
        f"/api/v1/visits/rounds/{visit['round']}/rules": "staff_viewed_pair_rules",
        f"/api/v1/visits/rounds/{visit['round']}/requests": "staff_viewed_visit_requests",
        "/api/v1/outbox": "staff_viewed_outbox",
        "/api/v1/people": "staff_viewed_people",
    }
    for path, action in views.items():
        before = await AuditEntry.count().where(AuditEntry.action == action)
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        rows = await AuditEntry.select().where(AuditEntry.action == action).order_by(AuditEntry.id)
        assert len(rows) == before + 1 and rows[-1]["actor"] == visit["coordinator"], path


def test_handlers_write_no_audit_entries():
    """Audit is the services' (in their transaction); no handler in the shell calls audit.record."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "lifedesign"
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if "audit.record(" in p.read_text(encoding="utf-8")]
    assert offenders == []


async def test_the_consent_page_tells_the_guardian_why_the_request_closed(client):
    """After the student cancels, the guardian's link says so, in Japanese and (on request) in English, and
    offers no answer any more."""
    from events.seminars import registration
    from tests.conftest import as_person

    event_id = await new_event(capacity=2)
    student = await _minor("why@example.jp")
    place = await registration.register(event_id, student)
    mail = (await outbox_mails("consent_request", "why@example.jp"))[0]
    path = "/consent/" + [u for u in links_in(mail) if "/consent/" in u][0].rsplit("/", 1)[1]
    before = await client.get(path)
    assert before.status_code == 200 and "同意する" in before.text and consent.ENDED_BY["student"] not in before.text
    await registration.cancel_registration(place["id"], actor=as_person(student))
    page = await client.get(path)
    assert page.status_code == 200 and consent.ENDED_BY["student"] in page.text and "同意する" not in page.text
    english = await client.get(path + "?lang=en")
    assert "cancelled the application themselves" in english.text
