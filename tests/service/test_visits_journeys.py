"""Home-visit journeys through the services: the guardian of a minor as a participant (mails when matched,
confirmed, changed, cancelled; a status page without an account; the address only once released, audited),
one answer per household per slot, requests for the slots families offered (or any of them), a coordinator's
cancellation with its reason, and the numbers of the confirmation step."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from events import clock, consent, retention, signals
from events.config import config
from events.core.tables import AuditEntry
from events.db import utcnow, write_transaction
from events.errors import DomainError, Invalid, NotFound
from events.people import StudentInfo
from events.seminars.tables import Event, Registration
from events.visits import confirmations, guardians, proposals, requests, rounds
from events.visits.tables import VisitGuardianLink, VisitMatch, VisitSlot
from tests.conftest import as_staff, links_in, mail_text, make_person, outbox_mails
from tests.service.test_visits_services import day, family, open_round

GUARDIAN = "mother@example.jp"


async def young_student(email: str = "yui@example.jp", guardian: str = GUARDIAN) -> int:
    born = utcnow().date().replace(year=utcnow().year - 16) - timedelta(days=1)
    return await make_person("student", email, name="佐藤 結衣", student=StudentInfo(
        "high_school", "金沢高校", 2, born, guardian, "佐藤 恵"))


async def give_consent(guardian: str = GUARDIAN) -> str:
    mail = (await outbox_mails("consent_request", guardian))[-1]
    token = [u for u in links_in(mail) if "/consent/" in u][0].rsplit("/", 1)[1]
    await consent.decide(token, "give", client="127.0.0.1")
    return token


async def offered_visit(*, adults: tuple[str, ...] = ("山田 花子",), capacity: int = 2) -> dict:
    """A round with one slot of a vetted family; a minor (consented) and adults ask for that slot; the
    coordinator runs and confirms the matching: everyone is offered the slot."""
    coordinator = await make_person("coordinator", name="区 担当")
    round_id = await open_round(coordinator)
    host, household = await family("能見台")
    slot = await rounds.offer_slot(host, round_id, starts_at=day(10, 10), ends_at=day(10, 13), capacity=capacity)
    young = await young_student()
    window = [(day(10, 10), day(10, 13))]
    request_id = await requests.submit_request(young, round_id, requests.RequestInput(windows=window))
    consent_token = await give_consent()
    grown = []
    for index, name in enumerate(adults):
        student = await make_person("student", f"adult{index}@univ.example.jp", name=name)
        await requests.submit_request(student, round_id, requests.RequestInput(windows=window))
        grown.append(student)
    proposal = await proposals.run_matching(round_id, as_staff(coordinator))
    await proposals.confirm_proposal(proposal, as_staff(coordinator))
    matches = {r["student"]: r["id"] for r in await VisitMatch.select(VisitMatch.id, VisitMatch.student).where(
        VisitMatch.status == "confirmed_by_coordinator")}
    return {"coordinator": coordinator, "round": round_id, "host": host, "household": household, "slot": slot,
            "young": young, "adults": grown, "request": request_id, "matches": matches,
            "consent_token": consent_token}


def guardian_texts(mails) -> list[str]:
    return [mail_text(m) for m in mails]


def token_of(mail) -> str:
    return urlsplit([u for u in links_in(mail) if "/visits/guardian/" in u][0]).path.rsplit("/", 1)[1]


async def everyone_accepts(visit: dict) -> None:
    for student, match in visit["matches"].items():
        await confirmations.respond(match, student, side="student", accept=True)
    await confirmations.respond_slot(visit["slot"], visit["host"], accept=True)


async def home_leaves(household: int) -> None:
    """The household's slots are withdrawn under its live visits (as its leaving does, events.visits.privacy):
    the next re-match must move them."""
    async with write_transaction():
        await VisitSlot.update({VisitSlot.status: "withdrawn"}).where(VisitSlot.household == household)


async def test_a_rematch_that_moves_a_minor_tells_the_guardian_once(db):
    """A re-match moves a minor to another home: the guardian gets one mail — the new visit, saying which visit it
    replaces — not a cancellation followed by a match. Control in the same run: a re-match that leaves the minor
    without a new visit still sends the cancellation."""
    coordinator = await make_person("coordinator", name="区 担当")
    round_id = await open_round(coordinator)
    first_host, first_home = await family("能見台")
    second_host, second_home = await family("六浦")
    await rounds.offer_slot(first_host, round_id, starts_at=day(10, 10), ends_at=day(10, 13), capacity=2)
    await rounds.offer_slot(second_host, round_id, starts_at=day(11, 14), ends_at=day(11, 17), capacity=2)
    young = await young_student()
    windows = [(day(10, 9), day(10, 18)), (day(11, 9), day(11, 18))]
    await requests.submit_request(young, round_id, requests.RequestInput(windows=windows, districts=["能見台"]))
    await give_consent()
    adult = await make_person("student", "adult0@univ.example.jp", name="山田 花子")
    await requests.submit_request(adult, round_id, requests.RequestInput(windows=windows, districts=["能見台"]))
    staff = as_staff(coordinator)
    await proposals.confirm_proposal(await proposals.run_matching(round_id, staff), staff)
    assert [m["Subject"] for m in await outbox_mails("visit_guardian", GUARDIAN)] == [
        "【金沢区ライフデザイン】佐藤 結衣さんの家庭訪問の組み合わせが決まりました"]
    await home_leaves(first_home)
    await proposals.confirm_proposal(await proposals.run_matching(round_id, staff), staff)
    mails = await outbox_mails("visit_guardian", GUARDIAN)
    assert len(mails) == 2 and "予定が変わりました" in mails[1]["Subject"], [m["Subject"] for m in mails]
    text = mail_text(mails[1])
    assert "（能見台）" not in text and "、能見台）は取りやめ" in text and "六浦" in text and "14:00〜17:00" in text
    assert "10:00〜13:00" in text and "山田 花子さん" in text  # the visit it replaces, and who goes along now
    # control: nowhere left to go, the re-match calls the visit off, and the guardian is told so
    await home_leaves(second_home)
    await proposals.confirm_proposal(await proposals.run_matching(round_id, staff), staff)
    mails = await outbox_mails("visit_guardian", GUARDIAN)
    assert len(mails) == 3 and "取りやめ" in mails[2]["Subject"]


async def test_the_guardian_follows_the_visit_by_mail_and_on_a_page_without_an_account(db):
    visit = await offered_visit()
    # the confirmation of consent carries the status-page link
    outcome = (await outbox_mails("consent_outcome", GUARDIAN))[0]
    assert "/visits/guardian/" in mail_text(outcome)
    # matched: date and time, the area, the adult going along, whom to contact; never the address
    matched = await outbox_mails("visit_guardian", GUARDIAN)
    assert len(matched) == 1
    text = mail_text(matched[0])
    assert "組み合わせが決まりました" in matched[0]["Subject"]
    assert "能見台" in text and "山田 花子さん" in text and "能見台1-2-" not in text
    # whom to call: the round's coordinator at the ward, and the ward's contact block (office, address, hours)
    ward = config().contact("ja")
    assert "この訪問の担当：区 担当（金沢区こども家庭支援課）" in text and ward.office in text and ward.address in text
    assert "（" in text and "10:00〜13:00" in text  # one date format, with its weekday
    page = await guardians.status_view(token_of(matched[0]), client="127.0.0.1")
    assert page["student_name"] == "佐藤 結衣" and page["consent_state"] == "given"
    assert [(v["state"], v["companions"], v["address"]) for v in page["visits"]] == [("offered", ["山田 花子"], None)]
    assert await AuditEntry.count().where(AuditEntry.action == "viewed_address") == 0

    # confirmed: one more mail; the page now shows the address, read through the one audited door
    await everyone_accepts(visit)
    confirmed = await outbox_mails("visit_guardian", GUARDIAN)
    assert len(confirmed) == 2 and "確定しました" in confirmed[1]["Subject"]
    text = mail_text(confirmed[1])
    assert "能見台1-2-" not in text and "10:00〜13:00" in text and "能見台" in text and "山田 花子さん" in text
    assert "区 担当" in text and ward.address in text
    page = await guardians.status_view(token_of(confirmed[1]), client="192.0.2.7")
    shown = page["visits"][0]
    assert shown["state"] == "confirmed" and shown["address"]["address"].startswith("横浜市金沢区能見台")
    entry = await AuditEntry.select().where(AuditEntry.action == "viewed_address").output(load_json=True).first()
    assert entry["actor"] is None and entry["detail"] == {"as": "guardian", "student": visit["young"]}
    assert entry["client"] == "192.0.2.7"
    # the first link still works; the consent link opens the same page
    assert (await guardians.status_view(token_of(matched[0])))["visits"][0]["state"] == "confirmed"
    assert (await guardians.status_view(visit["consent_token"]))["consent_token"] == visit["consent_token"]

    # cancelled by the coordinator: the reason is required and reaches the guardian
    match = visit["matches"][visit["young"]]
    with pytest.raises(Invalid):
        await confirmations.cancel_visit(match, as_staff(visit["coordinator"]), reason="  ")
    await confirmations.cancel_visit(match, as_staff(visit["coordinator"]), reason="台風の接近のため")
    cancelled = (await outbox_mails("visit_guardian", GUARDIAN))[-1]
    assert "取りやめ" in cancelled["Subject"] and "台風の接近のため" in mail_text(cancelled)
    assert all("台風の接近のため" in mail_text(m) for m in await outbox_mails("visit_cancelled"))
    assert await AuditEntry.count().where(AuditEntry.action == "visit_cancelled") == 1
    page = await guardians.status_view(token_of(cancelled))
    assert page["visits"][0]["state"] == "cancelled" and page["visits"][0]["address"] is None
    # every notice says when, which area, whom to call, and links to the status page; none gives the address
    for mail in await outbox_mails("visit_guardian", GUARDIAN):
        text = mail_text(mail)
        assert "10:00〜13:00" in text and "訪問先の地区：能見台" in text and "区 担当" in text
        assert ward.address in text and "/visits/guardian/" in text and "能見台1-2-" not in text


async def test_the_guardian_hears_who_goes_along_when_an_adult_leaves(db):
    visit = await offered_visit(adults=("山田 花子", "鈴木 一郎"), capacity=3)
    await everyone_accepts(visit)
    first, second = visit["adults"]
    confirmed = await outbox_mails("visit_guardian", GUARDIAN)
    assert "山田 花子さん、鈴木 一郎さん" in mail_text(confirmed[-1])
    await confirmations.respond(visit["matches"][first], first, side="student", accept=False, reason="体調不良")
    changed = (await outbox_mails("visit_guardian", GUARDIAN))[-1]
    assert "同行者が変わりました" in changed["Subject"]
    assert "鈴木 一郎さん" in mail_text(changed) and "山田 花子" not in mail_text(changed)
    # the last adult leaves: the hold is the safeguarding rule's (its own mail), not a "changed" notice
    await confirmations.respond(visit["matches"][second], second, side="student", accept=False, reason="急用")
    assert len(await outbox_mails("visit_guardian", GUARDIAN)) == len(confirmed) + 1
    assert len(await outbox_mails("safeguarding_hold", GUARDIAN)) == 1


async def test_one_answer_and_one_mail_per_household_per_slot(db):
    visit = await offered_visit()
    for student, match in visit["matches"].items():
        await confirmations.respond(match, student, side="student", accept=True)
        # the student said yes, the family has not: the state says so
        mine = (await confirmations.matches_of_student(student))[0]
        assert mine["state"] == "waiting_other" and mine["status"] == "confirmed_by_coordinator"
    family_view = confirmations.group_by_slot(await confirmations.matches_of_family(visit["host"]))
    assert len(family_view) == 1 and family_view[0]["answer_needed"] and len(family_view[0]["students"]) == 2
    result = await confirmations.respond_slot(visit["slot"], visit["host"], accept=True)
    assert result == {"slot": visit["slot"], "answered": 2, "status": "accepted"}
    assert await Registration.count().where(Registration.status == "confirmed") == 2
    family_mails = [m for m in await outbox_mails("visit_confirmed") if "訪問する学生" in mail_text(m)]
    assert len(family_mails) == 1 and "佐藤 結衣さん、山田 花子さん" in mail_text(family_mails[0])
    assert "/visits/events/" in mail_text(family_mails[0])
    # answering again changes nothing and mails nobody
    before = len(await outbox_mails())
    assert (await confirmations.respond_slot(visit["slot"], visit["host"], accept=True))["answered"] == 0
    assert len(await outbox_mails()) == before
    assert [m["state"] for m in await confirmations.matches_of_student(visit["young"])] == ["confirmed"]
    with pytest.raises(NotFound):  # another family cannot answer for this slot
        other, _ = await family("六浦")
        await confirmations.respond_slot(visit["slot"], other, accept=True)


async def test_a_student_confirmed_later_is_an_addition_not_a_second_confirmation(db):
    """The family answered once; the adult's visit is confirmed, the minor's later: the family's second mail
    says a student was added to the confirmed visit, it does not confirm the visit again."""
    visit = await offered_visit()
    await confirmations.respond_slot(visit["slot"], visit["host"], accept=True)
    adult = visit["adults"][0]
    await confirmations.respond(visit["matches"][adult], adult, side="student", accept=True)
    await confirmations.respond(visit["matches"][visit["young"]], visit["young"], side="student", accept=True)
    host_email = (await outbox_mails("visit_offer"))[-1]["To"]
    family = [m for m in await outbox_mails("visit_confirmed") if m["To"] == host_email]
    assert [m["Subject"] for m in family] == ["【金沢区ライフデザイン】家庭訪問が確定しました",
                                              "【金沢区ライフデザイン】確定した家庭訪問に、訪問する学生が加わりました"]
    assert "佐藤 結衣さんの参加が確定しました" in mail_text(family[1])
    everyone = next(line for line in mail_text(family[1]).splitlines() if line.startswith("・訪問する学生："))
    assert "山田 花子さん" in everyone and "佐藤 結衣さん" in everyone
    # each student's own mail is a confirmation, never an "addition"
    students = [m for m in await outbox_mails("visit_confirmed") if m["To"] != host_email]
    assert len(students) == 2 and all(m["Subject"].endswith("家庭訪問が確定しました") for m in students)


async def test_the_family_declines_a_slot_once_with_its_reason_for_the_coordinator(db):
    visit = await offered_visit()
    await confirmations.respond_slot(visit["slot"], visit["host"], accept=False, reason="家族が入院したため")
    assert await VisitMatch.count().where(VisitMatch.status == "declined") == 2
    coordinator_mails = [m for m in await outbox_mails("visit_declined") if "家族が入院したため" in mail_text(m)]
    assert len(coordinator_mails) == 1 and "佐藤 結衣、山田 花子" in mail_text(coordinator_mails[0])
    students = [m for m in await outbox_mails("visit_declined") if "ご家庭のご都合" in mail_text(m)]
    assert len(students) == 2 and all("家族が入院" not in mail_text(m) for m in students)
    told = (await outbox_mails("visit_guardian", GUARDIAN))[-1]
    assert "受け入れ家庭のご都合" in mail_text(told)
    assert [m["state"] for m in await confirmations.matches_of_student(visit["young"])] == ["declined_by_other"]


async def test_students_ask_for_offered_slots_or_any_slot(db):
    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    host, _ = await family("六浦")
    first = await rounds.offer_slot(host, round_id, starts_at=day(8, 10), ends_at=day(8, 12), capacity=2)
    choices = await rounds.slots_to_choose(round_id)
    assert [(c["id"], c["district"]) for c in choices] == [(first, "六浦")] and "household" not in choices[0]
    picky = await make_person("student", "picky@example.jp")
    anyone = await make_person("student", "any@example.jp")
    await requests.submit_request(picky, round_id, requests.RequestInput(windows=[(day(8, 10), day(8, 12))]))
    with pytest.raises(Invalid):  # neither a slot, a date nor "any slot"
        await requests.submit_request(anyone, round_id, requests.RequestInput(windows=[]))
    await requests.submit_request(anyone, round_id, requests.RequestInput(windows=[], any_time=True))
    # a slot offered after the request: the "any slot" student fits it, the picky one does not
    later = await rounds.offer_slot(host, round_id, starts_at=day(9, 14), ends_at=day(9, 16), capacity=1)
    data = await proposals.solver_input(round_id)
    fits = {r.student_id: r.windows for r in data.requests}
    assert (day(9, 14), day(9, 16)) in fits[anyone] and (day(9, 14), day(9, 16)) not in fits[picky]
    view = await proposals.proposal_view(await proposals.run_matching(round_id, as_staff(coordinator)),
                                         actor=as_staff(coordinator))
    assert {m["student"] for m in view["matches"]} == {picky, anyone} and later


async def test_a_minor_asking_for_any_slot_is_asked_about_until_requests_close(db):
    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    young = await young_student()
    request_id = await requests.submit_request(young, round_id, requests.RequestInput(windows=[], any_time=True))
    info = await consent.view([u for u in links_in((await outbox_mails("consent_request", GUARDIAN))[0])
                               if "/consent/" in u][0].rsplit("/", 1)[1])
    facts = dict(info["facts"])
    assert facts["訪問できる日時（ご本人の希望）"] == "受け入れ家庭が用意した枠のどれでも"
    assert "18歳以上の学生が必ず" in facts["一緒に訪問する学生"] and "お問い合わせ" in facts
    record = (await consent.records(consent.Subject("visit_request", request_id)))[0]
    assert record["expires_at"] >= (await rounds.get_round(round_id))["requests_close_at"]


async def _purge_links() -> int:
    """The retention category that removes them (the daily purge runs it with the others)."""
    return (await retention.run(only=["visit_guardian_links"], trigger="test")).done


async def test_guardian_links_expire_and_then_go(db):
    await offered_visit()
    token = token_of((await outbox_mails("visit_guardian", GUARDIAN))[0])
    with pytest.raises(NotFound):
        await guardians.status_view("not-a-token")
    links = await VisitGuardianLink.count()
    assert links == 2  # the consent confirmation's and the match notice's; only digests are stored
    assert await VisitGuardianLink.count().where(VisitGuardianLink.token_hash == token) == 0
    with clock.travel(timedelta(days=35)):  # past 30 days, and past a week after the visit
        with pytest.raises(DomainError) as gone:
            await guardians.status_view(token)
        assert gone.value.status == 410
        assert await _purge_links() == 0  # kept for the token retention after expiry
    with clock.travel(timedelta(days=40)):
        assert await _purge_links() == links
    assert await VisitGuardianLink.count() == 0


async def test_a_revoked_consent_closes_the_guardian_links(db):
    visit = await offered_visit()
    token = token_of((await outbox_mails("visit_guardian", GUARDIAN))[0])
    assert await guardians.status_view(token)
    await consent.decide(visit["consent_token"], "revoke", client="127.0.0.1")
    with pytest.raises(NotFound):
        await guardians.status_view(token)
    # the consent link itself still shows what happened
    assert (await guardians.status_view(visit["consent_token"]))["consent_state"] == "revoked"


async def test_the_confirmation_step_counts_who_gets_mail(db):
    coordinator = await make_person("coordinator")
    round_id = await open_round(coordinator)
    host, _ = await family("能見台")
    await rounds.offer_slot(host, round_id, starts_at=day(10, 10), ends_at=day(10, 13), capacity=2)
    young = await young_student()
    await requests.submit_request(young, round_id, requests.RequestInput(windows=[(day(10, 10), day(10, 13))]))
    await give_consent()
    adult = await make_person("student")
    await requests.submit_request(adult, round_id, requests.RequestInput(windows=[(day(10, 10), day(10, 13))]))
    proposal = await proposals.run_matching(round_id, as_staff(coordinator))
    preview = await proposals.confirmation_preview(proposal, actor=as_staff(coordinator))
    assert {k: preview[k] for k in ("offers", "families", "minors", "kept", "cancelled", "unmatched")} == {
        "offers": 2, "families": 1, "minors": 1, "kept": 0, "cancelled": 0, "unmatched": 0}
    before = len(await outbox_mails())
    await proposals.confirm_proposal(proposal, as_staff(coordinator))
    # exactly the mails the step announced: two students, one family, one guardian
    assert len(await outbox_mails()) - before == 4


async def test_a_visit_links_to_its_own_page_not_the_seminar_page(db):
    visit = await offered_visit()
    await everyone_accepts(visit)
    event = await Event.select(Event.id).first()
    assert signals.EVENT_PAGE.get("home_visit")(event["id"]) == f"/visits/events/{event['id']}"
    invite = next(p for p in (await outbox_mails("visit_confirmed"))[0].walk()
                  if p.get_content_type() == "text/calendar")
    url = next(line for line in invite.get_content().replace("\r\n ", "").splitlines() if line.startswith("URL"))
    assert url.endswith(f"/visits/events/{event['id']}")
    found = await confirmations.visit_of_event(event["id"], visit["young"], side="student")
    assert found["visit"]["state"] == "confirmed"
    slot = await confirmations.visit_of_event(event["id"], visit["host"], side="family")
    assert len(slot["slot"]["students"]) == 2
    with pytest.raises(NotFound):
        await confirmations.visit_of_event(event["id"], await make_person("student"), side="student")
