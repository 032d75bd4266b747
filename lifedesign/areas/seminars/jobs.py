"""Worker jobs of seminars: lottery draws at window close, guardian-consent expiry (idempotent, cheap when idle)."""

from __future__ import annotations

from events.seminars import consent, draws


async def draw_due_lotteries() -> int:
    return await draws.draw_due_lotteries()


async def expire_guardian_consents() -> int:
    return await consent.expire_consents()


JOBS = [draw_due_lotteries, expire_guardian_consents]
