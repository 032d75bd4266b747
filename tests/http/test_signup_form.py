"""Sign-up per role, without JavaScript: the role first, then only that role's fields; every problem at once (each
field aria-invalid and described by its message, the first focused); visible 必須 markers; ふりがな in kana;
facilities in 五十音順 by their reading."""

from __future__ import annotations

import re
from datetime import date
from html import unescape

from events import people
from tests.conftest import csrf_from, outbox_mails


def inputs(html: str) -> dict[str, str]:
    """Each form control's id → its opening tag."""
    return {m.group(2): m.group(0) for m in re.finditer(r'<(input|select)\b[^>]*\bid="([^"]+)"[^>]*>', html)}


async def test_the_role_comes_first_and_each_role_sees_only_its_own_fields(client):
    first = await client.get("/signup")
    assert first.status_code == 200
    assert re.search(r'<form method="get" action="/signup"', first.text)  # a plain GET step: no JavaScript needed
    assert len(re.findall(r'type="radio" name="role"', first.text)) == 3 and 'id="email"' not in first.text
    expected = {
        "student": {"school_level", "school_name", "grade", "birth_date", "guardian_email", "guardian_phone"},
        "host_family": set(),
        "facility_staff": {"facility"},
    }
    every_role_field = set().union(*expected.values())
    for role, own in expected.items():
        page = await client.get("/signup", params={"role": role})
        found = set(inputs(page.text))
        assert {"name", "kana", "email", "phone"} <= found, role
        assert found & every_role_field == own, role
        assert f'name="role" value="{role}"' in page.text and 'href="/signup"' in page.text  # and a way back
    unknown = await client.get("/signup", params={"role": "admin"})
    assert 'type="radio" name="role"' in unknown.text and 'id="email"' not in unknown.text


async def test_required_fields_are_marked_visibly_and_for_screen_readers(client):
    page = await client.get("/signup", params={"role": "student"})
    tags = inputs(page.text)
    for field in ("name", "email", "school_level", "grade", "birth_date"):
        assert 'aria-required="true"' in tags[field] and " required" in tags[field], field
        label = re.search(rf'<label for="{field}">(.*?)</label>', page.text, re.S).group(1)
        assert "必須" in label, field
    for field in ("kana", "phone", "school_name", "guardian_phone"):
        assert "aria-required" not in tags[field], field
        assert "任意" in re.search(rf'<label for="{field}">(.*?)</label>', page.text, re.S).group(1)
    english = await client.get("/signup", params={"role": "student", "lang": "en"})
    assert "required" in re.search(r'<label for="name">(.*?)</label>', english.text, re.S).group(1)


async def test_every_problem_is_shown_at_once_and_the_first_gets_the_focus(client):
    page = await client.get("/signup", params={"role": "student"})
    minor = date.today().replace(year=date.today().year - 16).isoformat()
    answer = await client.post("/signup", data={
        "_csrf": csrf_from(page.text), "role": "student", "name": "", "kana": "佐藤 結衣", "email": "not-an-address",
        "phone": "090-12", "school_level": "", "grade": "9", "birth_date": minor, "guardian_email": ""})
    assert answer.status_code == 422
    tags = inputs(answer.text)
    wrong = ["name", "kana", "email", "phone", "school_level", "grade", "guardian_email"]
    for field in wrong:
        assert 'aria-invalid="true"' in tags[field], field
        assert f'aria-describedby="{field}-error' in tags[field], field
        assert f'id="{field}-error"' in answer.text, field
    for field in ("school_name", "birth_date", "guardian_name", "guardian_phone"):
        assert "aria-invalid" not in tags[field], field
    assert [f for f, tag in tags.items() if " autofocus" in tag] == ["name"]  # the first in the form, only it
    summary = re.search(r'<div class="notice error" role="alert" id="error-summary">(.*?)</div>', answer.text, re.S)
    links = re.findall(r'<a href="#([^"]+)">', summary.group(1))
    assert links == wrong  # in the order of the form, each linking to its field
    text = unescape(summary.group(1))
    assert "ひらがなかカタカナ" in text and "保護者のメールアドレス" in text and "090-1234-5678" in text
    assert 'value="not-an-address"' in tags["email"] and 'value="佐藤 結衣"' in tags["kana"]  # kept to correct
    assert await people.find_by_email("not-an-address") is None

    # Negative control: fix only the first problems and the focus moves to the next one left.
    again = await client.post("/signup", data={
        "_csrf": csrf_from(page.text), "role": "student", "name": "佐藤 結衣", "kana": "サトウ ユイ",
        "email": "yui-form@example.jp", "phone": "", "school_level": "high_school", "grade": "2",
        "birth_date": minor, "guardian_email": ""})
    assert again.status_code == 422
    assert [f for f, tag in inputs(again.text).items() if " autofocus" in tag] == ["guardian_email"]


