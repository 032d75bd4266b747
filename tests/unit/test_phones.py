"""The one phone validator (events.phones), kana and the ward's contact settings."""

from __future__ import annotations

import pytest

from events.errors import Invalid
from events.people import clean_kana, kana_key
from events.phones import normalize_phone
from lifedesign.settings import SettingsError, load_settings


@pytest.mark.parametrize(("raw", "stored"), [
    ("090-1234-5678", "090-1234-5678"),
    ("09012345678", "090-1234-5678"),
    ("０９０－１２３４－５６７８", "090-1234-5678"),  # full-width digits and dash
    ("080 1234 5678", "080-1234-5678"),
    ("+81 70-1234-5678", "070-1234-5678"),
    ("050-1234-5678", "050-1234-5678"),
    ("045-788-7777", "045-788-7777"),
    ("0457887777", "045-788-7777"),
    ("045(788)7777", "045-788-7777"),
    ("０４５７８８７７７７", "045-788-7777"),
    ("03-1234-5678", "03-1234-5678"),
    ("0312345678", "03-1234-5678"),
    ("0466-12-3456", "0466-12-3456"),  # the caller's area code is kept
    ("0451-2-34567", "045-123-4567"),  # not a grouping of an area code: the usual one
    ("0120-123-456", "0120-123-456"),
    ("", ""),
    ("   ", ""),
    (None, ""),
])
def test_japanese_numbers_are_stored_in_one_hyphenated_form(raw, stored):
    assert normalize_phone(raw) == stored


@pytest.mark.parametrize("raw", ["123", "090-1234-567", "090-1234-56789", "0012-345-678", "45-788-7777",
                                 "電話番号", "090-1234-567a", "045-788-77777", "1" * 40])
def test_anything_else_is_a_clear_error_naming_its_field(raw):
    with pytest.raises(Invalid) as caught:
        normalize_phone(raw, "guardian_phone")
    assert caught.value.code == "invalid_phone" and caught.value.extra["field"] == "guardian_phone"
    assert "090-1234-5678" in caught.value.message


@pytest.mark.parametrize(("raw", "kept"), [
    ("かなざわ はなこ", "かなざわ はなこ"), ("カナザワ　ハナコ", "カナザワ ハナコ"), ("ｶﾅｻﾞﾜ ﾊﾅｺ", "カナザワ ハナコ"),
    ("すずき ゆうたろう", "すずき ゆうたろう"), ("ジョン・スミス", "ジョン・スミス"), ("さとう ゆーな", "さとう ゆーな"), ("", ""),
])
def test_kana_accepts_hiragana_katakana_long_marks_and_spaces(raw, kept):
    assert clean_kana(raw) == kept


@pytest.mark.parametrize("raw", ["金沢 花子", "kanazawa", "かなざわ1", "さとう（ゆい）"])
def test_kana_refuses_kanji_latin_and_digits(raw):
    with pytest.raises(Invalid) as caught:
        clean_kana(raw)
    assert caught.value.code == "invalid_kana"


def test_kana_key_folds_katakana_for_gojuon_order():
    assert kana_key("ナミキ ホイクエン") == kana_key("なみきほいくえん")
    assert sorted(["なみき", "かまりや", "アオバ"], key=kana_key) == ["アオバ", "かまりや", "なみき"]


def test_ward_contact_settings_have_defaults_and_refuse_a_bad_phone(tmp_path):
    default = load_settings({"LIFEDESIGN_DATA_DIR": str(tmp_path)}).contact
    assert (default.office, default.address, default.hours, default.phone) == (
        "金沢区役所 こども家庭支援課", "〒236-0021 横浜市金沢区泥亀二丁目9番1号", "平日 8:45〜17:15", "")
    custom = load_settings({"LIFEDESIGN_DATA_DIR": str(tmp_path), "LIFEDESIGN_CONTACT_PHONE": "０４５７８８７７７７",
                            "LIFEDESIGN_CONTACT_HOURS": " 平日  9:00〜17:00 "}).contact
    assert (custom.phone, custom.hours, custom.office) == ("045-788-7777", "平日 9:00〜17:00", default.office)
    with pytest.raises(SettingsError) as caught:
        load_settings({"LIFEDESIGN_DATA_DIR": str(tmp_path), "LIFEDESIGN_CONTACT_PHONE": "call us"})
    assert "LIFEDESIGN_CONTACT_PHONE" in str(caught.value)
