"""The ward's contact block (LIFEDESIGN_CONTACT_*): at the foot of every page and at the end of every mail."""

from __future__ import annotations

import glob
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jinja2 import ChainableUndefined

import events.config
from events import mail
from events.config import WardContact, config
from tests.conftest import csrf_from, login, mail_text, make_person, outbox_mails

OFFICE, ADDRESS, HOURS = "金沢区役所 こども家庭支援課", "〒236-0021 横浜市金沢区泥亀二丁目9番1号", "平日 8:45〜17:15"
EN_OFFICE, EN_ADDRESS, EN_HOURS = ("Kanazawa Ward Office, Children and Families Support Division",
                                   "2-9-1 Deiki, Kanazawa-ku, Yokohama 236-0021", "Weekdays 8:45–17:15")
MAILS = sorted(Path(p).stem for p in glob.glob(str(config().templates_dir / "mail" / "ja" / "*.txt"))
               if not Path(p).stem.startswith("_"))


def footer(html: str) -> str:
    return re.search(r'<footer class="site-footer">(.*?)</footer>', html, re.S).group(1)


@pytest.fixture
def ward_phone(monkeypatch):
    """The ward as configured with a phone number (the default prints none)."""
    cfg = config()
    monkeypatch.setattr(events.config, "_config", replace(
        cfg, ward_contact=replace(cfg.ward_contact, phone="045-788-7777"),
        ward_contact_en=replace(cfg.ward_contact_en, phone="045-788-7777")))
    return "045-788-7777"


async def test_every_kind_of_page_ends_with_the_ward_contact_in_its_language(client):
    await make_person("student", "contact-page@example.jp")
    pages = ["/", "/events", "/login", "/signup", "/signup?role=student", "/privacy", "/no-such-page"]
    for path in pages:
        response = await client.get(path)
        block = footer(response.text)
        assert all(text in block for text in (OFFICE, ADDRESS, HOURS)), path
        assert "tel:" not in block  # no phone configured, no phone line
        english = footer((await client.get(path, params={"lang": "en"})).text)
        assert all(text in english for text in (EN_OFFICE, EN_ADDRESS, EN_HOURS)), path
    await login(client, "contact-page@example.jp")
    profile = await client.get("/profile")
    assert profile.status_code == 200 and OFFICE in footer(profile.text)


async def test_a_configured_phone_is_on_pages_and_in_a_queued_mail(client, ward_phone):
    home = footer((await client.get("/")).text)
    assert 'href="tel:0457887777"' in home and ward_phone in home
    page = await client.get("/signup?role=host_family")
    done = await client.post("/signup", data={"_csrf": csrf_from(page.text), "role": "host_family",
                                              "name": "山田 真理子", "email": "contact-mail@example.jp"})
    assert done.status_code == 200
    (message,) = await outbox_mails("login", "contact-mail@example.jp")
    text = mail_text(message).replace("\r\n", "\n")
    assert text.rstrip().endswith(f"電話 {ward_phone}\n受付時間 {HOURS}"), text
    assert OFFICE in text and ADDRESS in text
    html = message.get_body(("html",)).get_content()
    assert ward_phone in html and ADDRESS in html


@pytest.mark.parametrize("locale", ["ja", "en"])
@pytest.mark.parametrize("name", MAILS)
def test_every_mail_ends_with_the_contact_block(monkeypatch, name, locale):
    """The block is added by events.mail.render once, whatever the template says: a lenient context stands in for
    each template's own (their content is tested where they are sent)."""
    monkeypatch.setattr(mail._environment(str(config().templates_dir)), "undefined", ChainableUndefined)
    when = datetime(2027, 1, 24, 5, 0, tzinfo=UTC)
    context = {key: when for key in ("starts_at", "ends_at", "expires_at", "closes_at", "deadline", "offer_expires_at")}
    subject, text, html = mail.render(name, locale, context)
    contact = config().contact(locale)
    expected = ([f"お問い合わせ先: {contact.office}", contact.address, f"受付時間 {contact.hours}"] if locale == "ja"
                else [f"Contact: {contact.office}", contact.address, f"Opening hours: {contact.hours}"])
    assert text.rstrip().splitlines()[-3:] == expected, text
    assert (EN_OFFICE if locale == "en" else OFFICE) == contact.office
    assert contact.address in html and contact.hours in html
    if "こども家庭支援課までお問い合わせください" in text:  # the sentence is now backed by the address and hours
        assert text.index("こども家庭支援課までお問い合わせください") < text.index(contact.address)


def test_the_english_block_translates_only_the_defaults():
    from lifedesign.bootstrap import english_contact

    assert english_contact(WardContact()) == WardContact(EN_OFFICE, EN_ADDRESS, EN_HOURS, "")
    own = WardContact("金沢区役所 4階 42番窓口", "横浜市金沢区泥亀2-9-1", "平日 9:00〜17:00", "045-788-7777")
    assert english_contact(own) == own
