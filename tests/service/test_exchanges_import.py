"""Importing facilities and staff into a real database: every bad row reported, nothing half-imported."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from events import people
from events.access import Actor
from events.core.tables import AuditEntry, Facility, Person, PersonRole, StaffMembership
from events.errors import Forbidden
from events.exchanges.importing import import_facilities, import_staff

ACTOR = Actor(None, frozenset({"coordinator"}), "test")

FACILITIES = """施設名,種別,地区
金沢さくら保育園,保育園,金沢文庫
南六浦保育園,保育所,六浦
並木保育園,認可保育所,並木
能見台こども園,認定こども園,能見台
"""

STAFF = """氏名,ふりがな,メールアドレス,施設名,職種
小林 由美,こばやし ゆみ,Kobayashi@Sakura.example.jp,金沢さくら保育園,保育士
加藤 直子,かとう なおこ,kato@minamimutsuura.example.jp,南六浦保育園,主任保育士
吉田 智子,よしだ ともこ,yoshida@namiki.example.jp,並木保育園,栄養士
"""


async def counts() -> tuple[int, int, int, int]:
    return (await Facility.count(), await Person.count(), await PersonRole.count(), await StaffMembership.count())


async def test_facilities_in_shift_jis_are_imported_and_updated_by_name(db):
    progress: list[tuple[int, int]] = []
    report = await import_facilities(FACILITIES.encode("cp932"), "施設.csv", actor=ACTOR,
                                     progress=lambda d, t: progress.append((d, t)))
    assert report.ok and report.written, report.errors
    assert (report.encoding, report.rows, report.created) == ("cp932", 4, 4)
    assert progress[-1] == (4, 4)
    kinds = {f["name"]: f["kind"] for f in await Facility.select()}
    assert kinds["能見台こども園"] == "certified_childcare" and kinds["並木保育園"] == "nursery"
    again = await import_facilities(FACILITIES.replace(",能見台\n", ",能見台東\n").encode(), "施設.csv", actor=ACTOR)
    assert (again.created, again.updated, again.unchanged) == (0, 1, 3)
    assert await Facility.count() == 4


async def test_broken_facility_file_reports_each_line_and_writes_nothing(db):
    broken = ("施設名,種別,地区\n"
              "金沢さくら保育園,保育園,金沢文庫\n"
              ",保育園,六浦\n"
              "並木保育園,病院,並木\n"
              "金沢さくら保育園,幼稚園,金沢文庫\n")
    report = await import_facilities(broken.encode(), "f.csv", actor=ACTOR)
    assert not report.ok and not report.written
    assert [(e.line, e.code) for e in report.errors] == [
        (3, "missing_value"), (4, "unknown_kind"), (5, "duplicate_facility")]
    assert "2行目と同じ" in report.errors[2].message and "病院" in report.errors[1].message
    assert await Facility.count() == 0


async def test_missing_columns_are_named(db):
    report = await import_facilities("名前,地区\n並木保育園,並木\n".encode(), "f.csv", actor=ACTOR)
    assert [(e.line, e.code) for e in report.errors] == [(1, "missing_columns")]
    assert "施設名" in report.errors[0].message
    staff = await import_staff("氏名,施設名\n小林 由美,金沢さくら保育園\n".encode(), "s.csv", actor=ACTOR)
    assert [(e.line, e.code) for e in staff.errors] == [(1, "missing_columns")]
    assert "メールアドレス" in staff.errors[0].message
    assert await counts() == (0, 0, 0, 0)


async def test_bad_encoding_is_refused_and_nothing_imported(db):
    report = await import_facilities(FACILITIES.encode("euc_jp"), "f.csv", actor=ACTOR)
    assert [e.code for e in report.errors] == ["bad_encoding"]
    assert "UTF-8" in report.errors[0].message
    staff = await import_staff(STAFF.encode("utf-16-le"), "s.csv", actor=ACTOR)  # no BOM: NUL bytes
    assert [e.code for e in staff.errors] == ["bad_encoding"]
    assert await counts() == (0, 0, 0, 0)


async def test_staff_import_with_bom_creates_accounts_roles_and_memberships(db):
    await import_facilities(FACILITIES.encode(), "f.csv", actor=ACTOR)
    before = await counts()
    report = await import_staff(b"\xef\xbb\xbf" + STAFF.encode(), "s.csv", dry_run=True, actor=ACTOR)
    assert report.ok and not report.written and report.created == 3
    assert await counts() == before  # dry run writes nothing
    report = await import_staff(b"\xef\xbb\xbf" + STAFF.encode(), "s.csv", actor=ACTOR)
    assert report.ok and report.written and report.created == 3
    person = await people.find_by_email("kobayashi@sakura.example.jp")  # lower-cased
    assert person["kana"] == "こばやし ゆみ"
    assert await people.roles_of(person["id"]) == {"facility_staff"}
    assert [f["name"] for f in await people.facilities_of(person["id"])] == ["金沢さくら保育園"]
    # A transfer (異動): the new list moves 小林 to 並木保育園; others are unchanged.
    moved = STAFF.replace("Kobayashi@Sakura.example.jp,金沢さくら保育園", "kobayashi@sakura.example.jp,並木保育園")
    again = await import_staff(moved.encode(), "s.csv", actor=ACTOR)
    assert (again.created, again.updated, again.unchanged) == (0, 1, 2)
    assert [f["name"] for f in await people.facilities_of(person["id"])] == ["並木保育園"]


async def test_broken_staff_file_reports_every_bad_row_with_its_line(db):
    await import_facilities(FACILITIES.encode(), "f.csv", actor=ACTOR)
    existing = await counts()
    broken = ("氏名,メールアドレス,施設名\n"
              "小林 由美,kobayashi@example.jp,金沢さくら保育園\n"    # 2 ok
              "加藤 直子,kato@example,南六浦保育園\n"                # 3 bad e-mail
              "吉田 智子,yoshida@example.jp,富岡ひまわり保育園\n"     # 4 unknown facility
              "小林 由美,KOBAYASHI@example.jp,並木保育園\n"          # 5 duplicate e-mail (case-insensitive)
              ",,並木保育園\n"                                      # 6 name and e-mail missing
              "渡辺 翔太,watanabe@example.jp,\n")                  # 7 facility missing
    report = await import_staff(broken.encode("cp932"), "s.csv", actor=ACTOR)
    assert not report.written
    assert [(e.line, e.code) for e in report.errors] == [
        (3, "bad_email"), (4, "unknown_facility"), (5, "duplicate_email"),
        (6, "missing_value"), (6, "missing_value"), (7, "missing_value")]
    assert "富岡ひまわり保育園" in report.errors[1].message
    assert str(report.errors[0]).startswith("3行目: ")
    assert await counts() == existing  # not even line 2 was imported


async def test_staff_from_xlsx_with_english_headers(db):
    await import_facilities(FACILITIES.encode(), "f.csv", actor=ACTOR)
    book = Workbook()
    sheet = book.active
    sheet.append(["Name", "Kana", "E-mail", "Facility", "Job title", "Language"])
    sheet.append(["Yui Sato", "", "yui@example.jp", "並木保育園", "nursery teacher", "English"])
    sheet.append(["佐藤 花", "さとう はな", "ｈａｎａ＠ｅｘａｍｐｌｅ．ｊｐ", "並木保育園", "保育士", ""])  # full-width e-mail
    buffer = io.BytesIO()
    book.save(buffer)
    report = await import_staff(buffer.getvalue(), "staff.xlsx", actor=ACTOR)
    assert report.ok and report.created == 2, report.errors
    yui = await people.find_by_email("yui@example.jp")
    assert yui["locale"] == "en"
    assert await people.find_by_email("hana@example.jp") is not None


async def test_large_staff_file_is_imported_in_batches_with_progress(db):
    await import_facilities(FACILITIES.encode(), "f.csv", actor=ACTOR)
    rows = "".join(f"職員 {i},,s{i}@example.jp,並木保育園,保育士\n" for i in range(320))
    seen: list[tuple[int, int]] = []
    report = await import_staff(("氏名,ふりがな,メールアドレス,施設名,職種\n" + rows).encode(), "s.csv",
                                progress=lambda d, t: seen.append((d, t)), actor=ACTOR)
    assert report.ok and report.created == 320
    assert seen == [(150, 320), (300, 320), (320, 320)]
    assert await Person.count() == 320 and await StaffMembership.count() == 320
    assert await PersonRole.count() == 320


async def test_an_import_is_audited_in_its_transaction_only_when_written(db):
    coordinator = Actor(await people.create_person("imp-coord@kanazawa.example.jp", "取込 担当", roles=("coordinator",)),
                        frozenset({"coordinator"}), "test-client")
    await import_facilities(FACILITIES.encode(), "f.csv", actor=coordinator, dry_run=True)
    await import_facilities("施設名,種別\n並木保育園,病院\n".encode(), "f.csv", actor=coordinator)
    assert await AuditEntry.count() == 0  # a check or a refused file writes nothing, so records nothing
    await import_facilities(FACILITIES.encode(), "施設.csv", actor=coordinator)
    await import_staff(STAFF.encode(), "職員.csv", actor=coordinator)
    entries = await AuditEntry.select().order_by(AuditEntry.id).output(load_json=True)
    assert [(e["action"], e["actor"], e["client"]) for e in entries] == [
        ("imported_facilities", coordinator.person_id, "test-client"),
        ("imported_staff", coordinator.person_id, "test-client")]
    assert entries[0]["detail"]["created"] == 4 and entries[1]["detail"]["file"] == "職員.csv"
    # Someone who is not staff may not import (nor even check) a file.
    staff = Actor.of(await people.find_by_email("kato@minamimutsuura.example.jp"))
    for dry_run in (True, False):
        with pytest.raises(Forbidden):
            await import_staff(STAFF.encode(), "s.csv", actor=staff, dry_run=dry_run)
    assert await AuditEntry.count() == 2


async def test_a_reading_column_gives_facilities_their_kana_and_a_kanji_reading_is_refused(db):
    with_reading = ("施設名,種別,地区,ふりがな\n"
                    "金沢さくら保育園,保育園,金沢文庫,かなざわさくらほいくえん\n"
                    "南六浦保育園,保育所,六浦,ミナミムツウラホイクエン\n")
    assert (await import_facilities(with_reading.encode(), "f.csv", actor=ACTOR)).written
    readings = {f["name"]: f["kana"] for f in await Facility.select()}
    assert readings == {"金沢さくら保育園": "かなざわさくらほいくえん", "南六浦保育園": "ミナミムツウラホイクエン"}
    # A file without the column keeps the readings already known (negative control: the column does the work).
    assert (await import_facilities(FACILITIES.encode(), "f.csv", actor=ACTOR)).written
    assert {f["name"]: f["kana"] for f in await Facility.select()}["金沢さくら保育園"] == "かなざわさくらほいくえん"
    assert {f["name"]: f["kana"] for f in await Facility.select()}["並木保育園"] == ""
    kanji = await import_facilities("施設名,ふりがな\n並木保育園,並木\n".encode(), "f.csv", actor=ACTOR)
    assert not kanji.written and [(e.line, e.code) for e in kanji.errors] == [(2, "invalid_kana")]
