"""What the domain needs to know about its deployment, set once by the shell at start-up.

events/ never imports the shell's settings; the shell calls `configure()` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

TOKYO = "Asia/Tokyo"


@dataclass(frozen=True)
class WardContact:
    """Whom people phone or visit: the block at the foot of every page and every mail (settings LIFEDESIGN_CONTACT_*)."""

    office: str = "金沢区役所 こども家庭支援課"
    address: str = "〒236-0021 横浜市金沢区泥亀二丁目9番1号"
    hours: str = "平日 8:45〜17:15"
    phone: str = ""  # hyphenated (events.phones); empty: no phone line


@dataclass(frozen=True)
class DomainConfig:
    base_url: str = "http://127.0.0.1:8000"
    mail_from: str = "lifedesign@kanazawa-ward.example.jp"
    mail_from_name: str = "金沢区こども家庭支援課"
    templates_dir: Path = Path(__file__).resolve().parents[1] / "templates"
    consent_expiry_hours: int = 72
    reminder_days_before: int = 1
    reminder_hour: int = 9
    survey_delay_hours: int = 2
    login_link_minutes: int = 10
    # Retention (events.retention; the privacy notice states the same figures): how long each kind of data is kept.
    retention_token_days: int = 7  # login, consent, guardian and survey links after they expire or are used
    retention_outbox_months: int = 6  # outbox bodies and .eml files after sending
    retention_address_months: int = 3  # a household's address after its vetting expires or it leaves
    retention_minor_months: int = 12  # a minor's profile after their last activity
    retention_survey_months: int = 24  # the link between a named survey answer and its person, after closing
    retention_audit_months: int = 60  # the audit log (kept longest)
    purge_hour: int = 3  # the daily purge runs after this hour, Asia/Tokyo
    mail_dir: Path | None = None  # where the file transport writes .eml files (purged with the outbox bodies)
    privacy_contact: str = ""  # whom to ask about one's data (the privacy notice); "" = the mail sender
    ward_contact: WardContact = WardContact()
    ward_contact_en: WardContact | None = None  # the same in English (the shell translates the defaults)

    @property
    def mail_domain(self) -> str:
        return self.mail_from.rsplit("@", 1)[-1]

    def contact(self, locale: str) -> WardContact:
        """The ward's contact block in a page's or a mail's language."""
        return self.ward_contact_en if locale == "en" and self.ward_contact_en else self.ward_contact


_config = DomainConfig()


def configure(**changes: object) -> DomainConfig:
    global _config
    _config = replace(_config, **changes)  # type: ignore[arg-type]
    return _config


def config() -> DomainConfig:
    return _config
