"""Mail transports: SMTP through aiosmtplib, or `.eml` files in the data dir when no SMTP is set.

Both send the bytes the outbox stored, as they are (the file transport writes them to `<id>.eml`: the text part
is 8bit UTF-8, so the file reads as text and its links can be followed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiosmtplib

from events.mime import to_7bit
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
    """One connection per batch, opened again after a broken session (a timeout, a disconnect, a 421) for the
    rest of the batch — at most MAX_RECONNECTS times, and not after a failed connect. 4xx, timeouts and
    disconnects are temporary, 5xx permanent. 8bit bodies go with BODY=8BITMIME, or re-encoded to 7 bit for a
    server without it."""

    MAX_RECONNECTS = 3

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.client: aiosmtplib.SMTP | None = None
        self.connect_error: str = ""
        self.reconnects_left = self.MAX_RECONNECTS

    async def _connect(self) -> bool:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=s.timeout,
            use_tls=s.security == "tls", start_tls=True if s.security == "starttls" else False,
        )
        try:
            await client.connect()
            if s.username:
                await client.login(s.username, s.password or "")
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            self.connect_error = f"cannot connect to {s.host}:{s.port}: {exc}"
            client.close()
            self.client = None
            return False
        self.client = client
        return True

    async def __aenter__(self) -> SmtpTransport:
        if not await self._connect():
            self.reconnects_left = 0  # the server is not there: the batch waits for a later pass
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.client is not None and self.client.is_connected:
            try:
                await self.client.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                self.client.close()

    async def _session(self) -> aiosmtplib.SMTP | None:
        if self.client is not None and self.client.is_connected:
            return self.client
        if self.reconnects_left <= 0:
            return None
        self.reconnects_left -= 1
        if not await self._connect():
            self.reconnects_left = 0
        return self.client

    async def send(self, message_id: int, sender: str, recipient: str, message: bytes) -> Outcome:
        client = await self._session()
        if client is None:
            return Outcome("temporary", self.connect_error or "SMTP connection lost")
        options: list[str] = []
        if not message.isascii():
            if client.supports_extension("8BITMIME"):
                options.append("BODY=8BITMIME")
            else:
                message = to_7bit(message)
        try:
            errors, _response = await client.sendmail(sender, [recipient], message, mail_options=options)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused else 550
            return Outcome("permanent" if code >= 500 else "temporary", f"{code} {refused.message if refused else ''}")
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the server is closing the session: the next message gets a fresh one
                client.close()
            return Outcome("permanent" if exc.code >= 500 else "temporary", f"{exc.code} {exc.message}")
        except (TimeoutError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            client.close()  # the session's state is unknown: the next message gets a fresh one
            return Outcome("temporary", f"{type(exc).__name__}: {exc}")
        except aiosmtplib.SMTPException as exc:
            client.close()
            return Outcome("temporary", f"{type(exc).__name__}: {exc}")
        if errors:
            code, text = next(iter(errors.values()))
            return Outcome("permanent" if code >= 500 else "temporary", f"{code} {text}")
        return Outcome("sent")
