"""Believable Kanazawa-ward demo data: facilities, students, host families, staff, coordinators."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from events import people
from events.errors import Conflict
from lifedesign import areas

FACILITIES = [  # name, kind, area, reading (lists are in 五十音順 by it)
    ("金沢さくら保育園", "nursery", "金沢文庫", "かなざわさくらほいくえん"),
    ("南六浦保育園", "nursery", "六浦", "みなみむつうらほいくえん"),
    ("並木保育園", "nursery", "並木", "なみきほいくえん"),
    ("能見台こども園", "certified_childcare", "能見台", "のうけんだいこどもえん"),
    ("釜利谷幼稚園", "kindergarten", "釜利谷", "かまりやようちえん"),
    ("富岡ひまわり保育園", "nursery", "富岡", "とみおかひまわりほいくえん"),
    ("金沢八景小規模保育室", "small_childcare", "金沢八景", "かなざわはっけいしょうきぼほいくしつ"),
    ("横浜市立金沢高等学校", "school", "泥亀", "よこはましりつかなざわこうとうがっこう"),
]

PEOPLE = [
    ("coordinator@kanazawa-ward.example.jp", "金沢 花子", "かなざわ はなこ", ("coordinator",), None, None),
    ("admin@kanazawa-ward.example.jp", "六浦 管理", "むつうら かんり", ("admin",), None, None),
    ("sato.yui@student.example.jp", "佐藤 結衣", "さとう ゆい", ("student",),
     people.StudentInfo("high_school", "横浜市立金沢高等学校", 2, date(2009, 6, 14), "sato.family@example.jp", "佐藤 恵"), None),
    ("takahashi.ren@student.example.jp", "高橋 蓮", "たかはし れん", ("student",),
     people.StudentInfo("high_school", "県立金沢総合高等学校", 3, date(2008, 9, 2), "takahashi.home@example.jp", "高橋 大輔"), None),
    ("suzuki.aoi@univ.example.jp", "鈴木 葵", "すずき あおい", ("student",),
     people.StudentInfo("university", "横浜市立大学", 2, date(2005, 4, 21)), None),
    ("ito.haruto@univ.example.jp", "伊藤 陽翔", "いとう はると", ("student",),
     people.StudentInfo("university", "関東学院大学", 3, date(2004, 11, 30)), None),
    ("yamada.family@example.jp", "山田 真理子", "やまだ まりこ", ("host_family",), None, None),
    ("nakamura.family@example.jp", "中村 健一", "なかむら けんいち", ("host_family",), None, None),
    ("kobayashi@sakura-hoikuen.example.jp", "小林 由美", "こばやし ゆみ", ("facility_staff",), None, "金沢さくら保育園"),
    ("kato@minamimutsuura.example.jp", "加藤 直子", "かとう なおこ", ("facility_staff",), None, "南六浦保育園"),
    ("yoshida@namiki-hoikuen.example.jp", "吉田 智子", "よしだ ともこ", ("facility_staff",), None, "並木保育園"),
    ("watanabe@nokendai-kodomoen.example.jp", "渡辺 翔太", "わたなべ しょうた", ("facility_staff",), None, "能見台こども園"),
]


async def load_demo(progress: Callable[[str], None] = print) -> dict[str, int]:
    """Idempotent: running it twice adds nothing twice."""
    facility_ids: dict[str, int] = {f["name"]: f["id"] for f in await people.list_facilities()}
    for name, kind, area, kana in FACILITIES:
        if name not in facility_ids:
            facility_ids[name] = await people.create_facility(name, kind, area, kana)
    progress(f"facilities: {len(FACILITIES)}")
    created = 0
    for index, (email, name, kana, roles, student, facility) in enumerate(PEOPLE, start=1):
        try:
            await people.create_person(email, name, kana=kana, roles=roles, student=student,
                                       facility_id=facility_ids.get(facility) if facility else None)
            created += 1
        except Conflict:
            pass
        progress(f"people: {index}/{len(PEOPLE)}")
    extra: dict[str, int] = {}
    for area in areas.INSTALLED:  # each area adds its own demo data through its DEMO loader
        if area.DEMO is not None:
            extra.update(await area.DEMO(progress))
    progress("demo data loaded — log in as coordinator@kanazawa-ward.example.jp (the login mail is in var/mail/)")
    return {"facilities": len(facility_ids), "people_created": created, **extra}
