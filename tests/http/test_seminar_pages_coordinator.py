"""Coordinator pages of seminars: guards, the event form with questions, overlap warning, publish / duplicate /
cancel, calendars, registrations with counter registration and audit, CSV / XLSX, lottery, check-in."""

from __future__ import annotations

import io
import re
import secrets
from datetime import timedelta
from urllib.parse import unquote

from events import clock, people
from events.core.tables import AuditEntry
from events.seminars import registration, schedule
from events.seminars.tables import Event
from tests.conftest import as_staff, csrf_from, login, mail_text, make_person, outbox_mails
from tests.http.test_seminar_pages import coordinator, minor_student, new_event, soon, student


async def as_coordinator(client) -> int:
    email = f"coord-{secrets.token_hex(3)}@ward.example.jp"
    person_id = await make_person("coordinator", email, name="金沢 花子")
    await login(client, email)
    return person_id


async def test_students_and_anonymous_cannot_open_coordinator_pages(client):
    event_id = await new_event()
    anonymous = await client.get("/coordinator/events", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=/coordinator/events")
    await login(client, await student())
    for path in ("/coordinator/events", "/coordinator/calendar?view=month", "/coordinator/events/new",
                 f"/coordinator/events/{event_id}", f"/coordinator/events/{event_id}/registrations",
                 f"/coordinator/events/{event_id}/registrations.csv", f"/coordinator/events/{event_id}/checkin"):
        refused = await client.get(path)
        assert refused.status_code == 403, path
        assert "この操作を行う権限がありません" in refused.text and 'role="alert"' in refused.text
    home = await client.get("/")
    refused = await client.post(f"/coordinator/events/{event_id}/cancel", data={"_csrf": csrf_from(home.text)})
    assert refused.status_code == 403
    assert (await schedule.get_event(event_id))["status"] == "published"


def event_form(token: str, **overrides) -> dict[str, str]:
    start = (soon(14) + timedelta(hours=9)).strftime("%Y-%m-%dT10:00")  # Tokyo wall time, as the browser sends it
    end = start[:11] + "12:00"
    form = {"_csrf": token, "kind": "seminar", "title": "働き方と家族のセミナー", "venue": "金沢公会堂 第1会議室",
            "starts_at": start, "ends_at": end, "capacity": "30", "audience": "students", "allocation": "first_come",
            "cancel_cutoff_hours": "24", "q_count": "2",
            "q0_label": "参加の動機", "q0_kind": "text", "q0_required": "1", "q0_options": "",
            "q1_label": "参加方法", "q1_kind": "single", "q1_options": "会場\r\nオンライン\r\n", "action": "save"}
    form.update(overrides)
    return form


async def test_create_edit_publish_duplicate_cancel_through_the_form(client):
    await as_coordinator(client)
    blank = await client.get("/coordinator/events/new")
    assert blank.status_code == 200 and '<label for="title">' in blank.text and 'name="q1_label"' in blank.text
    token = csrf_from(blank.text)

    more = await client.post("/coordinator/events/new", data=event_form(token, action="add_question"))
    assert more.status_code == 200 and 'name="q3_label"' in more.text and 'value="参加の動機"' in more.text
    assert await Event.count() == 0

    bad = event_form(token)
    bad["ends_at"] = bad["starts_at"][:11] + "09:00"
    refused = await client.post("/coordinator/events/new", data=bad)
    assert refused.status_code == 422 and "終了日時は開始日時より後にしてください" in refused.text
    assert 'role="alert"' in refused.text and 'value="働き方と家族のセミナー"' in refused.text  # nothing typed lost

    created = await client.post("/coordinator/events/new", data=event_form(token), follow_redirects=False)
    assert created.status_code == 303
    event_id = int(re.search(r"/coordinator/events/(\d+)", created.headers["location"]).group(1))
    event = await schedule.get_event(event_id)
    assert event["status"] == "draft" and event["capacity"] == 30
    assert event["starts_at"].astimezone(schedule.UTC).hour == 1  # 10:00 in Tokyo is 01:00 UTC
    assert [(q["kind"], q["label"], q["required"], q["options"]) for q in event["questions"]] == [
        ("text", "参加の動機", True, []), ("single", "参加方法", False, ["会場", "オンライン"])]

    # another event at the same venue and time: the manage page warns
    other = await new_event(title="重なる講座", venue="金沢公会堂 第1会議室",
                            starts_at=event["starts_at"] - timedelta(minutes=30))
    manage = await client.get(f"/coordinator/events/{event_id}")
    assert "同じ会場で時間が重なるイベントがあります" in manage.text and f"/coordinator/events/{other}" in manage.text

    edit = await client.get(f"/coordinator/events/{event_id}/edit")
    assert 'value="参加の動機"' in edit.text and "会場\nオンライン" in edit.text
    form = event_form(csrf_from(edit.text), venue="金沢区役所 5階", capacity="25")
    saved = await client.post(f"/coordinator/events/{event_id}/edit", data=form, follow_redirects=False)
    assert saved.status_code == 303
    event = await schedule.get_event(event_id)
    assert event["venue"] == "金沢区役所 5階" and event["capacity"] == 25 and len(event["questions"]) == 2

    published = await client.post(f"/coordinator/events/{event_id}/publish", data={"_csrf": token}, follow_redirects=False)
    assert published.status_code == 303
    assert (await schedule.get_event(event_id))["status"] == "published"

    duplicated = await client.post(f"/coordinator/events/{event_id}/duplicate",
                                   data={"_csrf": token, "starts_at": form["starts_at"][:8] + "28T13:00",
                                         "venue": "金沢地区センター"}, follow_redirects=False)
    copy_id = int(re.search(r"/coordinator/events/(\d+)", duplicated.headers["location"]).group(1))
    copy = await schedule.get_event(copy_id)
    assert copy_id != event_id and copy["status"] == "draft" and copy["venue"] == "金沢地区センター"
    assert len(copy["questions"]) == 2

    attendee = await student()
    await registration.register(event_id, (await people.find_by_email(attendee))["id"],
                                answers={str(event["questions"][0]["id"]): "興味があります"})
    # irreversible, and people are told: a confirmation step that says so, and the reason is required
    asked = await client.post(f"/coordinator/events/{event_id}/cancel", data={"_csrf": token, "reason": ""})
    assert asked.status_code == 200 and "中止しますか" in asked.text and "1名の方にメールでお知らせします" in asked.text
    assert 'name="confirmed" value="1"' in asked.text and (await schedule.get_event(event_id))["status"] == "published"
    blank = await client.post(f"/coordinator/events/{event_id}/cancel",
                              data={"_csrf": token, "reason": " ", "confirmed": "1"})
    assert blank.status_code == 422 and "中止の理由を入力してください" in blank.text
    assert (await schedule.get_event(event_id))["status"] == "published" and 'aria-invalid="true"' in blank.text
    cancelled = await client.post(f"/coordinator/events/{event_id}/cancel",
                                  data={"_csrf": token, "reason": "台風のため", "confirmed": "1"}, follow_redirects=False)
    assert cancelled.status_code == 303
    assert (await schedule.get_event(event_id))["status"] == "cancelled"
    assert len(await outbox_mails("seminar_event_cancelled", attendee)) == 1
    listing = await client.get("/coordinator/events?status=cancelled")
    assert "働き方と家族のセミナー" in listing.text and "重なる講座" not in listing.text


async def test_month_and_week_calendar(client):
    await as_coordinator(client)
    start = soon(30).replace(hour=5, minute=0, second=0)  # 14:00 in Tokyo
    event_id = await new_event(title="十二月のセミナー", starts_at=start)
    day = start.date().isoformat()
    month = await client.get(f"/coordinator/calendar?view=month&date={day}")
    assert month.status_code == 200 and "<caption>" in month.text and '<th scope="col">月</th>' in month.text
    assert f"{start.year}年{start.month}月" in month.text and f'href="/coordinator/events/{event_id}"' in month.text
    assert "14:00 十二月のセミナー" in month.text
    week = await client.get(f"/coordinator/calendar?view=week&date={day}")
    assert week.status_code == 200 and "十二月のセミナー" in week.text and 'scope="row"' in week.text
    elsewhere = await client.get(f"/coordinator/calendar?view=week&date={(start + timedelta(days=14)).date()}")
    assert "十二月のセミナー" not in elsewhere.text
    assert (await client.get("/coordinator/calendar?view=month&date=nonsense")).status_code == 200


async def test_registrations_page_counter_registration_exports_and_audit(client):
    from openpyxl import load_workbook

    me = await as_coordinator(client)
    event_id = await schedule.create_event({
        "title": "ライフデザイン/セミナー", "starts_at": soon(5).isoformat(), "ends_at": soon(5, 2).isoformat(),
        "capacity": 1, "questions": [{"kind": "text", "label": "質問したいこと"}]}, actor=as_staff(me))
    await schedule.publish_event(event_id, actor=as_staff(me))
    question = (await schedule.get_event(event_id))["questions"][0]["id"]
    minor_email = await minor_student(f"parent-{secrets.token_hex(2)}@example.jp")
    await registration.register(event_id, (await people.find_by_email(minor_email))["id"],
                                answers={str(question): "=1+1 両立について"})

    page = await client.get(f"/coordinator/events/{event_id}/registrations")
    assert page.status_code == 200 and "佐藤 結衣" in page.text and "18歳未満" in page.text
    assert "=1+1 両立について" in page.text and "保護者の同意待ち" in page.text
    viewed = await AuditEntry.select().where(AuditEntry.action == "staff_viewed_registrations")
    assert viewed and viewed[-1]["actor"] == me and viewed[-1]["subject_id"] == str(event_id)

    counter = await client.post(f"/coordinator/events/{event_id}/registrations",
                                data={"_csrf": csrf_from(page.text), "email": "Phone.Caller@Example.jp",
                                      "name": "電話 太郎", "participant": "adult"}, follow_redirects=False)
    assert counter.status_code == 303
    rows = await registration.list_registrations(event_id, actor=as_staff(None))
    caller = [r for r in rows if r["email"] == "phone.caller@example.jp"]
    assert caller and caller[0]["status"] == "waitlisted" and caller[0]["waitlist_rank"] == 1
    again = await client.post(f"/coordinator/events/{event_id}/registrations",
                              data={"_csrf": csrf_from(page.text), "email": "phone.caller@example.jp", "name": "電話 太郎",
                                    "participant": "adult"})
    assert again.status_code == 409 and "既にお申し込みいただいています" in again.text
    waiting = await client.get(f"/coordinator/events/{event_id}/registrations?status=waitlisted")
    assert "電話 太郎" in waiting.text and "佐藤 結衣" not in waiting.text

    csv_response = await client.get(f"/coordinator/events/{event_id}/registrations.csv")
    assert csv_response.status_code == 200
    disposition = csv_response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and 'filename="event-' in disposition
    assert "申込者一覧" in unquote(disposition.split("filename*=UTF-8''")[1]) and "/" not in unquote(
        disposition.split("filename*=UTF-8''")[1])
    body = csv_response.content
    assert body.startswith(b"\xef\xbb\xbf")
    text = body.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("申込番号,状態") and "質問したいこと" in text.splitlines()[0]
    assert "'=1+1" in text  # no formula runs in Excel

    xlsx = await client.get(f"/coordinator/events/{event_id}/registrations.xlsx?status=waitlisted")
    assert xlsx.status_code == 200 and "spreadsheetml" in xlsx.headers["content-type"]
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    values = list(sheet.values)
    assert values[0][:2] == ("申込番号", "状態") and len(values) == 2 and "電話 太郎" in values[1]
    exported = await AuditEntry.select().where(AuditEntry.action == "staff_exported_registrations")
    assert len(exported) == 2

    # a coordinator cancels the minor's place from the list; the caller on the waiting list is offered the seat
    minor_reg = [r for r in rows if r["name"] == "佐藤 結衣"][0]
    cancelled = await client.post(f"/registrations/{minor_reg['id']}/cancel", follow_redirects=False, data={
        "_csrf": csrf_from(page.text), "next": f"/coordinator/events/{event_id}/registrations", "confirmed": "1"})
    assert cancelled.status_code == 303 and cancelled.headers["location"].endswith("/registrations")
    statuses = {r["name"]: r["status"] for r in await registration.list_registrations(event_id, actor=as_staff(None))}
    assert statuses == {"佐藤 結衣": "cancelled", "電話 太郎": "offered"}
    assert await AuditEntry.count().where(AuditEntry.action == "staff_cancelled_registration") == 1
    listed = await client.get(f"/coordinator/events/{event_id}/registrations")
    assert "繰り上げのご案内中" in listed.text and "返事の期限" in listed.text


async def test_lottery_draw_and_verify_buttons(client):
    me = await as_coordinator(client)
    start = soon(9)
    event_id = await schedule.create_event({
        "title": "抽選セミナー", "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat(),
        "capacity": 1, "allocation": "lottery", "registration_closes_at": (start - timedelta(days=1)).isoformat()}, actor=as_staff(me))
    await schedule.publish_event(event_id, actor=as_staff(me))
    applicants = [await student() for _ in range(3)]
    for email in applicants:
        assert (await registration.register(event_id, (await people.find_by_email(email))["id"]))["status"] == "applied"
    page = await client.get(f"/coordinator/events/{event_id}")
    assert "今すぐ抽選する" in page.text
    asked = await client.post(f"/coordinator/events/{event_id}/draw", data={"_csrf": csrf_from(page.text)})
    assert asked.status_code == 200 and "抽選を今すぐ行いますか" in asked.text
    assert "抽選申込 3名から、空いている 1 席を抽選します" in asked.text and "3名の方にメールでお知らせします" in asked.text
    assert (await schedule.get_event(event_id))["lottery_drawn_at"] is None  # nothing happened yet
    drawn = await client.post(f"/coordinator/events/{event_id}/draw", data={"_csrf": csrf_from(page.text), "confirmed": "1"},
                              follow_redirects=False)
    assert drawn.status_code == 303
    result = await client.get(drawn.headers["location"])
    assert "抽選を行いました" in result.text and "シード値" in result.text and "今すぐ抽選する" not in result.text
    statuses = sorted(r["status"] for r in await registration.list_registrations(event_id, actor=as_staff(None)))
    assert statuses == ["confirmed", "waitlisted", "waitlisted"]
    verified = await client.get(f"/coordinator/events/{event_id}?verify=1")
    assert "同じ結果になります" in verified.text
    twice = await client.post(f"/coordinator/events/{event_id}/draw", data={"_csrf": csrf_from(page.text), "confirmed": "1"})
    assert twice.status_code == 409 and "既に抽選済み" in twice.text


async def test_checkin_search_by_kana_and_mark_attendance(client):
    await as_coordinator(client)
    event_id = await new_event(starts_at=soon(0, 1), capacity=5)
    emails = [await student(name="山田 花", kana="やまだ はな"), await student(name="高橋 翔", kana="タカハシ ショウ")]
    regs = [await registration.register(event_id, (await people.find_by_email(e))["id"]) for e in emails]
    page = await client.get(f"/coordinator/events/{event_id}/checkin?q=たかはし")
    assert page.status_code == 200 and "高橋 翔" in page.text and "山田 花" not in page.text
    assert ">出席</button>" in page.text and ">欠席</button>" in page.text
    marked = await client.post(f"/coordinator/registrations/{regs[1]['id']}/attendance",
                               data={"_csrf": csrf_from(page.text), "status": "attended", "q": "たかはし"},
                               follow_redirects=False)
    assert marked.status_code == 303 and "checkin?q=" in marked.headers["location"]
    assert (await registration.get_registration(regs[1]["id"], actor=as_staff(None)))["status"] == "attended"
    after = await client.get(marked.headers["location"])
    assert "うち出席 1名" in after.text and "記録を取り消す" in after.text
    assert await AuditEntry.count().where(AuditEntry.action == "staff_checkin_search") >= 2

    later = await new_event(starts_at=soon(3))
    reg = await registration.register(later, (await people.find_by_email(emails[0]))["id"])
    early = await client.post(f"/coordinator/registrations/{reg['id']}/attendance",
                              data={"_csrf": csrf_from(page.text), "status": "attended"})
    assert early.status_code == 409 and "出欠は開催当日から記録できます" in early.text and 'role="alert"' in early.text


async def test_coordinator_nav_entry(client):
    await coordinator()
    await as_coordinator(client)
    home = await client.get("/")
    assert 'href="/coordinator/events"' in home.text and "イベント管理" in home.text


async def test_complete_after_start_and_filters(client):
    await as_coordinator(client)
    event_id = await new_event(title="始まったセミナー", starts_at=soon(0, 1))
    await new_event(title="別のセミナー", kind="staff_exchange", audience="facility_staff")
    page = await client.get(f"/coordinator/events/{event_id}")
    assert "終了にする" not in page.text  # not before the start
    with clock.travel(timedelta(hours=1, minutes=30)):  # the event (an hour ahead) has started
        page = await client.get(f"/coordinator/events/{event_id}")
        done = await client.post(f"/coordinator/events/{event_id}/complete", data={"_csrf": csrf_from(page.text)},
                                 follow_redirects=False)
    assert done.status_code == 303 and (await schedule.get_event(event_id))["status"] == "completed"
    found = await client.get("/coordinator/events?q=始まった")
    assert "始まったセミナー" in found.text and "別のセミナー" not in found.text
    exchanges = await client.get("/coordinator/events?kind=staff_exchange")
    assert "別のセミナー" in exchanges.text and "始まったセミナー" not in exchanges.text


async def test_editing_only_the_capacity_mails_nobody_but_a_new_venue_mails_everyone(client):
    await as_coordinator(client)
    event_id = await new_event(starts_at=soon(6).replace(second=37), capacity=2)  # stored with seconds
    attendee = await student()
    await registration.register(event_id, (await people.find_by_email(attendee))["id"])
    edit = await client.get(f"/coordinator/events/{event_id}/edit")
    form = {name: value for name, value in re.findall(r'<input id="[^"]+" (?:type="[^"]+" )?name="([^"]+)" value="([^"]*)"',
                                                      edit.text)}
    form.update(_csrf=csrf_from(edit.text), kind="seminar", audience="students", allocation="first_come",
                description="", description_en="", q_count="0", capacity="5", action="save")
    saved = await client.post(f"/coordinator/events/{event_id}/edit", data=form, follow_redirects=False)
    assert saved.status_code == 303
    event = await schedule.get_event(event_id)
    assert event["capacity"] == 5 and event["starts_at"].second == 37
    assert await outbox_mails("seminar_changed", attendee) == []
    assert await outbox_mails("invite_update", attendee) == []
    form.update(venue="金沢区役所 5階")
    await client.post(f"/coordinator/events/{event_id}/edit", data=form, follow_redirects=False)
    assert (await schedule.get_event(event_id))["venue"] == "金沢区役所 5階"
    # the confirmed attendee hears of it once: by the updated calendar invite, which names the new venue
    updates = await outbox_mails("invite_update", attendee)
    assert len(updates) == 1 and "金沢区役所 5階" in mail_text(updates[0])
    assert await outbox_mails("seminar_changed", attendee) == []


async def test_allocation_settings_through_the_form_and_declaring_a_draw_void(client):
    await as_coordinator(client)
    blank = await client.get("/coordinator/events/new")
    assert 'name="priority_ward"' in blank.text and 'name="offer_hours" min="0" max="336" value="48"' in blank.text
    token = csrf_from(blank.text)
    closes = (soon(10) + timedelta(hours=9)).strftime("%Y-%m-%dT10:00")
    form = event_form(token, allocation="lottery", registration_closes_at=closes, priority_ward="1",
                      priority_university="1", max_companions="2", offer_hours="24", offer_fallback_hours="6",
                      ask_accommodation="1", one_per_series="1", series="働き方セミナー")
    refused = await client.post("/coordinator/events/new", data={**form, "max_companions": "9"})
    assert refused.status_code == 422 and 'id="max_companions"' in refused.text and 'aria-invalid="true"' in refused.text
    assert 'name="priority_ward" value="1" checked' in refused.text  # nothing typed is lost
    created = await client.post("/coordinator/events/new", data=form, follow_redirects=False)
    assert created.status_code == 303
    event = await schedule.get_event(int(re.search(r"/coordinator/events/(\d+)", created.headers["location"]).group(1)))
    assert event["priority_rules"] == ["ward", "university"]  # in the service's order of rank
    assert (event["max_companions"], event["offer_hours"], event["offer_fallback_hours"]) == (2, 24, 6)
    assert event["ask_accommodation"] is True and event["one_per_series"] is True
    edit = await client.get(f"/coordinator/events/{event['id']}/edit")
    assert 'name="priority_ward" value="1" checked' in edit.text and 'name="priority_first_time" value="1" >' in edit.text
    await schedule.publish_event(event["id"], actor=as_staff(None))
    for _ in range(2):
        email = await student()
        await registration.register(event["id"], (await people.find_by_email(email))["id"], ward_tie="lives",
                                    accommodation="車いすで参加します",
                                    answers={str(event["questions"][0]["id"]): "将来を考えたい"})
    regs = await client.get(f"/coordinator/events/{event['id']}/registrations")
    assert "車いすで参加します" in regs.text and "金沢区にお住まい・通学・通勤の方" in regs.text

    page = await client.get(f"/coordinator/events/{event['id']}")
    await client.post(f"/coordinator/events/{event['id']}/draw", data={"_csrf": csrf_from(page.text), "confirmed": "1"})
    page = await client.get(f"/coordinator/events/{event['id']}")
    assert "抽選を無効と宣言する" in page.text and f'href="/events/{event["id"]}/lottery"' in page.text
    blank_reason = await client.post(f"/coordinator/events/{event['id']}/draw/cancel",
                                     data={"_csrf": csrf_from(page.text), "reason": " "})
    assert blank_reason.status_code == 422 and "理由を入力してください" in blank_reason.text
    void = await client.post(f"/coordinator/events/{event['id']}/draw/cancel",
                             data={"_csrf": csrf_from(page.text), "reason": "申込締切を誤って設定したため"})
    assert void.status_code == 200 and "抽選を無効と宣言しました" in void.text
    assert "この抽選は無効と宣言されています" in void.text and "抽選を無効と宣言する" not in void.text
    assert await AuditEntry.count().where(AuditEntry.action == "lottery_cancelled") == 1


async def test_saving_a_past_start_or_a_booked_venue_asks_first(client):
    await as_coordinator(client)
    blank = await client.get("/coordinator/events/new")
    token = csrf_from(blank.text)
    past = (soon(-3) + timedelta(hours=9)).strftime("%Y-%m-%dT10:00")
    form = event_form(token, starts_at=past, ends_at=past[:11] + "12:00")
    asked = await client.post("/coordinator/events/new", data=form)
    assert asked.status_code == 200 and "まだ保存していません" in asked.text and "が過去になっています" in asked.text
    assert 'name="confirmed" value="1"' in asked.text and 'value="働き方と家族のセミナー"' in asked.text
    assert await Event.count() == 0
    saved = await client.post("/coordinator/events/new", data={**form, "confirmed": "1"}, follow_redirects=False)
    assert saved.status_code == 303 and await Event.count() == 1

    # an edit that moves an event onto a booked venue and time asks too; an untouched time does not
    future = event_form(token)
    first = await client.post("/coordinator/events/new", data=future, follow_redirects=False)
    second = await client.post("/coordinator/events/new", data={**future, "venue": "金沢地区センター"},
                               follow_redirects=False)
    assert first.status_code == second.status_code == 303
    second_id = int(re.search(r"/coordinator/events/(\d+)", second.headers["location"]).group(1))
    moved = await client.post(f"/coordinator/events/{second_id}/edit", data={**future, "capacity": "12"})
    assert moved.status_code == 200 and "同じ会場で時間が重なるイベントがあります: 働き方と家族のセミナー" in moved.text
    assert (await schedule.get_event(second_id))["venue"] == "金沢地区センター"
    untouched = await client.post(f"/coordinator/events/{second_id}/edit",
                                  data={**future, "venue": "金沢地区センター", "capacity": "12"}, follow_redirects=False)
    assert untouched.status_code == 303 and (await schedule.get_event(second_id))["capacity"] == 12


async def test_one_edit_is_one_mail_per_person(client):
    me = await as_coordinator(client)
    start = soon(12)
    event_id = await schedule.create_event({
        "title": "一通だけのセミナー", "venue": "金沢公会堂", "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat(), "capacity": 1}, actor=as_staff(me))
    await schedule.publish_event(event_id, actor=as_staff(me))
    seated, waiting, last = await student(), await student(), await student()
    for email in (seated, waiting, last):
        await registration.register(event_id, (await people.find_by_email(email))["id"])
    from events.core.tables import OutboxMessage

    mark = max([r["id"] for r in await OutboxMessage.select(OutboxMessage.id)] or [0])
    # one edit: a new venue and one more seat — the first in line moves up and is told once, with the new venue
    await schedule.update_event(event_id, {"venue": "金沢地区センター", "capacity": 2}, actor=as_staff(me))
    told = {}
    for row in await OutboxMessage.select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.recipient).where(
            (OutboxMessage.id > mark) & (OutboxMessage.kind != "reminder")):  # reminders wait for the day before
        told.setdefault(row["recipient"], []).append(row["kind"])
    assert told == {seated: ["invite_update"], waiting: ["seminar_offer"], last: ["seminar_changed"]}
    for email, kind in ((seated, "invite_update"), (waiting, "seminar_offer"), (last, "seminar_changed")):
        assert "金沢地区センター" in mail_text((await outbox_mails(kind, email))[-1])


async def test_a_message_to_the_people_registered_asks_first_and_is_sent_once_each(client):
    me = await as_coordinator(client)
    event_id = await new_event(capacity=1, title="持ち物のあるセミナー",
                               access="京急線 金沢文庫駅 東口から徒歩5分\n駐車場はありません")
    seated, waiting = await student(), await student()
    for email in (seated, waiting):
        await registration.register(event_id, (await people.find_by_email(email))["id"])
    page = await client.get(f"/coordinator/events/{event_id}")
    assert 'id="message-subject"' in page.text and "受付票を印刷" in page.text
    token = csrf_from(page.text)
    form = {"_csrf": token, "audience": "seated", "subject": "持ち物のご案内\r\nBcc: x@example.jp",
            "body": "筆記用具をお持ちください。"}
    asked = await client.post(f"/coordinator/events/{event_id}/messages", data=form)
    assert asked.status_code == 200 and "お知らせを送りますか" in asked.text and "1名の方にメールでお知らせします" in asked.text
    assert "筆記用具をお持ちください。" in asked.text and len(await outbox_mails("seminar_message")) == 0
    sent = await client.post(f"/coordinator/events/{event_id}/messages", data={**form, "confirmed": "1"},
                             follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"].endswith("notice=message_sent")
    again = await client.post(f"/coordinator/events/{event_id}/messages", data={**form, "confirmed": "1"},
                              follow_redirects=False)
    assert again.status_code == 303  # a second message is a new message (its own row, its own mails)
    mails = await outbox_mails("seminar_message", seated)
    assert len(mails) == 2 and await outbox_mails("seminar_message", waiting) == []
    assert mails[0]["Subject"].startswith("【金沢区】持ち物のご案内 Bcc: x@example.jp")  # one line, no header injected
    assert mails[0]["Bcc"] is None and "筆記用具をお持ちください。" in mail_text(mails[0])
    assert "金沢文庫駅 東口から徒歩5分" in mail_text(mails[0])  # the venue's access travels with every mail
    assert await AuditEntry.count().where(AuditEntry.action == "event_message_sent") == 2
    shown = await client.get(f"/coordinator/events/{event_id}")
    assert shown.text.count("持ち物のご案内 Bcc: x@example.jp") == 2 and "金沢 花子" in shown.text
    blank = await client.post(f"/coordinator/events/{event_id}/messages", data={**form, "body": " "})
    assert blank.status_code == 422 and "本文を入力してください" in blank.text and 'value="持ち物のご案内' in blank.text
    assert me


async def test_the_printable_attendee_list_is_audited(client):
    await as_coordinator(client)
    event_id = await new_event(capacity=1, title="受付票のセミナー")
    seated, waiting = await student(name="山田 花子"), await student(name="待機 太郎")
    for email in (seated, waiting):
        await registration.register(event_id, (await people.find_by_email(email))["id"])
    before = await AuditEntry.count()
    sheet = await client.get(f"/coordinator/events/{event_id}/registrations/print")
    assert sheet.status_code == 200 and "受付票" in sheet.text and "山田 花子" in sheet.text
    assert "待機 太郎" not in sheet.text  # the waiting list is not on the desk
    assert await AuditEntry.count() == before + 1
