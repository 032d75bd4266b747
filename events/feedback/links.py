"""Survey links: the personal ones in mail, and the one on-site link of a survey (events.feedback.onsite).

link token  = HMAC(server secret, "feedback-link:" + request nonce)   (regenerable for the reminder)
token_hash  = SHA-256(link token)                                    (stored, to find the request)

The database holds the nonce and the token hash but not the secret, so from the database alone one cannot
rebuild a link. A link finds its request, never an anonymous answer: answer keys are random
(events.feedback.answering), so even a logged link joins nothing to what was answered. The secret is set by
the shell at start-up (`configure_secret`); events/ does not read the shell's settings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

from events.tokens import digest

_secret: list[bytes] = []
_secret_source: list[Callable[[], str]] = []


def configure_secret(secret: str) -> None:
    if len(secret) < 32:
        raise ValueError("the feedback link secret must be at least 32 characters")
    _secret[:] = [hashlib.sha256(b"lifedesign-feedback:" + secret.encode()).digest()]


def configure_secret_source(source: Callable[[], str]) -> None:
    """Read the secret on first use, not at import (a bad setting must not break importing the app)."""
    _secret_source[:] = [source]


def _key() -> bytes:
    if not _secret and _secret_source:
        configure_secret(_secret_source[0]())
    if not _secret:
        raise RuntimeError("feedback links need a secret: call events.feedback.links.configure_secret() first")
    return _secret[0]


def link_token(nonce: str) -> str:
    digest = hmac.new(_key(), f"feedback-link:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _sign(message: str) -> str:
    mac = hmac.new(_key(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def onsite_token(survey_id: int) -> str:
    """The survey's one on-site link (printed, or as a QR code): the same for everyone, per survey, never per
    person; derived, not stored."""
    return _sign(f"feedback-onsite:{survey_id}")[:22]


def slot_signature(survey_id: int, nonce: str) -> str:
    """Signs an on-site answer slot (events.feedback.onsite) so a browser cannot make one up."""
    return _sign(f"feedback-slot:{survey_id}:{nonce}")


def same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


token_hash = digest  # the one digest of secret links (events.tokens)
