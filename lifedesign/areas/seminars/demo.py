"""Demo seminars for `lifedesign demo`: life-design seminars at ward venues, a lottery, an exchange session."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from events import people, timefmt
from events.access import Actor
from events.db import utcnow
from events.errors import DomainError
from events.seminars import registration, schedule
from events.seminars.tables import Event
from events.timefmt import TOKYO

SEMINAR_TITLE = "ライフデザインセミナー ～仕事と子育て、わたしの未来～"
DESCRIPTION = (
    "高校生・大学生のみなさんを対象に、職業だけではなく、仕事と家庭の両立について考えるきっかけとなる"
    "ライフデザインセミナーを開催します。区内で子育てをしながら働く先輩の話を聞き、グループで"
    "「10年後のわたし」を考えます。参加費無料、筆記用具をお持ちください。"
)
QUESTIONS = [
    {"kind": "single", "label": "このセミナーを何で知りましたか", "options": ["学校", "区のホームページ", "友人・家族", "その他"],
     "required": True},
    {"kind": "text", "label": "講師に聞いてみたいことがあればご記入ください"},
    {"kind": "checkbox", "label": "当日の様子を区の広報用に撮影することに同意します"},
]


def _at(days: int, hour: int, minute: int = 0) -> datetime:
    day = timefmt.tokyo_date(utcnow()) + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TOKYO)


def _events() -> list[dict]:
    return [
        {"title": SEMINAR_TITLE, "venue": "金沢公会堂 講堂", "venue_en": "Kanazawa Public Hall",
         "title_en": "Life design seminar: work, raising children and my future", "description": DESCRIPTION,
         "starts_at": _at(21, 14), "ends_at": _at(21, 16), "capacity": 40, "audience": "students",
         "registration_closes_at": _at(19, 17), "series": "lifedesign-2025", "questions": QUESTIONS},
        {"title": SEMINAR_TITLE, "venue": "金沢区役所 7階会議室", "venue_en": "Kanazawa Ward Office, 7F",
         "description": DESCRIPTION, "starts_at": _at(35, 10), "ends_at": _at(35, 12), "capacity": 24,
         "audience": "students", "series": "lifedesign-2025", "questions": QUESTIONS},
        {"title": "ライフデザインセミナー（横浜市立金沢高等学校 出張授業）", "venue": "横浜市立金沢高等学校 視聴覚室",
         "description": DESCRIPTION + "\n本回は金沢高校の生徒の方が対象です。", "starts_at": _at(28, 13, 30),
         "ends_at": _at(28, 15, 20), "capacity": 30, "audience": "high_school", "series": "lifedesign-2025"},
        {"title": "先輩と話そう！ライフデザイン座談会（抽選）", "venue": "金沢区役所 1階区民ホール",
         "description": "子育て中の先輩家族と少人数で話せる座談会です。応募多数のため抽選とします。",
         "starts_at": _at(30, 14), "ends_at": _at(30, 15, 30), "capacity": 12, "audience": "students",
         "allocation": "lottery", "registration_closes_at": _at(14, 17)},
        {"title": "保育施設職員交流会 ～保育の楽しさを再発見～", "kind": "staff_exchange",
         "venue": "金沢区役所 1階区民ホール", "audience": "facility_staff", "starts_at": _at(24, 18, 30),
         "ends_at": _at(24, 20), "capacity": 48,
         "description": "区内の保育園・幼稚園・認定こども園などの職員の方が、ほかの施設の職員とテーブルを囲んで"
                        "日々の保育の工夫を話し合う交流会です。"},
    ]


async def load(progress: Callable[[str], None]) -> dict[str, int]:
    """Idempotent: an event with the same title and start is not created twice."""
    coordinator = await people.find_by_email("coordinator@kanazawa-ward.example.jp")
    actor = Actor(coordinator["id"], frozenset({"coordinator"}), "demo") if coordinator else Actor.system("demo")
    created = 0
    ids = []
    for fields in _events():
        existing = await Event.select(Event.id).where(
            (Event.title == fields["title"]) & (Event.starts_at == fields["starts_at"].astimezone(TOKYO))
        ).first()
        if existing:
            ids.append(existing["id"])
            continue
        event_id = await schedule.create_event(fields, actor=actor)
        await schedule.publish_event(event_id, actor=actor)
        ids.append(event_id)
        created += 1
    registered = 0
    for email, index in (("suzuki.aoi@univ.example.jp", 0), ("ito.haruto@univ.example.jp", 0),
                         ("sato.yui@student.example.jp", 0), ("takahashi.ren@student.example.jp", 3),
                         ("kobayashi@sakura-hoikuen.example.jp", 4), ("kato@minamimutsuura.example.jp", 4)):
        person = await people.find_by_email(email)
        if person is None:
            continue
        event = await schedule.get_event(ids[index])
        answers = {str(event["questions"][0]["id"]): "学校"} if event["questions"] else {}
        try:
            await registration.register(ids[index], person["id"], answers=answers)
            registered += 1
        except DomainError:
            pass  # already registered (second run)
    progress(f"seminars: {created} events, {registered} registrations")
    return {"events_created": created, "registrations_created": registered}
