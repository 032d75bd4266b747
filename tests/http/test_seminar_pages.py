"""Seminar pages for students, guardians and everyone: list, event page, registering, refusals, cancelling,
one's own list and the guardian's consent page (reached from the queued mail)."""

from __future__ import annotations

import glob
import re
import secrets
from datetime import UTC, date, datetime, timedelta
from html import unescape
from urllib.parse import urlsplit

from events import clock, people
from events.seminars import registration, schedule
from events.timefmt import TOKYO
from tests.conftest import as_staff, csrf_from, links_in, login, make_person, outbox_mails

TOKYO_FMT = re.compile(r"\d{4}年\d{1,2}月\d{1,2}日（[月火水木金土日]）\d{2}:\d{2}〜\d{2}:\d{2}")


def soon(days: float = 10, hours: float = 0) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=days, hours=hours)


async def coordinator() -> int:
    return await make_person("coordinator", f"coord-{secrets.token_hex(3)}@ward.example.jp", name="金沢 花子")


def morning(days: int = 10) -> datetime:
    """10:00 in Tokyo, `days` from today: a two-hour event that never crosses midnight, whenever the suite runs
    (a start of now + 10 days, run after 22:00 in Tokyo, ended on the next day and changed the date shown)."""
    day = (datetime.now(TOKYO) + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=TOKYO).astimezone(UTC)


async def new_event(*, publish: bool = True, **fields) -> int:
    by = await coordinator()
    start = fields.pop("starts_at", morning(10))
    values = {"title": "ライフデザインセミナー", "venue": "金沢公会堂", "starts_at": start.isoformat(),
              "ends_at": (start + timedelta(hours=2)).isoformat(), "capacity": 2, "audience": "students", **fields}
    event_id = await schedule.create_event(values, actor=as_staff(by))
    if publish:
        await schedule.publish_event(event_id, actor=as_staff(by))
    return event_id


async def student(email: str | None = None, name: str = "鈴木 葵", **kwargs) -> str:
    email = email or f"st-{secrets.token_hex(4)}@univ.example.jp"
    await make_person("student", email, name=name, **kwargs)
    return email


async def minor_student(guardian: str, name: str = "佐藤 結衣") -> str:
    birth = date.today().replace(year=date.today().year - 16)
    info = people.StudentInfo("high_school", "横浜市立金沢高等学校", 2, birth, guardian, "佐藤 恵")
    email = f"minor-{secrets.token_hex(4)}@school.example.jp"
    await make_person("student", email, name=name, student=info)
    return email


async def register_via_page(client, event_id: int, extra: dict | None = None, *, idem: str | None = None):
    page = await client.get(f"/events/{event_id}")
    assert page.status_code == 200
    shown = re.search(r'name="idem" value="([^"]+)"', page.text)  # absent when the page offers no form
    form = {"_csrf": csrf_from(page.text), "idem": idem or (shown.group(1) if shown else secrets.token_hex(8))}
    return await client.post(f"/events/{event_id}/register", data={**form, **(extra or {})}, follow_redirects=False)


def alert_text(html: str) -> str:
    return " ".join(unescape(m) for m in re.findall(r'role="alert"[^>]*>(.*?)</p>', html, re.S))


async def test_public_list_filters_by_audience_month_and_open_now(client):
    for_staff = await new_event(title="保育士の交流会", audience="facility_staff", starts_at=soon(40))
    for_high = await new_event(title="高校生の講座", audience="high_school", starts_at=soon(10))
    later = await new_event(title="来月以降の講座", audience="students", starts_at=soon(70),
                            registration_opens_at=soon(30).isoformat())
    listing = await client.get("/events")
    assert all(t in listing.text for t in ("保育士の交流会", "高校生の講座", "来月以降の講座"))
    assert "から受付" in listing.text  # not open yet: when it opens, not a register badge
    high = await client.get("/events", params={"audience": "high_school"})
    assert "高校生の講座" in high.text and "来月以降の講座" in high.text and "保育士の交流会" not in high.text
    open_now = await client.get("/events", params={"open_only": "1"})
    assert "来月以降の講座" not in open_now.text and "高校生の講座" in open_now.text
    month = (await schedule.get_event(for_high))["starts_at"].astimezone(TOKYO).strftime("%Y-%m")
    in_month = await client.get("/events", params={"month": month})
    assert "高校生の講座" in in_month.text and "来月以降の講座" not in in_month.text
    nothing = await client.get("/events", params={"audience": "facility_staff", "month": month})
    assert nothing.status_code == 200 and ("条件に合うイベントはありません" in nothing.text
                                           or "保育士の交流会" in nothing.text)
    for junk in ({"month": "2026-13"}, {"audience": "<script>"}, {"month": "x" * 500}):
        answered = await client.get("/events", params=junk)
        assert answered.status_code == 200 and "保育士の交流会" in answered.text, junk  # ignored, never an error
    # A control character is refused at the boundary for every request: a friendly page, not a trace.
    refused = await client.get("/events", params={"kind": "\x00"})
    assert refused.status_code == 422 and "制御文字" in refused.text and "Traceback" not in refused.text
    assert for_staff and later


