"""Worker jobs of home visits: idempotent, cheap when nothing is due."""

from __future__ import annotations

from events.visits import requests


async def expire_visit_consents() -> int:
    """Guardian consents past their date become expired (the student is told)."""
    return await requests.expire_consents()


JOBS = [expire_visit_consents]
