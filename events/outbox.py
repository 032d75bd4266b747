"""The transactional outbox: rows written with the change that causes them, delivered by a worker.

States: queued → inflight → sent; inflight → awaiting_retry (4xx, timeout, disconnect) → inflight …;
inflight → failed (5xx, or too many attempts); queued/awaiting_retry → withdrawn (a later change made
the mail pointless, e.g. a reminder for a cancelled place).

A row stores a draft (`events.mime.Draft`, written by `events.mail.queue_mail` in the caller's
transaction); the worker that first claims it builds the MIME bytes and stores them before its first
attempt, so every retry sends the same bytes. The Message-ID, derived from the idempotency key and unique
in the table, is the send key: every attempt of a row carries it, so a receiver can tell a copy.

Leases: a claim gives the worker the row until `lease_expires_at` (LEASE); the worker renews the lease of its
batch while it sends and sends a message only while its lease has SEND_MARGIN left. The claim is named by
(id, attempts, claimed_by): storing bytes, renewing and marking the outcome apply only to the claim that still
holds the row, so a worker that lost its lease cannot overwrite another's. A worker that dies leaves its rows
in flight until the lease expires; then `requeue_stuck` gives them back at once (a coordinator can too).

Secrets: a row that `holds_secret` (a token link) has its bytes erased when it is sent or withdrawn.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from events import access, audit
from events.access import Actor
from events.core.tables import OUTBOX_STATES, OutboxMessage
from events.db import aware, engine, insert_query, is_sqlite, raw, utcnow, write_behind, write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.mime import is_draft, wire_bytes

log = logging.getLogger("events.outbox")

MAX_ATTEMPTS = 8
LEASE = timedelta(seconds=30)  # a dead worker's rows come back this long after its last renewal
RENEW_EVERY = 5.0  # seconds between lease renewals while a batch is being sent
SEND_MARGIN = timedelta(seconds=10)  # a message is sent only while the lease has this long to run
_NOT_LEFT = ("queued", "awaiting_retry", "failed")  # a coordinator may still withdraw these


@dataclass(frozen=True)
class ClaimedMessage:
    id: int
    recipient: str
    message: bytes  # a draft right after the claim; the MIME bytes after `freeze`
    attempts: int  # this claim's number: with id and claimed_by, it names the claim
    kind: str
    message_id: str = ""
    claimed_by: str = ""  # the worker holding the claim


def key_of(key: str) -> str:
    """The idempotency key as the outbox stores it (its column holds 200 characters)."""
    return key[:200]


async def enqueue(
    *,
    key: str,
    kind: str,
    recipient: str,
    subject: str,
    message: bytes,
    due_at: datetime | None = None,
    group_key: str = "",
    message_id: str | None = None,
    holds_secret: bool = False,
    behind: bool = False,
) -> bool:
    """Insert the row in the caller's transaction; False when a row with that key already exists. With
    `behind` the insert may be held until the transaction's next statement or its commit (`db.write_behind`)
    and the answer is True whether or not the key was new (the row exists once either way)."""
    now = utcnow()
    values = {
        "idempotency_key": key_of(key), "kind": kind, "recipient": recipient, "subject": subject[:500],
        "message": message, "message_id": message_id, "holds_secret": holds_secret, "status": "queued",
        "due_at": due_at or now, "created_at": now, "group_key": group_key,
    }
    once = " ON CONFLICT (idempotency_key) DO NOTHING"
    if behind:
        await write_behind(insert_query(OutboxMessage, values, once))
        return True
    return bool(await engine().run_querystring(insert_query(OutboxMessage, values, once + " RETURNING id")))


# The row is still held by this claim: what the claimer writes is fenced by (id, attempts, claimer).
_HELD = "id = {} AND attempts = {} AND claimed_by = {} AND status = 'inflight'"


def _held(message: ClaimedMessage) -> Any:
    return ((OutboxMessage.id == message.id) & (OutboxMessage.attempts == message.attempts)
            & (OutboxMessage.claimed_by == message.claimed_by) & (OutboxMessage.status == "inflight"))


# Erases the bytes of a row that holds a secret, in the same UPDATE that ends the row's delivery.
_ERASE_SECRET = "message = CASE WHEN holds_secret THEN {} ELSE message END, holds_secret = {}"


async def withdraw(group_key: str) -> int:
    """Withdraw not-yet-sent mail of a group (e.g. the reminder of a place that was cancelled)."""
    rows = await raw(
        f"UPDATE outbox_message SET status = 'withdrawn', lease_expires_at = NULL, {_ERASE_SECRET} "
        "WHERE group_key = {} AND status IN ('queued', 'awaiting_retry') RETURNING id",
        b"", False, group_key,
    )
    return len(rows)


async def claim_due(
    worker_id: str, *, limit: int = 20, now: datetime | None = None, lease: timedelta = LEASE
) -> list[ClaimedMessage]:
    """Claim due rows for one worker, each with a lease. PostgreSQL: SKIP LOCKED lets workers share the queue."""
    now = now or utcnow()
    lock = "" if is_sqlite() else " FOR UPDATE SKIP LOCKED"
    async with write_transaction():
        rows = await raw(
            "UPDATE outbox_message SET status = 'inflight', claimed_at = {}, claimed_by = {}, lease_expires_at = {}, "
            "attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM outbox_message WHERE status IN ('queued', 'awaiting_retry') AND due_at <= {} "
            f"ORDER BY due_at, id LIMIT {int(limit)}{lock}) "
            "RETURNING id, recipient, message, attempts, kind, message_id, claimed_by",
            now,
            worker_id[:64],
            now + lease,
            now,
        )
    claimed = [
        ClaimedMessage(
            id=row["id"], recipient=row["recipient"], message=bytes(row["message"]),
            attempts=row["attempts"], kind=row["kind"], message_id=row["message_id"] or "",
            claimed_by=row["claimed_by"],
        )
        for row in rows
    ]
    return sorted(claimed, key=lambda m: m.id)


class Lease:
    """One worker's hold on its claimed batch: renewed while it sends, checked before each message."""

    def __init__(self, worker_id: str, claimed: Iterable[ClaimedMessage], *, now: datetime | None = None,
                 length: timedelta = LEASE) -> None:
        self.worker_id = worker_id[:64]
        self.length = length
        self.claims = {m.id: m.attempts for m in claimed}
        self.until = (now or utcnow()) + length  # no later than what claim_due wrote
        self.lost: set[int] = set()

    def holds(self, message: ClaimedMessage) -> bool:
        """Still this worker's to send, with time to spare: else another worker may take it any moment."""
        return (self.claims.get(message.id) == message.attempts and message.id not in self.lost
                and utcnow() + SEND_MARGIN <= self.until)

    def done(self, message: ClaimedMessage) -> None:
        self.claims.pop(message.id, None)

    async def renew(self) -> int:
        """Extend the lease of the rows still held; a row re-queued or re-claimed meanwhile is lost."""
        if not self.claims:
            return 0
        until = utcnow() + self.length
        claims = sorted(self.claims.items())
        async with write_transaction():
            rows = await raw(
                "UPDATE outbox_message SET lease_expires_at = {} WHERE status = 'inflight' AND claimed_by = {} AND ("
                + " OR ".join("(id = {} AND attempts = {})" for _ in claims) + ") RETURNING id",
                until, self.worker_id, *(value for claim in claims for value in claim),
            )
        held = {row["id"] for row in rows}
        self.lost |= set(self.claims) - held
        self.until = until
        return len(held)

    @asynccontextmanager
    async def kept(self, every: float = RENEW_EVERY) -> AsyncIterator[Lease]:
        """Renew in the background for as long as the block runs (a failed renewal only lets the lease run out)."""
        stop = asyncio.Event()

        async def beat() -> None:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=every)
                    return
                except TimeoutError:
                    pass
                try:
                    await self.renew()
                except Exception:  # the database may be away: sending stops when the lease runs short
                    log.warning("lease renewal of %s failed", self.worker_id, exc_info=True)

        task = asyncio.create_task(beat())
        try:
            yield self
        finally:
            stop.set()
            await task


