"""Guardian consent for minors, the lottery draw and its verification, exports, event validation."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from events import clock, consent
from events.errors import Conflict, DomainError, Invalid, NotFound
from events.seminars import draws, exports, registration, schedule
from events.seminars.tables import Event, GuardianConsent, LotteryDraw, Registration
from tests.conftest import as_person, as_staff, links_in, mail_text, outbox_mails
from tests.service.seminars_helpers import adult, coordinator, email_of, minor, new_event, soon


async def _status(registration_id: int) -> str:
    return (await Registration.select(Registration.status).where(Registration.id == registration_id).first())["status"]


async def _consent_token(guardian: str) -> str:
    mails = await outbox_mails("consent_request", guardian)
    assert len(mails) == 1
    link = [u for u in links_in(mails[0]) if "/consent/" in u][0]
    return link.rsplit("/consent/", 1)[1]


async def test_minor_holds_seat_until_guardian_consents(db):
    event_id = await new_event(capacity=1, title="ライフデザインセミナー ～仕事と子育て、わたしの未来～")
    student = await minor(guardian="mother@example.jp")
    reg = await registration.register(event_id, student)
    assert reg["status"] == "pending_consent"
    assert (await schedule.get_event(event_id))["remaining"] == 0
    assert len(await outbox_mails("seminar_pending_consent", await email_of(student))) == 1
    token = await _consent_token("mother@example.jp")
    shown = await consent.view(token)
    assert shown["state"] == "pending" and shown["student_name"] == "佐藤 結衣" and shown["may_answer"]
    assert "仕事と子育て" in shown["title"] and ("会場", "金沢公会堂") in shown["facts"]
    assert shown["text_version"] == "2025-1"
    stored = await GuardianConsent.select(GuardianConsent.token_hash).first()
    assert token not in stored["token_hash"]  # only the hash is kept
    outcome = await consent.decide(token, "give", client="203.0.113.9")
    assert outcome == {"decision": "given", "subject_kind": "registration", "subject_id": reg["id"]}
    assert await _status(reg["id"]) == "confirmed"
    with pytest.raises(Conflict) as twice:
        await consent.decide(token, "refuse", client="203.0.113.9")
    assert twice.value.code == "consent_already_decided"
    record = (await consent.records(consent.Subject("registration", reg["id"])))[0]
    assert record["decision"] == "given" and record["decided_from"] == "203.0.113.9" and "佐藤 結衣" in record["purpose"]
    assert len(await outbox_mails("seminar_consent_outcome", await email_of(student))) == 1
    assert len(await outbox_mails("consent_outcome", "mother@example.jp")) == 1


async def test_the_guardian_page_says_what_ended_the_application(db):
    """A request the guardian had not answered yet closes when the place ends; the page says why, in the words
    of events.consent.ENDED_BY — the student, the ward, or the event's cancellation. Control: a request withdrawn
    without a known cause keeps the general sentence."""
    by = await coordinator()
    event_id = await new_event(by, capacity=5)
    shown = {}
    for who in ("student", "coordinator", "event", "unknown"):
        student = await minor(guardian=f"{who}-parent@example.jp")
        reg = await registration.register(event_id if who != "event" else await new_event(by, capacity=5), student)
        assert reg["status"] == "pending_consent"
        token = await _consent_token(f"{who}-parent@example.jp")
        if who == "student":
            await registration.cancel_registration(reg["id"], actor=as_person(student))
        elif who == "coordinator":
            await registration.cancel_registration(reg["id"], actor=as_staff(by), reason="定員の見直し")
        elif who == "event":
            held = (await Registration.select(Registration.event).where(Registration.id == reg["id"]).first())["event"]
            await schedule.cancel_event(held, actor=as_staff(by), reason="台風の接近のため")
        else:
            from events.db import write_transaction

            async with write_transaction():
                await consent.withdraw(consent.Subject("registration", reg["id"]))
        view = await consent.view(token)
        assert view["state"] == "withdrawn" and not view["may_answer"]
        shown[who] = view["ended"]
    assert shown == {"student": consent.ENDED_BY["student"], "coordinator": consent.ENDED_BY["coordinator"],
                     "event": consent.ENDED_BY["event"], "unknown": consent.ENDED_UNKNOWN}
    assert len(set(shown.values())) == 4


async def test_refusal_releases_seat_to_waitlist(db):
    event_id = await new_event(capacity=1, offer_hours=0)
    student = await minor(guardian="father@example.jp")
    waiter = await adult()
    reg = await registration.register(event_id, student)
    wait = await registration.register(event_id, waiter)
    assert wait["status"] == "waitlisted"
    await consent.decide(await _consent_token("father@example.jp"), "refuse", client="client")
    assert await _status(reg["id"]) == "cancelled"
    assert await _status(wait["id"]) == "confirmed"
    student_mails = await outbox_mails("seminar_consent_outcome", await email_of(student))
    assert len(student_mails) == 1 and "取り消し" in mail_text(student_mails[0])
    assert len(await outbox_mails("seminar_promoted", await email_of(waiter))) == 1


async def test_expiry_job_releases_seat(db):
    event_id = await new_event(capacity=1, offer_hours=0)
    student = await minor(guardian="g@example.jp")
    waiter = await adult()
    reg = await registration.register(event_id, student)
    wait = await registration.register(event_id, waiter)
    token = await _consent_token("g@example.jp")
    assert await consent.expire_due() == 0  # nothing due yet
    with clock.travel(timedelta(hours=73)):
        assert await consent.expire_due() == 1
        assert await consent.expire_due() == 0  # idempotent
    assert await _status(reg["id"]) == "cancelled" and await _status(wait["id"]) == "confirmed"
    assert (await consent.view(token))["state"] == "expired"
    with pytest.raises(Conflict):
        await consent.decide(token, "give", client="late")
    with pytest.raises(NotFound):
        await consent.view("not-a-token")
    assert len(await outbox_mails("consent_outcome", "g@example.jp")) == 1  # the guardian is told once


async def test_expired_but_not_yet_processed_is_refused(db):
    event_id = await new_event(capacity=1)
    await registration.register(event_id, await minor(guardian="late@example.jp"))
    token = await _consent_token("late@example.jp")
    with clock.travel(timedelta(hours=72, minutes=1)), pytest.raises(DomainError) as refused:
        await consent.decide(token, "give", client="x")  # the job has not run yet: the page still refuses
    assert refused.value.code == "consent_expired" and refused.value.status == 410


async def test_minor_promoted_from_waitlist_needs_consent(db):
    event_id = await new_event(capacity=1, offer_hours=0)
    first = await adult()
    student = await minor(guardian="mum@example.jp")
    r1 = await registration.register(event_id, first)
    r2 = await registration.register(event_id, student)
    assert r2["status"] == "waitlisted"
    await registration.cancel_registration(r1["id"], actor=as_person(first))
    assert await _status(r2["id"]) == "pending_consent"
    assert "保護者" in mail_text((await outbox_mails("seminar_promoted", await email_of(student)))[0])
    assert len(await outbox_mails("consent_request", "mum@example.jp")) == 1


async def test_lottery_draw_confirms_winners_waitlists_rest_in_draw_order(db):
    coord = await coordinator()
    event_id = await new_event(coord, capacity=2, allocation="lottery", offer_hours=0,
                               registration_closes_at=soon(5).isoformat())
    applicants = [await adult(f"応募{i}") for i in range(5)]
    regs = [await registration.register(event_id, p) for p in applicants]
    assert {r["status"] for r in regs} == {"applied"} and len({r["lottery_ticket"] for r in regs}) == 5
    assert (await schedule.get_event(event_id))["applied_count"] == 5
    by_ticket = {r["lottery_ticket"]: r["id"] for r in regs}
    result = await draws.draw_lottery(event_id, actor=as_staff(coord))
    assert len(result["winners"]) == 2 and len(result["waitlist"]) == 3
    for ticket in result["winners"]:
        assert await _status(by_ticket[ticket]) == "confirmed"
    ranks = [(await registration.get_registration(by_ticket[t], actor=as_staff(None)))["waitlist_rank"]
             for t in result["waitlist"]]
    assert ranks == [1, 2, 3]
    by_reg = {r["id"]: p for r, p in zip(regs, applicants, strict=True)}
    for ticket in result["winners"]:
        won = await outbox_mails("seminar_lottery_won", await email_of(by_reg[by_ticket[ticket]]))
        assert len(won) == 1 and ticket in mail_text(won[0])  # each applicant sees their own ticket
    for ticket in result["waitlist"]:
        assert len(await outbox_mails("seminar_lottery_lost", await email_of(by_reg[by_ticket[ticket]]))) == 1
    with pytest.raises(Conflict) as again:
        await draws.draw_lottery(event_id, actor=as_staff(coord))
    assert again.value.code == "lottery_already_drawn"
    verified = await draws.verify_draw(event_id)
    assert verified["ok"] is True
    # tampering with the record is detected
    await LotteryDraw.update({LotteryDraw.winners: list(reversed(result["waitlist"][:2]))}).where(LotteryDraw.event == event_id)
    assert (await draws.verify_draw(event_id))["ok"] is False
    # after the draw, a cancellation promotes in draw order
    await registration.cancel_registration(by_ticket[result["winners"][0]], actor=as_staff(coord))
    assert await _status(by_ticket[result["waitlist"][0]]) == "confirmed"


async def test_the_seed_is_committed_before_anyone_applies(db):
    from events import lottery

    event_id = await new_event(capacity=1, allocation="lottery", registration_closes_at=soon(5).isoformat())
    published = await draws.public_record(event_id)
    assert len(published["commitment"]) == 64 and published["seed"] is None  # the seed stays secret until the draw
    await registration.register(event_id, await adult())
    result = await draws.draw_lottery(event_id)
    assert lottery.commitment(result["seed"]) == published["commitment"]
    revealed = await draws.public_record(event_id)
    assert revealed["seed"] == result["seed"] and revealed["commitment"] == published["commitment"]
    assert [e["size"] for e in revealed["entries"]] == [1]


async def test_worker_job_draws_closed_lotteries_only(db):
    open_event = await new_event(capacity=1, allocation="lottery", registration_closes_at=soon(5).isoformat())
    closing = await new_event(capacity=1, allocation="lottery", registration_closes_at=soon(5).isoformat())
    for event_id in (open_event, closing):
        await registration.register(event_id, await adult())
        await registration.register(event_id, await adult())
    await Event.update({Event.registration_closes_at: soon(1)}).where(Event.id == closing)
    with clock.travel(timedelta(days=1, minutes=1)):
        assert await draws.draw_due_lotteries() == 1
        assert await draws.draw_due_lotteries() == 0
    assert (await schedule.get_event(closing))["lottery_drawn_at"] is not None
    assert (await schedule.get_event(open_event))["lottery_drawn_at"] is None


async def test_exports_have_japanese_headers_bom_and_answers(db):
    event_id = await new_event(capacity=1, questions=[{"kind": "multi", "label": "関心", "options": ["仕事", "子育て"]}])
    qid = str((await schedule.get_event(event_id))["questions"][0]["id"])
    await registration.register(event_id, await adult("=HYPERLINK(1)"), answers={qid: ["仕事", "子育て"]})
    await registration.register(event_id, await minor("高校 花子"))
    body = await exports.export(event_id, "csv", actor=as_staff(None))
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:4] == ["申込番号", "状態", "キャンセル待ち順", "氏名"] and rows[0][-1] == "関心"
    assert rows[1][1] == "参加確定" and rows[1][3] == "'=HYPERLINK(1)" and rows[1][-1] == "仕事、子育て"
    minor_row = dict(zip(rows[0], rows[2], strict=False))
    assert minor_row["状態"] == "キャンセル待ち" and minor_row["キャンセル待ち順"] == "1" and minor_row["18歳未満"] == "はい"
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(await exports.export(event_id, "xlsx", actor=as_staff(None)))).active
    assert sheet["A1"].value == "申込番号" and sheet.max_row == 3


async def test_event_validation_codes(db):
    coord = await coordinator()
    start = soon(10)
    base = {"title": "セミナー", "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat(),
            "capacity": 10}
    cases = [
        ({"starts_at": "2026-12-01T10:00:00"}, "datetime_without_offset"),
        ({"starts_at": "明日"}, "invalid_datetime"),
        ({"ends_at": start.isoformat()}, "ends_before_starts"),
        ({"capacity": 0}, "out_of_range"),
        ({"kind": "party"}, "invalid_kind"),
        ({"audience": "everyone"}, "invalid_audience"),
        ({"allocation": "lottery"}, "lottery_needs_close"),
        ({"registration_closes_at": (start + timedelta(hours=2)).isoformat()}, "window_after_start"),
        ({"registration_opens_at": soon(3).isoformat(), "registration_closes_at": soon(2).isoformat()}, "window_inverted"),
        ({"title": "  "}, "missing_field"),
        ({"questions": [{"kind": "single", "label": "一つだけ", "options": ["A"]}]}, "options_required"),
        ({"color": "red"}, "unknown_field"),
    ]
    for change, code in cases:
        with pytest.raises(Invalid) as refused:
            await schedule.create_event({**base, **change}, actor=as_staff(coord))
        assert refused.value.code == code, change


async def test_overlap_warning_duplicate_and_listings(db):
    coord = await coordinator()
    start = soon(12)
    first = await new_event(coord, starts_at=start, venue="金沢公会堂")
    second = await new_event(coord, starts_at=start + timedelta(hours=1), venue="金沢公会堂 ")
    elsewhere = await new_event(coord, starts_at=start, venue="金沢区役所")
    overlaps = await schedule.overlapping_events("金沢公会堂", start, start + timedelta(hours=2), exclude_id=first)
    assert [o["id"] for o in overlaps] == [second]
    result = await schedule.update_event(first, {"description": "説明"}, actor=as_staff(coord))
    assert [w["event_id"] for w in result["warnings"]] == [second]
    copy = await schedule.duplicate_event(first, actor=as_staff(coord), starts_at=(start + timedelta(days=7)).isoformat(),
                                          venue="横浜市立金沢高等学校")
    copied = await schedule.get_event(copy)
    assert copied["status"] == "draft" and copied["venue"] == "横浜市立金沢高等学校"
    assert copied["ends_at"] - copied["starts_at"] == timedelta(hours=2)
    await Event.update({Event.visibility: "private"}).where(Event.id == elsewhere)
    public = [e["id"] for e in await schedule.list_public_events()]
    assert first in public and second in public and elsewhere not in public and copy not in public
    week = await schedule.list_events_between(start - timedelta(days=1), start + timedelta(days=1))
    assert {e["id"] for e in week} == {first, second, elsewhere}
    await schedule.cancel_event(second, actor=as_staff(coord))
    assert await schedule.overlapping_events("金沢公会堂", start, start + timedelta(hours=2), exclude_id=first) == []