async def test_kana_is_checked_and_a_good_form_signs_up(client):
    page = await client.get("/signup", params={"role": "host_family"})
    form = {"_csrf": csrf_from(page.text), "role": "host_family", "name": "山田 真理子", "email": "kana-form@example.jp"}
    kanji = await client.post("/signup", data={**form, "kana": "山田"})
    assert kanji.status_code == 422 and 'aria-invalid="true"' in inputs(kanji.text)["kana"]
    assert list(inputs(kanji.text)) and " autofocus" in inputs(kanji.text)["kana"]
    done = await client.post("/signup", data={**form, "kana": "ﾔﾏﾀﾞ　まりこー"})
    assert done.status_code == 200
    assert (await people.find_by_email("kana-form@example.jp"))["kana"] == "ヤマダ まりこー"
    assert len(await outbox_mails("login", "kana-form@example.jp")) == 1


async def test_without_a_role_the_choice_is_asked_again_and_staff_roles_are_refused(client):
    page = await client.get("/signup")
    none = await client.post("/signup", data={"_csrf": csrf_from(page.text), "name": "X", "email": "x@example.jp"})
    assert none.status_code == 422 and 'type="radio" name="role"' in none.text
    assert 'aria-invalid="true"' in none.text and " autofocus" in inputs(none.text)["role"]
    staff = await client.post("/signup", data={"_csrf": csrf_from(page.text), "role": "coordinator", "name": "X",
                                               "email": "x@example.jp"})
    assert staff.status_code == 403 and await people.find_by_email("x@example.jp") is None


async def test_facilities_are_listed_in_gojuon_order_by_their_reading(client):
    for name, kana in (("南六浦保育園", "みなみむつうらほいくえん"), ("並木保育園", "なみきほいくえん"),
                       ("金沢さくら保育園", "カナザワサクラホイクエン"), ("能見台こども園", "のうけんだいこどもえん"),
                       ("ABCキッズ", "")):
        await people.create_facility(name, "nursery", "六浦", kana)
    page = await client.get("/signup", params={"role": "facility_staff"})
    names = re.findall(r'<option value="\d+"\s*>([^<]+)</option>', page.text)
    # code-point order would put 並木 (U+4E26) before 南 (U+5357) and 能 (U+80FD) before 金 (U+91D1): the reading decides
    assert names == ["金沢さくら保育園", "並木保育園", "能見台こども園", "南六浦保育園", "ABCキッズ"]
    listed = [f["name"] for f in await people.list_facilities()]
    assert listed == names
    assert sorted(names) != names  # negative control: by code point the order would differ
    form = {"_csrf": csrf_from(page.text), "role": "facility_staff", "name": "小林 由美", "email": "fac@example.jp"}
    for facility in ("", "99999999999999999999", "424242"):  # none, beyond 32 bits, unknown: the field says so
        answer = await client.post("/signup", data={**form, "facility": facility})
        assert answer.status_code == 422 and 'aria-invalid="true"' in inputs(answer.text)["facility"], facility
    chosen = re.search(r'<option value="(\d+)"\s*>並木保育園', page.text).group(1)
    assert (await client.post("/signup", data={**form, "facility": chosen})).status_code == 200
    assert [f["name"] for f in await people.facilities_of((await people.find_by_email("fac@example.jp"))["id"])] == [
        "並木保育園"]
