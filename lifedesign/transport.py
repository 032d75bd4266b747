"""Mail transports: SMTP through aiosmtplib, or `.eml` files in the data dir when no SMTP is set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiosmtplib

from lifedesign.settings import SmtpSettings


@dataclass(frozen=True)
class Outcome:
    kind: str  # "sent" | "temporary" | "permanent"
    detail: str = ""


class Transport(Protocol):
    async def __aenter__(self) -> Transport: ...
    async def __aexit__(self, *exc: object) -> None: ...
    async def send(self, message_id: int, sender: str, recipient: str, message: bytes) -> Outcome: ...


class FileTransport:
    """Writes each message to <dir>/<id>.eml atomically: nothing half-written is ever visible."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def __aenter__(self) -> FileTransport:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def send(self, message_id: int, sender: str, recipient: str, message: bytes) -> Outcome:
        final = self.directory / f"{message_id:08d}.eml"
        temporary = final.with_suffix(".tmp")
        try:
            temporary.write_bytes(message)
            os.replace(temporary, final)
        except OSError as exc:
            return Outcome("temporary", f"cannot write {final}: {exc.strerror}")
        return Outcome("sent")


class SmtpTransport:
    """One connection per batch; 4xx, timeouts and disconnects are temporary, 5xx permanent."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.client: aiosmtplib.SMTP | None = None
        self.connect_error: str = ""

    async def __aenter__(self) -> SmtpTransport:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=s.timeout,
            use_tls=s.security == "tls", start_tls=True if s.security == "starttls" else False,
        )
        try:
            await client.connect()
            if s.username:
                await client.login(s.username, s.password or "")
            self.client = client
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            self.connect_error = f"cannot connect to {s.host}:{s.port}: {exc}"
            self.client = None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.client is not None:
            try:
                await self.client.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                self.client.close()

    async def send(self, message_id: int, sender: str, recipient: str, message: bytes) -> Outcome:
        if self.client is None or not self.client.is_connected:
            return Outcome("temporary", self.connect_error or "SMTP connection lost")
        try:
            errors, _response = await self.client.sendmail(sender, [recipient], message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused else 550
            return Outcome("permanent" if code >= 500 else "temporary", f"{code} {refused.message if refused else ''}")
        except aiosmtplib.SMTPResponseException as exc:
            return Outcome("permanent" if exc.code >= 500 else "temporary", f"{exc.code} {exc.message}")
        except (TimeoutError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            return Outcome("temporary", f"{type(exc).__name__}: {exc}")
        except aiosmtplib.SMTPException as exc:
            return Outcome("temporary", f"{type(exc).__name__}: {exc}")
        if errors:
            code, text = next(iter(errors.values()))
            return Outcome("permanent" if code >= 500 else "temporary", f"{code} {text}")
        return Outcome("sent")
