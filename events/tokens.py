"""Secret link tokens: made here, and only their digest is ever stored or compared.

Login links, guardian-consent links, calendar feeds, reminder opt-outs, survey links and API tokens all
follow one rule: the person holds the random token, the database holds `digest(token)` (SHA-256, hex).
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32


def new_token(nbytes: int = TOKEN_BYTES) -> str:
    return secrets.token_urlsafe(nbytes)


def digest(token: str) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()
