"""The transactional outbox: rows written with the change that causes them, delivered by a worker.

States: queued → inflight → sent; inflight → awaiting_retry (4xx, timeout, disconnect) → inflight …;
inflight → failed (5xx, or too many attempts); queued/awaiting_retry → withdrawn (a later change made
the mail pointless, e.g. a reminder for a cancelled place). Rows stuck in flight are re-queued.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from events import access, audit
from events.access import Actor
from events.core.tables import OUTBOX_STATES, OutboxMessage
from events.db import is_sqlite, raw, utcnow, write_transaction
from events.errors import Conflict, Invalid, NotFound

MAX_ATTEMPTS = 8
STUCK_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class ClaimedMessage:
    id: int
    recipient: str
    message: bytes
    attempts: int
    kind: str


async def enqueue(
    *,
    key: str,
    kind: str,
    recipient: str,
    subject: str,
    message: bytes,
    due_at: datetime | None = None,
    group_key: str = "",
) -> bool:
    """Insert the row in the caller's transaction; False when a row with that key already exists."""
    now = utcnow()
    rows = await OutboxMessage.insert(
        OutboxMessage(
            idempotency_key=key[:200],
            kind=kind,
            recipient=recipient,
            subject=subject[:500],
            message=message,
            status="queued",
            due_at=due_at or now,
            created_at=now,
            group_key=group_key,
        )
    ).on_conflict(target=OutboxMessage.idempotency_key, action="DO NOTHING").returning(OutboxMessage.id)
    return bool(rows)


async def withdraw(group_key: str) -> int:
    """Withdraw not-yet-sent mail of a group (e.g. the reminder of a place that was cancelled)."""
    rows = await OutboxMessage.update({OutboxMessage.status: "withdrawn"}).where(
        (OutboxMessage.group_key == group_key) & OutboxMessage.status.is_in(["queued", "awaiting_retry"])
    ).returning(OutboxMessage.id)
    return len(rows)


async def claim_due(worker_id: str, *, limit: int = 20, now: datetime | None = None) -> list[ClaimedMessage]:
    """Claim due rows for one worker. PostgreSQL: SKIP LOCKED lets several workers share the queue."""
    now = now or utcnow()
    lock = "" if is_sqlite() else " FOR UPDATE SKIP LOCKED"
    async with write_transaction():
        rows = await raw(
            "UPDATE outbox_message SET status = 'inflight', claimed_at = {}, claimed_by = {}, attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM outbox_message WHERE status IN ('queued', 'awaiting_retry') AND due_at <= {} "
            f"ORDER BY due_at, id LIMIT {int(limit)}{lock}) "
            "RETURNING id, recipient, message, attempts, kind",
            now,
            worker_id,
            now,
        )
    claimed = [
        ClaimedMessage(
            id=row["id"], recipient=row["recipient"], message=bytes(row["message"]),
            attempts=row["attempts"], kind=row["kind"],
        )
        for row in rows
    ]
    return sorted(claimed, key=lambda m: m.id)


async def mark_sent(message_id: int) -> None:
    async with write_transaction():
        await OutboxMessage.update(
            {OutboxMessage.status: "sent", OutboxMessage.sent_at: utcnow(), OutboxMessage.last_error: ""}
        ).where((OutboxMessage.id == message_id) & (OutboxMessage.status == "inflight"))


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter: 30 s, 1 min, 2 min … capped at 1 h."""
    ceiling = min(3600.0, 30.0 * (2 ** max(0, attempts - 1)))
    return timedelta(seconds=(rng or random).uniform(ceiling / 2, ceiling))


async def mark_retry(message_id: int, attempts: int, error: str) -> str:
    """A temporary failure: try again later, or give up after MAX_ATTEMPTS."""
    status = "failed" if attempts >= MAX_ATTEMPTS else "awaiting_retry"
    async with write_transaction():
        await OutboxMessage.update(
            {
                OutboxMessage.status: status,
                OutboxMessage.due_at: utcnow() + backoff(attempts),
                OutboxMessage.last_error: error[:2000],
            }
        ).where((OutboxMessage.id == message_id) & (OutboxMessage.status == "inflight"))
    return status


async def mark_failed(message_id: int, error: str) -> None:
    async with write_transaction():
        await OutboxMessage.update({OutboxMessage.status: "failed", OutboxMessage.last_error: error[:2000]}).where(
            (OutboxMessage.id == message_id) & (OutboxMessage.status == "inflight")
        )


async def requeue_stuck(*, older_than: timedelta = STUCK_AFTER, now: datetime | None = None) -> int:
    """A worker that died mid-send leaves rows in flight; give them back to the queue."""
    cutoff = (now or utcnow()) - older_than
    async with write_transaction():
        rows = await OutboxMessage.update(
            {OutboxMessage.status: "awaiting_retry", OutboxMessage.due_at: utcnow(),
             OutboxMessage.last_error: "re-queued: stuck in flight"}
        ).where((OutboxMessage.status == "inflight") & (OutboxMessage.claimed_at < cutoff)).returning(OutboxMessage.id)
    return len(rows)


async def retry_failed(message_id: int, *, actor: Actor) -> None:
    access.require_staff(actor)
    async with write_transaction():
        row = await OutboxMessage.select(OutboxMessage.status).where(OutboxMessage.id == message_id).first()
        if row is None:
            raise NotFound("そのメールは見つかりません。", code="message_not_found")
        if row["status"] != "failed":
            raise Conflict("失敗したメールだけを再送できます。", code="not_failed")
        await OutboxMessage.update(
            {OutboxMessage.status: "queued", OutboxMessage.due_at: utcnow(), OutboxMessage.attempts: 0}
        ).where(OutboxMessage.id == message_id)
        await audit.record(actor, "outbox_retry", subject_type="outbox_message", subject_id=message_id)


async def counts() -> dict[str, int]:
    rows = await raw("SELECT status, COUNT(*) AS n FROM outbox_message GROUP BY status")
    result = {state: 0 for state in ("queued", "inflight", "awaiting_retry", "sent", "failed", "withdrawn")}
    result.update({row["status"]: row["n"] for row in rows})
    return result


async def view(actor: Actor, *, status: str | None = None, limit: int = 100) -> dict[str, Any]:
    """The coordinators' outbox page: counts and the latest messages with their recipients (audited)."""
    access.require_staff(actor)
    if status and status not in OUTBOX_STATES:
        raise Invalid("状態の指定が正しくありません。", code="invalid_status", field="status")

    async def read() -> dict[str, Any]:
        return {"counts": await counts(), "messages": await listing(status, limit=min(max(limit, 1), 500))}

    return await audit.viewed(actor, "staff_viewed_outbox", read, subject_type="outbox",
                              detail=lambda found: {"status": status, "count": len(found["messages"])})


async def listing(status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = OutboxMessage.select(
        OutboxMessage.id, OutboxMessage.kind, OutboxMessage.recipient, OutboxMessage.subject,
        OutboxMessage.status, OutboxMessage.attempts, OutboxMessage.due_at, OutboxMessage.sent_at,
        OutboxMessage.last_error, OutboxMessage.created_at,
    ).order_by(OutboxMessage.id, ascending=False).limit(limit)
    if status:
        query = query.where(OutboxMessage.status == status)
    return await query
