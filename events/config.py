"""What the domain needs to know about its deployment, set once by the shell at start-up.

events/ never imports the shell's settings; the shell calls `configure()` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

TOKYO = "Asia/Tokyo"


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

    @property
    def mail_domain(self) -> str:
        return self.mail_from.rsplit("@", 1)[-1]


_config = DomainConfig()


def configure(**changes: object) -> DomainConfig:
    global _config
    _config = replace(_config, **changes)  # type: ignore[arg-type]
    return _config


def config() -> DomainConfig:
    return _config