async def freeze(claimed: list[ClaimedMessage]) -> tuple[list[ClaimedMessage], int]:
    """Build each claimed draft's MIME bytes once and store them before the first attempt (a retry sends
    those bytes). Returns the messages ready to send, and how many could not be built (marked failed)."""
    ready: list[ClaimedMessage] = []
    built: list[ClaimedMessage] = []
    failed = 0
    for message in claimed:
        if not message.message:
            await mark_failed(message, "nothing to send: the message was erased")
            failed += 1
            continue
        if not is_draft(message.message):
            ready.append(message)
            continue
        try:
            data = wire_bytes(message.message)
        except (ValueError, KeyError, TypeError) as exc:
            await mark_failed(message, f"cannot build the message: {exc}")
            failed += 1
            continue
        built.append(replace(message, message=data))
        await asyncio.sleep(0)  # building is CPU work: let the event loop breathe between messages
    if built:
        stored: set[int] = set()
        async with write_transaction():
            for message in built:
                rows = await raw(
                    f"UPDATE outbox_message SET message = {{}} WHERE {_HELD} RETURNING id",
                    message.message, message.id, message.attempts, message.claimed_by,
                )
                stored.update(row["id"] for row in rows)
        ready.extend(m for m in built if m.id in stored)
    return sorted(ready, key=lambda m: m.id), failed


