"""The outbox worker: claims due rows, delivers them, records the outcome. Also runs due domain jobs."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from events import consent, outbox, places, retention
from lifedesign.settings import Settings, get_settings
from lifedesign.transport import FileTransport, SmtpTransport, Transport

log = logging.getLogger("lifedesign.worker")

Job = Callable[[], Awaitable[object]]
# The kernel's own jobs, then each installed area's (lottery draws at window close, vetting, surveys …).
KERNEL_JOBS: list[Job] = [
    consent.expire_due,  # guardian consent requests past their time
    places.expire_offers,  # waiting-list offers past their deadline pass to the next in line
    retention.daily_purge,  # once a day: personal data past its retention period (one indexed check otherwise)
]
PERIODIC_JOBS: list[Job] = []


def jobs_of(area_modules: list) -> list[Job]:
    return [*KERNEL_JOBS, *(job for area in area_modules for job in area.JOBS)]


def make_transport(settings: Settings) -> Transport:
    return SmtpTransport(settings.smtp) if settings.smtp else FileTransport(settings.mail_dir)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


async def deliver_once(settings: Settings | None = None, *, batch: int = 50, name: str | None = None,
                       renew_every: float = outbox.RENEW_EVERY) -> dict[str, int]:
    """One pass: re-queue rows whose worker is gone, claim a batch under a lease, build the drafts' bytes once,
    deliver them over one connection (reconnecting after a broken session) while the lease is renewed."""
    settings = settings or get_settings()
    tally = {"sent": 0, "retry": 0, "failed": 0, "lost": 0, "requeued": await outbox.tidy()}
    name = name or worker_id()
    claimed = await outbox.claim_due(name, limit=batch)
    if not claimed:
        return tally
    lease = outbox.Lease(name, claimed)
    async with lease.kept(every=renew_every):
        ready, unbuildable = await outbox.freeze(claimed)
        tally["failed"] += unbuildable
        async with make_transport(settings) as transport:
            for message in ready:
                if not lease.holds(message):  # another worker may have it by now: leave it to them
                    tally["lost"] += 1
                    log.warning("mail %s: lease of %s lost before sending", message.id, name)
                    continue
                outcome = await transport.send(message.id, settings.mail_from, message.recipient, message.message)
                if outcome.kind == "sent":
                    if not await outbox.mark_sent(message):
                        log.warning("mail %s sent after its lease ran out (it may arrive twice)", message.id)
                    tally["sent"] += 1
                elif outcome.kind == "temporary":
                    state = await outbox.mark_retry(message, outcome.detail)
                    tally["failed" if state == "failed" else "retry"] += 1
                    log.warning("mail %s to %s deferred: %s", message.id, message.recipient, outcome.detail)
                else:
                    await outbox.mark_failed(message, outcome.detail)
                    tally["failed"] += 1
                    log.error("mail %s to %s failed: %s", message.id, message.recipient, outcome.detail)
                lease.done(message)
    return tally


async def run_jobs() -> None:
    for job in PERIODIC_JOBS:
        try:
            await job()
        except Exception:  # one failing job must not stop mail delivery
            log.exception("periodic job %s failed", getattr(job, "__name__", job))


async def run_forever(stop: asyncio.Event, *, interval: float = 2.0) -> None:
    settings = get_settings()
    log.info("worker %s started (%s)", worker_id(), "smtp" if settings.smtp else f"files in {settings.mail_dir}")
    while not stop.is_set():
        try:
            await run_jobs()
            tally = await deliver_once(settings)
            if tally["sent"] or tally["retry"] or tally["failed"]:
                continue  # there may be more due right away
        except Exception:
            log.exception("worker pass failed; trying again shortly")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
