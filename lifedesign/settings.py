"""Settings read once from LIFEDESIGN_* environment variables into a typed object."""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit


class SettingsError(Exception):
    """A malformed setting; the message names the variable."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # "none" | "starttls" | "tls"
    username: str | None = None
    password: str | None = None
    timeout: float = 20.0


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    smtp: SmtpSettings | None
    mail_from: str
    mail_from_name: str
    base_url: str
    secret_key: str
    run_worker_in_serve: bool = True
    session_idle_minutes: int = 120
    session_absolute_hours: int = 24
    consent_expiry_hours: int = 72
    reminder_days_before: int = 1
    reminder_hour: int = 9
    survey_delay_hours: int = 2

    @property
    def database_kind(self) -> str:
        return "postgresql" if self.database_url.startswith("postgres") else "sqlite"

    @property
    def sqlite_path(self) -> Path:
        from events.db import sqlite_path

        return Path(sqlite_path(self.database_url))

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def mail_domain(self) -> str:
        return self.mail_from.rsplit("@", 1)[-1]


def _int(env: dict[str, str], name: str, default: int, low: int = 0, high: int = 10**6) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _database_url(env: dict[str, str], data_dir: Path) -> str:
    raw = env.get("LIFEDESIGN_DATABASE_URL", "").strip()
    if not raw:
        return f"sqlite:///{(data_dir / 'lifedesign.sqlite3').resolve()}"
    parts = urlsplit(raw)
    if parts.scheme in ("postgresql", "postgres"):
        if not parts.hostname and not parts.path.strip("/"):
            raise SettingsError(f"LIFEDESIGN_DATABASE_URL has no host or database name: {raw!r}")
        try:
            _ = parts.port
        except ValueError:
            raise SettingsError(f"LIFEDESIGN_DATABASE_URL has a bad port: {raw!r}") from None
        return raw
    if parts.scheme == "sqlite":
        if not parts.path or parts.path == "/":
            raise SettingsError(f"LIFEDESIGN_DATABASE_URL needs a file path, e.g. sqlite:///var/db.sqlite3: {raw!r}")
        return raw
    raise SettingsError(
        f"LIFEDESIGN_DATABASE_URL must start with sqlite:/// or postgresql://, got {raw!r}"
    )


def _smtp(env: dict[str, str]) -> SmtpSettings | None:
    raw = env.get("LIFEDESIGN_SMTP_URL", "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    security = {"smtp": "none", "smtp+starttls": "starttls", "smtps": "tls"}.get(parts.scheme)
    if security is None:
        raise SettingsError(
            f"LIFEDESIGN_SMTP_URL must start with smtp://, smtp+starttls:// or smtps://, got {parts.scheme or raw!r}"
        )
    if not parts.hostname:
        raise SettingsError(f"LIFEDESIGN_SMTP_URL has no host: {raw!r}")
    try:
        port = parts.port or {"none": 25, "starttls": 587, "tls": 465}[security]
    except ValueError:
        raise SettingsError(f"LIFEDESIGN_SMTP_URL has a bad port: {raw!r}") from None
    return SmtpSettings(
        host=parts.hostname,
        port=port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=float(_int(env, "LIFEDESIGN_SMTP_TIMEOUT", 20, 1, 600)),
    )


def _base_url(env: dict[str, str]) -> str:
    raw = env.get("LIFEDESIGN_BASE_URL", "").strip() or "http://127.0.0.1:8000"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"LIFEDESIGN_BASE_URL must be an http(s) URL like https://lifedesign.example.jp, got {raw!r}")
    return raw.rstrip("/")


def _secret_key(env: dict[str, str], data_dir: Path) -> str:
    raw = env.get("LIFEDESIGN_SECRET_KEY", "")
    if raw:
        if len(raw) < 32:
            raise SettingsError("LIFEDESIGN_SECRET_KEY must be at least 32 characters long")
        return raw
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    data_dir = Path(env.get("LIFEDESIGN_DATA_DIR", "").strip() or "./var")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"LIFEDESIGN_DATA_DIR {str(data_dir)!r} cannot be created: {exc.strerror}") from None
    mail_from = env.get("LIFEDESIGN_MAIL_FROM", "").strip() or "lifedesign@kanazawa-ward.example.jp"
    if "@" not in mail_from or " " in mail_from:
        raise SettingsError(f"LIFEDESIGN_MAIL_FROM must be a bare e-mail address, got {mail_from!r}")
    return Settings(
        data_dir=data_dir.resolve(),
        database_url=_database_url(env, data_dir),
        smtp=_smtp(env),
        mail_from=mail_from.lower(),
        mail_from_name=env.get("LIFEDESIGN_MAIL_FROM_NAME", "").strip() or "金沢区こども家庭支援課",
        base_url=_base_url(env),
        secret_key=_secret_key(env, data_dir),
        run_worker_in_serve=env.get("LIFEDESIGN_WORKER_IN_SERVE", "1") not in ("0", "false", "no"),
        session_idle_minutes=_int(env, "LIFEDESIGN_SESSION_IDLE_MINUTES", 120, 1, 10_000),
        session_absolute_hours=_int(env, "LIFEDESIGN_SESSION_ABSOLUTE_HOURS", 24, 1, 10_000),
        consent_expiry_hours=_int(env, "LIFEDESIGN_CONSENT_EXPIRY_HOURS", 72, 1, 10_000),
        reminder_days_before=_int(env, "LIFEDESIGN_REMINDER_DAYS_BEFORE", 1, 0, 30),
        reminder_hour=_int(env, "LIFEDESIGN_REMINDER_HOUR", 9, 0, 23),
        survey_delay_hours=_int(env, "LIFEDESIGN_SURVEY_DELAY_HOURS", 2, 0, 24 * 30),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
