"""Demo: staff of the ward's nurseries and one planned exchange session with themes (idempotent)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from events import people, places
from events.access import Actor
from events.db import utcnow, write_transaction
from events.errors import Conflict
from events.exchanges import sessions
from events.seminars.tables import Event, Registration

SURNAMES = ["佐々木", "山口", "松本", "井上", "木村", "林", "清水", "山崎", "森", "池田", "橋本", "阿部", "石川",
            "前田", "藤田", "小川", "岡田", "後藤", "長谷川", "村上", "近藤", "坂本", "遠藤", "青木", "藤井", "西村"]
GIVEN = [("美咲", "みさき"), ("陽子", "ようこ"), ("恵", "めぐみ"), ("拓也", "たくや"), ("彩", "あや"), ("真由美", "まゆみ"),
         ("健太", "けんた"), ("由佳", "ゆか"), ("麻衣", "まい"), ("千尋", "ちひろ"), ("和也", "かずや"), ("奈々", "なな")]
KANA = {"佐々木": "ささき", "山口": "やまぐち", "松本": "まつもと", "井上": "いのうえ", "木村": "きむら", "林": "はやし",
        "清水": "しみず", "山崎": "やまざき", "森": "もり", "池田": "いけだ", "橋本": "はしもと", "阿部": "あべ",
        "石川": "いしかわ", "前田": "まえだ", "藤田": "ふじた", "小川": "おがわ", "岡田": "おかだ", "後藤": "ごとう",
        "長谷川": "はせがわ", "村上": "むらかみ", "近藤": "こんどう", "坂本": "さかもと", "遠藤": "えんどう",
        "青木": "あおき", "藤井": "ふじい", "西村": "にしむら"}
STAFF_PER_FACILITY = {"金沢さくら保育園": 4, "南六浦保育園": 4, "並木保育園": 3, "能見台こども園": 3, "釜利谷幼稚園": 3,
                      "富岡ひまわり保育園": 3, "金沢八景小規模保育室": 2}
TITLE = "令和7年度 第1回 保育士交流会「保育の楽しさを語ろう」"
THEMES = ["保育の楽しさ", "保護者対応", "若手の育成", "これからの保育"]
ACTOR = Actor.system("demo")  # the demo loader acts for the ward (its plan is audited as "demo")
THEMES_EN = ["The joy of childcare", "Working with parents", "Growing young staff", "Childcare ahead"]


async def load(progress: Callable[[str], None]) -> dict[str, int]:
    facility_ids = {f["name"]: f["id"] for f in await people.list_facilities()}
    staff: list[int] = []
    n = 0
    for facility, count in STAFF_PER_FACILITY.items():
        if facility not in facility_ids:
            continue
        for i in range(count):
            surname = SURNAMES[n % len(SURNAMES)]
            given, given_kana = GIVEN[(n * 5 + i) % len(GIVEN)]
            email = f"staff{n + 1:02d}@{['sakura', 'mutsuura', 'namiki', 'nokendai', 'kamariya', 'tomioka', 'hakkei'][list(STAFF_PER_FACILITY).index(facility)]}.example.jp"
            n += 1
            try:
                person_id = await people.create_person(email, f"{surname} {given}", kana=f"{KANA[surname]} {given_kana}",
                                                       roles=("facility_staff",), facility_id=facility_ids[facility])
            except Conflict:
                person_id = (await people.find_by_email(email))["id"]
            staff.append(person_id)
    for person in await people.list_people(role="facility_staff"):
        if person["id"] not in staff:
            staff.append(person["id"])
    progress(f"exchanges: {len(staff)} facility staff")
    async with write_transaction():
        event = await Event.select(Event.id).where(Event.title == TITLE).first()
        if event is None:
            today = utcnow().date()
            starts = datetime(today.year, today.month, today.day, 5, 0, tzinfo=UTC) + timedelta(days=21)  # 14:00 JST
            now = utcnow()
            event = (await Event.insert(Event(
                kind="staff_exchange", title=TITLE, title_en="FY2025 Nursery staff exchange #1: the joy of childcare",
                description="区内の保育園・幼稚園・こども園の職員が、ほかの施設の方と少人数のテーブルで語り合う交流会です。",
                venue="金沢区役所 7階 会議室", venue_en="Kanazawa Ward Office, 7F meeting room",
                starts_at=starts, ends_at=starts + timedelta(hours=2), capacity=40,
                audience="facility_staff", status="published", created_at=now, updated_at=now,
            )).returning(Event.id))[0]
        event_id = event["id"]
        registered = {r["person"] for r in await Registration.select(Registration.person).where(
            (Registration.event == event_id) & (Registration.status != "cancelled"))}
        added = 0
        for person_id in staff:  # the staff are registered as a coordinator would, through the place ledger
            if person_id not in registered:
                await places.place(event_id, person_id, source=places.Source.COORDINATOR)
                added += 1
    session = await sessions.session_for_event(event_id)
    if session is None:
        session_id = await sessions.create_session(event_id, actor=ACTOR, rounds=4, table_size=4, themes=THEMES,
                                                   themes_en=THEMES_EN, round_minutes=20)
    else:
        session_id = session["id"]
    if session is None or not session["plan_version"] or added:
        summary = await sessions.assign_tables(session_id, seed=2025, actor=ACTOR)
        progress(f"exchanges: session {session_id} planned — {summary.people} people, {summary.tables} tables, "
                 f"{summary.clash_free_rounds}/{summary.rounds} rounds without repeats (bound {summary.bound})")
    return {"exchange_staff": len(staff), "exchange_sessions": 1}
