"""A worker process killed (SIGKILL) in the middle of an SMTP transaction, against a real aiosmtpd on 127.0.0.1:
its rows stay leased (no one else sends them meanwhile), come back once the lease has run out (seconds, not
minutes), and every mail arrives exactly once — 0 lost, 0 duplicate Message-ID."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from datetime import timedelta

from events import clock, outbox
from events.core.tables import OutboxMessage
from lifedesign.worker import deliver_once
from tests.conftest import parse_mail
from tests.service.test_outbox import queue, smtp_settings
from tests.service.test_outbox_lease import until

MAILS = 8
HELD = 3  # the worker dies while the server holds its 3rd DATA


def start_worker(port: int, data_dir) -> subprocess.Popen:
    env = {**os.environ, "LIFEDESIGN_SMTP_URL": f"smtp://127.0.0.1:{port}", "LIFEDESIGN_DATA_DIR": str(data_dir)}
    with open(data_dir / "worker.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "lifedesign", "worker"], env=env, stdout=log, stderr=log)


async def test_sigkill_mid_send_loses_nothing_and_sends_nothing_twice(db, settings, smtp_server, tmp_path,
                                                                    monkeypatch):
    await queue(MAILS, prefix="kill")
    expected = {r["message_id"] for r in await OutboxMessage.select(OutboxMessage.message_id)}
    smtp_server.hold_at = HELD
    process = start_worker(smtp_server.port, tmp_path)
    try:
        async def mid_send() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"worker exited early: {(tmp_path / 'worker.log').read_text()[-2000:]}")
            return smtp_server.holding.is_set()

        await until(mid_send, what="the worker process in the middle of its 3rd message", tries=12_000)
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    assert process.returncode == -signal.SIGKILL
    smtp_server.release.set()
    config = smtp_settings(settings, smtp_server.port)

    async def states() -> Counter:
        return Counter(r["status"] for r in await OutboxMessage.select(OutboxMessage.status))

    # The kill happened mid-send: two delivered, the rest in flight under the dead worker's lease.
    assert await states() == Counter(sent=HELD - 1, inflight=MAILS - HELD + 1)
    owners = {r["claimed_by"] for r in await OutboxMessage.select(OutboxMessage.claimed_by).where(
        OutboxMessage.status == "inflight")}
    assert owners == {f"{socket.gethostname()}:{process.pid}"[:64]}
    # While the lease runs, no other worker touches them (it cannot tell a dead worker from a slow one).
    assert (await deliver_once(config, name="rescuer"))["sent"] == 0
    with clock.travel(outbox.LEASE + timedelta(seconds=1)):  # seconds later, not ten minutes
        # Negative control: without re-queueing, the dead worker's mails would stay in flight for ever (lost).
        with monkeypatch.context() as patched:
            patched.setattr(outbox, "requeue_stuck", _no_requeue)
            assert (await deliver_once(config, name="rescuer"))["sent"] == 0
        tally = await deliver_once(config, name="rescuer")
    assert tally["requeued"] == MAILS - HELD + 1 and tally["sent"] == MAILS - HELD + 1
    assert await states() == Counter(sent=MAILS)
    received = Counter(parse_mail(raw)["Message-ID"] for _, _, raw in smtp_server.messages)
    assert received == Counter({message_id: 1 for message_id in expected})  # 0 lost, 0 twice


async def _no_requeue(*, now=None) -> int:
    return 0