async def test_event_page_offers_add_to_calendar_and_access(client):
    event_id = await new_event(title="アクセスのあるセミナー", access="京急線 金沢八景駅から徒歩3分")
    page_ = await client.get(f"/events/{event_id}")
    assert "京急線 金沢八景駅から徒歩3分" in page_.text
    assert f'href="/events/{event_id}/calendar.ics"' in page_.text
    google = re.search(r'href="(https://calendar.google.com/calendar/render\?[^"]+)"', page_.text).group(1)
    assert "action=TEMPLATE" in google and "dates=" in google and "ctz=Asia%2FTokyo" in unescape(google)
    ics = await client.get(f"/events/{event_id}/calendar.ics")
    assert ics.status_code == 200 and b"BEGIN:VEVENT" in ics.content


async def test_public_list_shows_places_lottery_and_full_in_words(client):
    open_id = await new_event(title="仕事と子育てを考えるセミナー", capacity=3)
    full_id = await new_event(title="満員のセミナー", capacity=1)
    await registration.register(full_id, (await people.find_by_email(await student()))["id"])
    start = soon(20)
    await new_event(title="抽選のセミナー", allocation="lottery", starts_at=start,
                    registration_closes_at=(start - timedelta(days=2)).isoformat())
    draft_id = await new_event(title="下書きのセミナー", publish=False)

    listing = await client.get("/events")
    assert listing.status_code == 200
    text = listing.text
    assert "仕事と子育てを考えるセミナー" in text and "下書きのセミナー" not in text
    assert TOKYO_FMT.search(text), "date in Asia/Tokyo with weekday"
    assert "残り 3席（定員 3名）" in text
    assert "抽選" in text and "満席・キャンセル待ち受付中" in text
    assert "金沢公会堂" in text and "高校生・大学生" in text

    detail = await client.get(f"/events/{open_id}")
    assert detail.status_code == 200
    assert f'/login?next=/events/{open_id}' in detail.text  # anonymous: a login link back here
    assert 'action="/events/' not in detail.text
    moved = await client.get(f"/seminars/{open_id}", follow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == f"/events/{open_id}"
    assert (await client.get(f"/events/{draft_id}")).status_code == 404  # a draft is not public


async def test_english_list(client):
    await new_event(title="ライフデザインセミナー", title_en="Life design seminar", capacity=2)
    page = await client.get("/events?lang=en")
    assert '<html lang="en">' in page.text
    assert "Life design seminar" in page.text and "Events" in page.text
    assert "2 places left (capacity 2)" in page.text


async def test_register_with_answers_refusals_and_replay(client):
    event_id = await schedule.create_event({
        "title": "進路セミナー", "venue": "金沢区役所", "starts_at": soon(7).isoformat(),
        "ends_at": soon(7, 2).isoformat(), "capacity": 5, "audience": "students",
        "questions": [
            {"kind": "text", "label": "聞いてみたいこと", "required": True},
            {"kind": "single", "label": "学年", "options": ["1年", "2年"], "required": True},
            {"kind": "multi", "label": "関心", "options": ["仕事", "子育て", "地域"]},
            {"kind": "checkbox", "label": "写真撮影に同意します"},
        ]}, actor=as_staff(await coordinator()))
    await schedule.publish_event(event_id, actor=as_staff(None))
    questions = (await schedule.get_event(event_id))["questions"]
    q = {item["label"]: f"q{item['id']}" for item in questions}
    email = await student()
    await login(client, email)

    page = await client.get(f"/events/{event_id}")
    assert 'name="_csrf"' in page.text and f'<label for="{q["聞いてみたいこと"]}">' in page.text

    missing = await register_via_page(client, event_id, {q["学年"]: "2年"})
    assert missing.status_code == 422
    assert "「聞いてみたいこと」にご回答ください。" in alert_text(missing.text)
    assert 'aria-invalid="true"' in missing.text and 'value="2年" checked' in missing.text  # nothing typed is lost

    answers = {q["聞いてみたいこと"]: "両立の工夫", q["学年"]: "2年", q["関心"]: ["仕事", "地域"], q["写真撮影に同意します"]: "1"}
    done = await register_via_page(client, event_id, answers, idem="key-1")
    assert done.status_code == 303 and done.headers["location"] == f"/events/{event_id}?notice=confirmed"
    shown = await client.get(done.headers["location"])
    assert "参加が確定しました" in shown.text and "参加確定" in shown.text
    assert "申し込みを取り消す" in shown.text
    person_id = (await people.find_by_email(email))["id"]
    mine = await registration.my_registration(event_id, person_id)
    assert mine["answers"] == {str(questions[0]["id"]): "両立の工夫", str(questions[1]["id"]): "2年",
                               str(questions[2]["id"]): ["仕事", "地域"], str(questions[3]["id"]): True}

    mailed = [u for u in links_in((await outbox_mails("seminar_confirmed", email))[0]) if f"/{event_id}" in u]
    assert mailed, "the confirmation mail links to the event"
    followed = await client.get(urlsplit(mailed[0]).path)  # /seminars/<id> redirects to /events/<id>
    assert followed.status_code == 200 and "進路セミナー" in followed.text and "参加確定" in followed.text

    replay = await register_via_page(client, event_id, answers, idem="key-1")  # a resent form
    assert replay.status_code == 303
    again = await register_via_page(client, event_id, answers)
    assert again.status_code == 409
    assert "既にお申し込みいただいています" in alert_text(again.text)
    assert len([r for r in await registration.list_registrations(event_id, actor=as_staff(None)) if r["status"] != "cancelled"]) == 1


async def test_full_event_waitlists_then_leave(client):
    event_id = await new_event(capacity=1)
    await registration.register(event_id, (await people.find_by_email(await student()))["id"])
    email = await student()
    await login(client, email)
    page = await client.get(f"/events/{event_id}")
    assert "満席・キャンセル待ち受付中" in page.text and "キャンセル待ちに申し込む" in page.text
    response = await register_via_page(client, event_id)
    assert response.status_code == 303
    shown = await client.get(response.headers["location"])
    assert "キャンセル待ちとして受け付けました" in shown.text
    assert "キャンセル待ち</span>（1番目）" in shown.text
    mine = await registration.my_registration(event_id, (await people.find_by_email(email))["id"])
    asked = await client.post(f"/registrations/{mine['id']}/leave-waitlist", data={"_csrf": csrf_from(shown.text)})
    assert asked.status_code == 200 and "キャンセル待ちをやめますか" in asked.text and "今の順番は失われます" in asked.text
    assert (await registration.get_registration(mine["id"], actor=as_staff(None)))["status"] == "waitlisted"
    left = await client.post(f"/registrations/{mine['id']}/leave-waitlist",
                             data={"_csrf": csrf_from(shown.text), "confirmed": "1"}, follow_redirects=False)
    assert left.status_code == 303
    after = await client.get(left.headers["location"])
    assert "キャンセル待ち（抽選のお申し込み）を取り下げました" in after.text
    assert (await registration.get_registration(mine["id"], actor=as_staff(None)))["status"] == "cancelled"


async def test_outside_window_and_audience_are_explained(client):
    not_yet = await new_event(registration_opens_at=soon(2).isoformat())
    high_school_only = await new_event(audience="high_school")
    await login(client, await student())  # a university student

    page = await client.get(f"/events/{not_yet}")
    assert "申込受付はまだ始まっていません" in page.text and f'action="/events/{not_yet}/register"' not in page.text
    refused = await register_via_page(client, not_yet)
    assert refused.status_code == 409 and "申込受付はまだ始まっていません" in alert_text(refused.text)

    refused = await register_via_page(client, high_school_only)
    assert refused.status_code == 403
    assert "このイベントは高校生の方が対象です" in alert_text(refused.text)
    assert "Traceback" not in refused.text


async def test_cancel_own_and_not_someone_elses(client, app):
    event_id = await new_event(capacity=1)
    other = await student()
    other_reg = await registration.register(event_id, (await people.find_by_email(other))["id"])
    email = await student()
    await login(client, email)
    page = await client.get(f"/events/{event_id}")
    token = csrf_from(page.text)
    stranger = await client.post(f"/registrations/{other_reg['id']}/cancel", data={"_csrf": token})
    assert stranger.status_code == 404
    assert (await registration.get_registration(other_reg["id"], actor=as_staff(None)))["status"] == "confirmed"

    mine = await registration.register(event_id, (await people.find_by_email(email))["id"])
    assert mine["status"] == "waitlisted"
    listing = await client.get("/my/registrations")
    assert "キャンセル待ち" in listing.text and "ライフデザインセミナー" in listing.text
    # the seat holder cancels from their own list; the waiting student is promoted
    await client.post("/logout", data={"_csrf": token})
    await login(client, other)
    listing = await client.get("/my/registrations")
    asked = await client.post(f"/registrations/{other_reg['id']}/cancel",
                              data={"_csrf": csrf_from(listing.text), "next": "/my/registrations?notice=cancelled"})
    assert asked.status_code == 200 and "お申し込みを取り消しますか" in asked.text and "確認のメールをお送りします" in asked.text
    assert 'href="/my/registrations"' in asked.text  # やめて戻る
    assert (await registration.get_registration(other_reg["id"], actor=as_staff(None)))["status"] == "confirmed"
    cancelled = await client.post(f"/registrations/{other_reg['id']}/cancel",
                                  data={"_csrf": csrf_from(asked.text), "next": "/my/registrations?notice=cancelled",
                                        "confirmed": "1"}, follow_redirects=False)
    assert cancelled.status_code == 303 and cancelled.headers["location"] == "/my/registrations?notice=cancelled"
    assert (await registration.get_registration(other_reg["id"], actor=as_staff(None)))["status"] == "cancelled"
    # the freed seat is offered to the waiting student, who answers from their own pages
    assert (await registration.get_registration(mine["id"], actor=as_staff(None)))["status"] == "offered"
    await client.post("/logout", data={"_csrf": csrf_from(listing.text)})
    await login(client, email)
    listing = await client.get("/my/registrations")
    assert "繰り上げのご案内中" in listing.text and f'href="/events/{event_id}#my-status"' in listing.text
    event_page = await client.get(f"/events/{event_id}")
    assert f'action="/registrations/{mine["id"]}/offer"' in event_page.text
    unticked = await client.post(f"/registrations/{mine['id']}/offer",
                                 data={"_csrf": csrf_from(event_page.text), "decision": "decline"})
    assert unticked.status_code == 422 and "確認にチェック" in alert_text(unticked.text)
    assert (await registration.get_registration(mine["id"], actor=as_staff(None)))["status"] == "offered"
    stranger = await client.post(f"/registrations/{other_reg['id']}/offer",
                                 data={"_csrf": csrf_from(event_page.text), "decision": "accept"})
    assert stranger.status_code == 404
    accepted = await client.post(f"/registrations/{mine['id']}/offer",
                                 data={"_csrf": csrf_from(event_page.text), "decision": "accept"}, follow_redirects=False)
    assert accepted.status_code == 303 and accepted.headers["location"] == f"/events/{event_id}?notice=offer_accepted"
    assert (await registration.get_registration(mine["id"], actor=as_staff(None)))["status"] == "confirmed"
    again = await client.post(f"/registrations/{mine['id']}/offer",
                              data={"_csrf": csrf_from(event_page.text), "decision": "accept"})
    assert again.status_code == 409 and "すでにお返事済み" in alert_text(again.text)
    home = await client.get("/")
    assert "申し込み中のイベント" in home.text


async def test_home_lists_upcoming_registrations_and_nav(client):
    event_id = await new_event(title="未来を描くセミナー")
    email = await student()
    await registration.register(event_id, (await people.find_by_email(email))["id"])
    await login(client, email)
    home = await client.get("/")
    assert "申し込み中のイベント" in home.text and "未来を描くセミナー" in home.text and "参加確定" in home.text
    assert 'href="/my/registrations"' in home.text and 'href="/coordinator/events"' not in home.text


async def _guardian_link(guardian: str) -> str:
    mails = await outbox_mails("consent_request", guardian)
    assert len(mails) == 1
    return urlsplit([u for u in links_in(mails[0]) if "/consent/" in u][0]).path


async def test_guardian_consents_from_the_mailed_link(client, app):
    from litestar.testing import AsyncTestClient

    event_id = await new_event(title="高校生のためのライフデザイン講座")
    guardian = f"parent-{secrets.token_hex(3)}@example.jp"
    email = await minor_student(guardian)
    await login(client, email)
    response = await register_via_page(client, event_id)
    assert response.headers["location"].endswith("notice=pending_consent")
    shown = await client.get(response.headers["location"])
    assert "保護者の方にメールをお送りしました" in shown.text and "保護者の同意待ち" in shown.text
    assert "保護者の方の回答期限" in shown.text

    path = await _guardian_link(guardian)
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1:8000") as guardian_client:  # no account
        page = await guardian_client.get(path)
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        for words in ("佐藤 結衣", "高校生のためのライフデザイン講座", "金沢公会堂", "こども家庭支援課", "同意文の版",
                      "生年月日", "同意する", "同意しない"):
            assert words in page.text, words
        assert TOKYO_FMT.search(page.text)
        forged = await guardian_client.post(path, data={"decision": "give", "_csrf": "x" * 30})
        assert forged.status_code == 403
        thanks = await guardian_client.post(path, data={"decision": "give", "_csrf": csrf_from(page.text)})
        assert thanks.status_code == 200 and "同意いただき、ありがとうございました" in thanks.text
        assert thanks.headers["cache-control"] == "no-store"
        again = await guardian_client.get(path)
        assert "既に同意をいただいています" in again.text and "同意しない" not in again.text
        unknown = await guardian_client.get("/consent/" + "z" * 40)
        assert unknown.status_code == 404 and "このリンクは無効です" in unknown.text
    mine = await registration.my_registration(event_id, (await people.find_by_email(email))["id"])
    assert mine["status"] == "confirmed"


async def test_guardian_refuses(client, app):
    event_id = await new_event()
    guardian = f"parent-{secrets.token_hex(3)}@example.jp"
    email = await minor_student(guardian, name="田中 蓮")
    await registration.register(event_id, (await people.find_by_email(email))["id"])
    path = await _guardian_link(guardian)
    page = await client.get(path)
    asked = await client.post(path, data={"decision": "refuse", "_csrf": csrf_from(page.text)})
    # 「同意しない」 cannot be undone: one confirmation step first, which changes nothing yet.
    assert asked.status_code == 200 and "「同意しない」と回答しますか" in asked.text and "田中 蓮" in asked.text
    assert 'name="confirmed" value="1"' in asked.text and 'name="decision" value="refuse"' in asked.text
    mine = await registration.my_registration(event_id, (await people.find_by_email(email))["id"])
    assert mine["status"] == "pending_consent"
    refused = await client.post(path, data={"decision": "refuse", "confirmed": "1", "_csrf": csrf_from(asked.text)})
    assert refused.status_code == 200 and "お申込みは取り消されました" in refused.text
    mine = await registration.my_registration(event_id, (await people.find_by_email(email))["id"])
    assert mine["status"] == "cancelled"
    twice = await client.post(path, data={"decision": "give", "_csrf": csrf_from(page.text)})
    assert twice.status_code == 409 and "「同意しない」とご回答いただいています" in twice.text


def test_every_seminar_page_string_has_an_english_entry():
    from babel.messages.pofile import read_po

    from events.seminars import messages
    from lifedesign.areas.seminars import pages as public_pages
    from lifedesign.areas.seminars import pages_common, pages_coordinator
    from lifedesign.i18n import LOCALE_DIR
    from lifedesign.rendering import environment

    with (LOCALE_DIR / "en" / "LC_MESSAGES" / "seminars_pages.po").open("rb") as handle:
        catalog = {m.id for m in read_po(handle) if m.id and m.string}
    folder = environment().loader.searchpath[0] + "/pages/seminars"
    wanted = set()
    for path in glob.glob(folder + "/*.html"):
        wanted |= set(re.findall(r'_\(\s*"([^"]*)"', open(path, encoding="utf-8").read()))
    for table in (pages_common.STATUS_LABELS, pages_common.AUDIENCE_LABELS, pages_common.KIND_LABELS,
                  pages_common.EVENT_STATUS_LABELS, pages_common.REFUSALS, public_pages.NOTICES,
                  pages_coordinator.NOTICES, pages_common.RULE_LABELS, pages_common.WARD_TIE_LABELS,
                  messages.AUDIENCE_LABELS, public_pages.LIST_AUDIENCE_LABELS):
        wanted |= set(table.values())
    assert len(wanted) > 150
    assert sorted(wanted - catalog) == []


async def test_expired_consent_link_is_a_friendly_page(client):
    event_id = await new_event()
    guardian = f"parent-{secrets.token_hex(3)}@example.jp"
    await registration.register(event_id, (await people.find_by_email(await minor_student(guardian)))["id"])
    path = await _guardian_link(guardian)
    english = await client.get(path + "?lang=en")
    assert "I consent" in english.text and "I do not consent" in english.text and 'lang="en"' in english.text
    with clock.travel(timedelta(hours=73)):  # the guardian opens the link after it expired
        page = await client.get(path)
        assert page.status_code == 410 and "回答の期限が過ぎました" in page.text and "同意する" not in page.text
        late = await client.post(path, data={"decision": "give", "_csrf": csrf_from(page.text)})
        assert late.status_code == 410 and "お申込みは取り消されました" in late.text
