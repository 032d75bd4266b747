"""Settings read once from LIFEDESIGN_* environment variables into a typed object."""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from events.config import WardContact
from events.errors import Invalid
from events.phones import normalize_phone


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
class RetentionSettings:
    """How long each kind of personal data is kept (README, the privacy notice and events.retention agree)."""

    token_days: int = 7
    outbox_months: int = 6
    address_months: int = 3
    minor_months: int = 12
    survey_months: int = 24
    audit_months: int = 60
    purge_hour: int = 3
    privacy_contact: str = ""


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
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    trusted_proxies: tuple[str, ...] = ()  # networks whose X-Forwarded-For names the client (lifedesign.proxies)
    db_timeout: int = 5  # seconds to connect to / wait for a pooled connection of PostgreSQL
    db_statement_timeout: int = 30  # seconds a PostgreSQL statement may run (or wait for an answer)
    db_pool_size: int = 20  # PostgreSQL connections per serving process (N workers use N times this)
    contact: WardContact = field(default_factory=WardContact)  # the ward's contact block (pages and mails)

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


SERVED_URL_FILE = "served_url"  # where `lifedesign serve` last served this data dir (without LIFEDESIGN_BASE_URL)


def _base_url(env: dict[str, str], data_dir: Path) -> str:
    raw = env.get("LIFEDESIGN_BASE_URL", "").strip()
    if not raw:  # `demo`, `worker` … in another terminal link to where `serve` is, not to the default port
        try:
            raw = (data_dir / SERVED_URL_FILE).read_text().strip()
        except OSError:
            raw = ""
        if not raw.startswith(("http://", "https://")) or not urlsplit(raw).hostname:
            raw = ""  # a damaged file is not the operator's setting: fall back to the default
    raw = raw or "http://127.0.0.1:8000"
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


def _retention(env: dict[str, str]) -> RetentionSettings:
    retention = RetentionSettings(
        token_days=_int(env, "LIFEDESIGN_RETENTION_TOKEN_DAYS", 7, 1, 3650),
        outbox_months=_int(env, "LIFEDESIGN_RETENTION_OUTBOX_MONTHS", 6, 1, 600),
        address_months=_int(env, "LIFEDESIGN_RETENTION_ADDRESS_MONTHS", 3, 0, 600),
        minor_months=_int(env, "LIFEDESIGN_RETENTION_MINOR_MONTHS", 12, 1, 600),
        survey_months=_int(env, "LIFEDESIGN_RETENTION_SURVEY_MONTHS", 24, 1, 600),
        audit_months=_int(env, "LIFEDESIGN_RETENTION_AUDIT_MONTHS", 60, 1, 1200),
        purge_hour=_int(env, "LIFEDESIGN_PURGE_HOUR", 3, 0, 23),
        privacy_contact=env.get("LIFEDESIGN_PRIVACY_CONTACT", "").strip()[:300],
    )
    longest = max(retention.outbox_months, retention.address_months, retention.minor_months, retention.survey_months)
    if retention.audit_months < longest:  # the audit log is what shows the rest was handled: it goes last
        raise SettingsError(f"LIFEDESIGN_RETENTION_AUDIT_MONTHS must be at least {longest} (the longest other "
                            f"retention period), got {retention.audit_months}")
    return retention


def _trusted_proxies(env: dict[str, str]) -> tuple[str, ...]:
    import ipaddress

    networks = []
    for item in env.get("LIFEDESIGN_TRUSTED_PROXIES", "").replace(",", " ").split():
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingsError(f"LIFEDESIGN_TRUSTED_PROXIES must list IP addresses or networks (e.g. 10.0.0.0/8), "
                                f"got {item!r}") from None
    return tuple(networks)


def _contact(env: dict[str, str]) -> WardContact:
    default = WardContact()
    lines = {}
    for name, attr in (("OFFICE", "office"), ("ADDRESS", "address"), ("HOURS", "hours")):
        raw = " ".join(env.get(f"LIFEDESIGN_CONTACT_{name}", "").split())
        if len(raw) > 200:
            raise SettingsError(f"LIFEDESIGN_CONTACT_{name} must be at most 200 characters")
        lines[attr] = raw or getattr(default, attr)
    try:
        phone = normalize_phone(env.get("LIFEDESIGN_CONTACT_PHONE", ""))
    except Invalid:
        raise SettingsError("LIFEDESIGN_CONTACT_PHONE must be a Japanese phone number like 045-788-7777, got "
                            f"{env.get('LIFEDESIGN_CONTACT_PHONE')!r}") from None
    return WardContact(phone=phone, **lines)


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
        base_url=_base_url(env, data_dir),
        secret_key=_secret_key(env, data_dir),
        run_worker_in_serve=env.get("LIFEDESIGN_WORKER_IN_SERVE", "1") not in ("0", "false", "no"),
        session_idle_minutes=_int(env, "LIFEDESIGN_SESSION_IDLE_MINUTES", 120, 1, 10_000),
        session_absolute_hours=_int(env, "LIFEDESIGN_SESSION_ABSOLUTE_HOURS", 24, 1, 10_000),
        consent_expiry_hours=_int(env, "LIFEDESIGN_CONSENT_EXPIRY_HOURS", 72, 1, 10_000),
        reminder_days_before=_int(env, "LIFEDESIGN_REMINDER_DAYS_BEFORE", 1, 0, 30),
        reminder_hour=_int(env, "LIFEDESIGN_REMINDER_HOUR", 9, 0, 23),
        survey_delay_hours=_int(env, "LIFEDESIGN_SURVEY_DELAY_HOURS", 2, 0, 24 * 30),
        retention=_retention(env),
        trusted_proxies=_trusted_proxies(env),
        db_timeout=_int(env, "LIFEDESIGN_DB_TIMEOUT", 5, 1, 600),
        db_pool_size=_int(env, "LIFEDESIGN_DB_POOL_SIZE", 20, 2, 1000),
        db_statement_timeout=_int(env, "LIFEDESIGN_DB_STATEMENT_TIMEOUT", 30, 1, 3600),
        contact=_contact(env),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
