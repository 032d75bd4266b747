"""The audit log: logins, refused authorisation, staff viewing personal data, admin actions."""

from __future__ import annotations

from typing import Any

from events.core.tables import AuditEntry
from events.db import utcnow


async def record(
    action: str,
    *,
    actor_id: int | None = None,
    subject_type: str = "",
    subject_id: object = "",
    detail: dict[str, Any] | None = None,
    client: str = "",
) -> None:
    await AuditEntry.insert(
        AuditEntry(
            at=utcnow(),
            actor=actor_id,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            detail=detail or {},
            client=client[:64],
        )
    )


async def recent(*, limit: int = 200, offset: int = 0, action: str | None = None) -> list[dict[str, Any]]:
    query = AuditEntry.select(
        AuditEntry.all_columns(), AuditEntry.actor.email.as_alias("actor_email")
    ).order_by(AuditEntry.id, ascending=False).limit(limit).offset(offset)
    if action:
        query = query.where(AuditEntry.action == action)
    return await query
