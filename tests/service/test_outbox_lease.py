"""Leases on claimed outbox rows: a worker's renewed lease keeps others off the rows it is sending, a lapsed one
gives them back promptly, two workers never send one Message-ID twice; the coordinator's actions for stuck rows."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from events import clock, outbox
from events.core.tables import AuditEntry, OutboxMessage
from events.db import utcnow
from events.errors import Conflict
from lifedesign.worker import deliver_once
from tests.conftest import as_staff, csrf_from, login, make_person, parse_mail
from tests.service.test_outbox import queue, smtp_settings


async def statuses() -> list[str]:
    return [r["status"] for r in await OutboxMessage.select(OutboxMessage.status).order_by(OutboxMessage.id)]


def received_ids(server) -> Counter:
    return Counter(parse_mail(raw)["Message-ID"] for _, _, raw in server.messages)


async def until(condition, *, what: str, tries: int = 2000) -> None:
    """Poll (bounded) for something another task or thread does."""
    for _ in range(tries):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_renewed_lease_keeps_other_workers_off_and_a_lapsed_one_comes_back_promptly(db):
    await queue(2)
    with clock.travel(utcnow()):
        claimed = await outbox.claim_due("worker-a")
        kept, dropped = claimed
        lease = outbox.Lease("worker-a", [kept])
        clock.advance(outbox.LEASE * 2 / 3)
        assert await lease.renew() == 1
        clock.advance(outbox.LEASE / 2)  # past the first lease, within the renewed one
        assert await outbox.requeue_stuck() == 1  # only the row nobody renewed
        assert [m.id for m in await outbox.claim_due("worker-b")] == [dropped.id]
        assert lease.holds(kept)
        clock.advance(outbox.LEASE + timedelta(seconds=1))  # worker-a stopped renewing: back within one lease
        assert not lease.holds(kept)
        assert await outbox.requeue_stuck() == 2  # kept (worker-a) and dropped (worker-b, which stopped too)
        # The old claim can no longer record anything: the claim is (id, attempts).
        assert not await outbox.mark_sent(kept)
        assert await lease.renew() == 0 and kept.id in lease.lost
    assert await statuses() == ["awaiting_retry", "awaiting_retry"]


async def test_a_row_that_keeps_killing_its_worker_fails_instead_of_looping(db):
    await queue(1)
    with clock.travel(utcnow()):
        for _ in range(outbox.MAX_ATTEMPTS):
            assert len(await outbox.claim_due("doomed")) == 1
            clock.advance(outbox.LEASE + timedelta(seconds=1))
            await outbox.requeue_stuck()
    assert await statuses() == ["failed"]


async def _slow_batch_meets_a_second_worker(settings, smtp_server, *, renewing: bool) -> dict:
    """Worker A sends a batch of 6; the 3rd is held at the SMTP server while the clock jumps 10 minutes and
    worker B runs a pass. Returns A's and B's tallies."""
    await queue(6)
    config = smtp_settings(settings, smtp_server.port)
    smtp_server.hold_at = 3
    first = asyncio.create_task(deliver_once(config, name="worker-a", renew_every=0.02))
    async def holding() -> bool:
        return smtp_server.holding.is_set()

    await until(holding, what="worker A mid-send")
    with clock.travel(timedelta(minutes=10)):  # A's batch runs long (a slow server)

        async def renewed() -> bool:
            rows = await OutboxMessage.select(OutboxMessage.lease_expires_at).where(
                OutboxMessage.status == "inflight")
            return all(r["lease_expires_at"] > utcnow() for r in rows)

        if renewing:
            await until(renewed, what="worker A renewing its lease")
        second = await deliver_once(config, name="worker-b")
        smtp_server.release.set()
        first = await first
    return {"a": first, "b": second}


async def test_a_slow_batch_is_not_taken_over_while_its_worker_renews(db, settings, smtp_server):
    tallies = await _slow_batch_meets_a_second_worker(settings, smtp_server, renewing=True)
    assert tallies["b"]["requeued"] == 0 and tallies["b"]["sent"] == 0
    assert tallies["a"]["sent"] == 6
    stored = {r["message_id"] for r in await OutboxMessage.select(OutboxMessage.message_id)}
    assert received_ids(smtp_server) == Counter({message_id: 1 for message_id in stored})  # 0 lost, 0 twice
    assert await statuses() == ["sent"] * 6


async def test_negative_control_without_renewal_the_second_worker_sends_twice(db, settings, smtp_server,
                                                                             monkeypatch):
    async def no_renewal(self):
        return 0

    monkeypatch.setattr(outbox.Lease, "renew", no_renewal)
    tallies = await _slow_batch_meets_a_second_worker(settings, smtp_server, renewing=False)
    assert tallies["b"]["requeued"] == 4 and tallies["b"]["sent"] == 4
    assert tallies["a"]["lost"] == 3  # A saw its lease run out and left the rest to B
    twice = [message_id for message_id, n in received_ids(smtp_server).items() if n > 1]
    assert len(twice) == 1  # the one A had on the wire: the duplicate the lease prevents
    assert await statuses() == ["sent"] * 6


async def test_two_workers_deliver_every_mail_exactly_once(db, settings, smtp_server):
    await queue(30)
    config = smtp_settings(settings, smtp_server.port)

    async def worker(name: str) -> int:
        sent = 0
        while (tally := await deliver_once(config, batch=4, name=name))["sent"]:
            sent += tally["sent"]
        return sent

    first, second = await asyncio.gather(worker("w1"), worker("w2"))
    assert first + second == 30
    ids = received_ids(smtp_server)
    assert len(ids) == 30 and set(ids.values()) == {1}
    owners = {r["claimed_by"] for r in await OutboxMessage.select(OutboxMessage.claimed_by)}
    assert owners <= {"w1", "w2"}


async def test_a_coordinator_releases_or_withdraws_a_stuck_row(db, settings):
    await queue(3)
    coordinator = as_staff(None)
    stuck, fresh, queued = await outbox.claim_due("gone-worker", limit=3)
    await outbox.Lease("busy-worker", [fresh]).renew()  # another owner: renew leaves it alone
    with pytest.raises(Conflict) as early:
        await outbox.release_stuck(stuck.id, actor=coordinator)
    assert early.value.code == "not_stuck"  # its worker may still be sending it
    with clock.travel(outbox.LEASE + timedelta(seconds=1)):
        found = await outbox.view(coordinator)
        assert found["stuck"] == 3 and all(m["stuck"] for m in found["messages"])
        await outbox.release_stuck(stuck.id, actor=coordinator)
        await outbox.withdraw_message(fresh.id, actor=coordinator)
        with pytest.raises(Conflict):
            await outbox.release_stuck(stuck.id, actor=coordinator)  # no longer stuck
        assert await statuses() == ["awaiting_retry", "withdrawn", "inflight"]
        tally = await deliver_once(settings)  # the released row, and the last one the worker re-queues itself
        assert tally["requeued"] == 1 and tally["sent"] == 2
    actions = [r["action"] for r in await AuditEntry.select(AuditEntry.action).order_by(AuditEntry.id)]
    assert "outbox_release" in actions and "outbox_withdraw" in actions
    assert await statuses() == ["sent", "withdrawn", "sent"]


async def test_the_outbox_page_shows_stuck_rows_with_their_actions(db, client):
    email = "coord-outbox@kanazawa-ward.example.jp"
    await make_person("coordinator", email)
    await login(client, email)
    await outbox.claim_due("gone-worker", limit=50)  # the login mail itself, claimed by a worker that dies
    with clock.travel(outbox.LEASE + timedelta(seconds=1)):
        page = await client.get("/coordinator/outbox")
        assert page.status_code == 200
        assert "止まっている" in page.text and "gone-worker" in page.text
        (row_id,) = [r["id"] for r in await OutboxMessage.select(OutboxMessage.id)]
        assert f"/coordinator/outbox/{row_id}/release" in page.text
        answer = await client.post(f"/coordinator/outbox/{row_id}/release", data={"_csrf": csrf_from(page.text)},
                                   follow_redirects=False)
        assert answer.status_code == 303
        again = await client.post(f"/coordinator/outbox/{row_id}/release", data={"_csrf": csrf_from(page.text)})
        assert again.status_code == 409 and "ワーカー" in again.text  # a friendly page, not a 500
    assert await statuses() == ["awaiting_retry"]
