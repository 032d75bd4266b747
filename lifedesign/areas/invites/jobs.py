"""Worker jobs of the invites area (idempotent, one cheap query when nothing is due)."""

from __future__ import annotations

from events.invites import invites


async def send_missing_invites() -> int:
    """A confirmed place whose confirmation mail carried no invite gets an invite mail of its own."""
    return await invites.send_missing_invites()