async def mark_sent(message: ClaimedMessage) -> bool:
    """False when the claim no longer held the row (its lease ran out and another worker took it)."""
    async with write_transaction():
        rows = await raw(
            f"UPDATE outbox_message SET status = 'sent', sent_at = {{}}, last_error = '', lease_expires_at = NULL, "
            f"{_ERASE_SECRET} WHERE {_HELD} RETURNING id",
            utcnow(), b"", False, message.id, message.attempts, message.claimed_by,
        )
    return bool(rows)


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter: 30 s, 1 min, 2 min … capped at 1 h."""
    ceiling = min(3600.0, 30.0 * (2 ** max(0, attempts - 1)))
    return timedelta(seconds=(rng or random).uniform(ceiling / 2, ceiling))


async def mark_retry(message: ClaimedMessage, error: str) -> str:
    """A temporary failure: try again later, or give up after MAX_ATTEMPTS."""
    status = "failed" if message.attempts >= MAX_ATTEMPTS else "awaiting_retry"
    async with write_transaction():
        await OutboxMessage.update(
            {
                OutboxMessage.status: status,
                OutboxMessage.due_at: utcnow() + backoff(message.attempts),
                OutboxMessage.last_error: error[:2000],
                OutboxMessage.lease_expires_at: None,
            }
        ).where(_held(message))
    return status


async def mark_failed(message: ClaimedMessage, error: str) -> None:
    async with write_transaction():
        await OutboxMessage.update(
            {OutboxMessage.status: "failed", OutboxMessage.last_error: error[:2000],
             OutboxMessage.lease_expires_at: None}
        ).where(_held(message))


# In flight past its lease: the claimer died (or lost the database). Rows from before leases: by claim age.
_STUCK = "status = 'inflight' AND (lease_expires_at < {} OR (lease_expires_at IS NULL AND claimed_at < {}))"


async def requeue_stuck(*, now: datetime | None = None) -> int:
    """A worker that died mid-send leaves rows in flight; once their lease has run out, give them back to the
    queue at once (a row that has used up its attempts fails instead: it may be what kills the worker)."""
    now = now or utcnow()
    async with write_transaction():
        rows = await raw(
            "UPDATE outbox_message SET status = CASE WHEN attempts >= {} THEN 'failed' ELSE 'awaiting_retry' END, "
            "due_at = {}, lease_expires_at = NULL, last_error = 're-queued: the lease of ' || claimed_by || ' ran out' "
            f"WHERE {_STUCK} RETURNING id",
            MAX_ATTEMPTS, now, now, now - LEASE,
        )
    return len(rows)


async def erase_spent_secrets() -> int:
    """Bytes of secret-bearing rows that were sent or withdrawn elsewhere (an area's own withdrawal)."""
    async with write_transaction():
        rows = await raw(
            "UPDATE outbox_message SET message = {}, holds_secret = {} WHERE holds_secret AND status IN "
            "('sent', 'withdrawn') RETURNING id", b"", False,
        )
    return len(rows)


async def tidy(*, now: datetime | None = None) -> int:
    """The worker's pass before claiming: stuck rows back to the queue, spent secrets erased (one transaction).
    Returns how many rows were re-queued."""
    async with write_transaction():
        requeued = await requeue_stuck(now=now)
        await erase_spent_secrets()
    return requeued


async def _row_for_action(message_id: int) -> dict[str, Any]:
    rows = await raw(
        "SELECT id, status, lease_expires_at, claimed_at, length(message) AS size FROM outbox_message WHERE id = {}",
        message_id,
    )
    if not rows:
        raise NotFound("そのメールは見つかりません。", code="message_not_found")
    return rows[0]


def is_stuck(row: dict[str, Any], now: datetime) -> bool:
    """In flight with its lease run out: the worker that claimed it is gone."""
    if row["status"] != "inflight":
        return False
    lease, claimed = aware(row.get("lease_expires_at")), aware(row.get("claimed_at"))
    return lease < now if lease is not None else claimed is None or claimed < now - LEASE


async def retry_failed(message_id: int, *, actor: Actor) -> None:
    access.require_staff(actor)
    async with write_transaction():
        row = await _row_for_action(message_id)
        if row["status"] != "failed":
            raise Conflict("失敗したメールだけを再送できます。", code="not_failed")
        if not row["size"]:
            raise Conflict("このメールの本文は消去済みのため再送できません。元の手続きからもう一度送ってください。",
                           code="message_erased")
        await OutboxMessage.update(
            {OutboxMessage.status: "queued", OutboxMessage.due_at: utcnow(), OutboxMessage.attempts: 0}
        ).where(OutboxMessage.id == message_id)
        await audit.record(actor, "outbox_retry", subject_type="outbox_message", subject_id=message_id)


async def release_stuck(message_id: int, *, actor: Actor) -> None:
    """A coordinator gives a stuck row (its worker gone) back to the queue, to be sent at the next pass."""
    access.require_staff(actor)
    async with write_transaction():
        row = await _row_for_action(message_id)
        if not is_stuck(row, utcnow()):
            raise Conflict("送信中のメールは、担当のワーカーが応答しなくなるまで戻せません。", code="not_stuck")
        await raw(
            "UPDATE outbox_message SET status = 'awaiting_retry', due_at = {}, lease_expires_at = NULL, "
            "last_error = 're-queued by a coordinator' WHERE id = {} AND status = 'inflight'", utcnow(), message_id,
        )
        await audit.record(actor, "outbox_release", subject_type="outbox_message", subject_id=message_id)


async def withdraw_message(message_id: int, *, actor: Actor) -> None:
    """A coordinator stops a mail that has not left (queued, waiting for a retry, failed, or stuck)."""
    access.require_staff(actor)
    async with write_transaction():
        row = await _row_for_action(message_id)
        if row["status"] not in _NOT_LEFT and not is_stuck(row, utcnow()):
            raise Conflict("送信済み・送信中・取り下げ済みのメールは取りやめられません。", code="not_withdrawable")
        await raw(
            f"UPDATE outbox_message SET status = 'withdrawn', lease_expires_at = NULL, {_ERASE_SECRET} "
            "WHERE id = {}", b"", False, message_id,
        )
        await audit.record(actor, "outbox_withdraw", subject_type="outbox_message", subject_id=message_id,
                           detail={"was": row["status"]})


async def counts() -> dict[str, int]:
    rows = await raw("SELECT status, COUNT(*) AS n FROM outbox_message GROUP BY status")
    result = {state: 0 for state in OUTBOX_STATES}
    result.update({row["status"]: row["n"] for row in rows})
    return result


async def due_count(now: datetime | None = None) -> int:
    """Mails due now and not delivered yet (a reminder queued for next week is not waiting)."""
    return await OutboxMessage.count().where(
        OutboxMessage.status.is_in(["queued", "inflight", "awaiting_retry"]) & (OutboxMessage.due_at <= (now or utcnow())))


async def stuck_count(now: datetime | None = None) -> int:
    now = now or utcnow()
    rows = await raw(f"SELECT COUNT(*) AS n FROM outbox_message WHERE {_STUCK}", now, now - LEASE)
    return rows[0]["n"]


async def view(actor: Actor, *, status: str | None = None, limit: int = 100) -> dict[str, Any]:
    """The coordinators' outbox page: counts, how many are stuck, and the latest messages with their recipients
    (audited)."""
    access.require_staff(actor)
    if status and status not in OUTBOX_STATES:
        raise Invalid("状態の指定が正しくありません。", code="invalid_status", field="status")

    async def read() -> dict[str, Any]:
        return {"counts": await counts(), "stuck": await stuck_count(),
                "messages": await listing(status, limit=min(max(limit, 1), 500))}

    return await audit.viewed(actor, "staff_viewed_outbox", read, subject_type="outbox",
                              detail=lambda found: {"status": status, "count": len(found["messages"])})


async def listing(status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The latest rows, newest first; `stuck` and `erased` say which coordinator actions apply."""
    where = "WHERE status = {} " if status else ""
    rows = await raw(
        "SELECT id, kind, recipient, subject, status, attempts, due_at, sent_at, last_error, created_at, claimed_by, "
        f"lease_expires_at, claimed_at, message_id, length(message) AS size FROM outbox_message {where}"
        f"ORDER BY id DESC LIMIT {int(limit)}",
        *([status] if status else []),
    )
    now = utcnow()
    for row in rows:
        for name in ("due_at", "sent_at", "created_at", "lease_expires_at", "claimed_at"):
            row[name] = aware(row[name])
        row["stuck"] = is_stuck(row, now)
        row["erased"] = not row.pop("size")
        row.pop("claimed_at")
    return rows
