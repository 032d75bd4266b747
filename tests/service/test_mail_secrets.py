"""Secrets at rest: once a mail carrying a token link (login, guardian consent, survey, unsubscribe, a guardian's
data link) has been sent, a copy of the database holds no link that still works. The test copies every table,
collects every link it can read in any column (drafts, MIME bytes with any transfer encoding), and tries each
against the app; before sending, the same procedure finds working links (the negative control)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from urllib.parse import urlsplit

from events import auth, clock, privacy
from events.core.tables import OutboxMessage
from events.db import raw
from events.feedback import sending, surveys
from events.seminars import registration
from lifedesign.worker import deliver_once
from tests.conftest import _all_tables
from tests.service.seminars_helpers import adult, email_of, minor, new_event
from tests.service.test_feedback_service import make_event, register

LINK = re.compile(r"(?:https?|webcal)://[^\s<>\"'\\]+")
BEARER = re.compile(r"/[A-Za-z0-9_-]{20,}(?:\.ics)?$")  # a path ending in a random token: whoever holds it, acts


def _texts(value: object) -> list[str]:
    """What someone with a copy of a column can read: the raw text, and if it is a mail, every decoded part."""
    if isinstance(value, memoryview):
        value = bytes(value)
    if not isinstance(value, bytes):
        return [repr(value)]
    found = [value.decode("utf-8", "replace")]
    if b"Content-Transfer-Encoding" in value:
        message = email.message_from_bytes(value, policy=email.policy.default)
        for part in message.walk():
            if not part.is_multipart():
                found.append((part.get_payload(decode=True) or b"").decode("utf-8", "replace"))
        found.extend(str(v) for v in message.values())
    return found


async def copy_of_database() -> list[dict]:
    """Every row of every table, as someone with a read-only copy (a backup, a dump) would have it."""
    return [row for table in _all_tables() for row in await raw(f"SELECT * FROM {table._meta.tablename}")]


async def bearer_links() -> set[str]:
    links: set[str] = set()
    for row in await copy_of_database():
        for value in row.values():
            for text in _texts(value):
                links.update(link.rstrip(".,)>") for link in LINK.findall(text))
    return {link for link in links if BEARER.search(urlsplit(link).path)}


async def working(client, links: set[str]) -> set[str]:
    """The links whose page opens (200) for someone holding only the link."""
    client.cookies.clear()
    alive = set()
    for link in links:
        path = urlsplit(link).path
        if (await client.get(path)).status_code == 200:
            alive.add(path.split("/")[1])
    return alive


async def secret_mails() -> None:
    """One of each: a login link, a guardian's consent request, a guardian's data link, a survey, a reminder
    with its unsubscribe link."""
    student = await adult()
    await auth.request_login(await email_of(student), client="test-secrets")
    await registration.register(await new_event(capacity=5), await minor(guardian="mother@example.jp"))
    await privacy.request_guardian_link("mother@example.jp", client="test-secrets")
    await registration.register(await new_event(capacity=5), student)  # confirmed: a reminder for the day before
    past = await make_event()
    await register(past, student, "confirmed")
    await surveys.create_survey(audience="seminar_student", template="seminar_student", event_id=past,
                                anonymous=True)
    assert (await sending.run_feedback_jobs())["requested"] == 1


async def test_a_copy_of_the_database_holds_no_working_link_once_the_mails_are_sent(db, client, settings):
    await secret_mails()
    kinds = {r["kind"] for r in await OutboxMessage.select(OutboxMessage.kind).where(OutboxMessage.holds_secret.eq(True))}
    assert {"login", "consent_request", "privacy_guardian_link", "feedback_request", "reminder"} <= kinds
    # Negative control: while they wait to be sent, a copy does hold working links (the test can find them).
    assert await working(client, await bearer_links()) >= {"login", "consent", "privacy", "feedback", "reminders"}

    while (await deliver_once(settings))["sent"]:  # everything due now (the default: mail to files)
        pass
    assert await working(client, await bearer_links()) == {"reminders"}  # the reminder is due the day before
    with clock.travel(timedelta(days=10)):
        assert (await deliver_once(settings))["sent"] >= 1
    assert await working(client, await bearer_links()) == set()
    left = await OutboxMessage.select().where(OutboxMessage.holds_secret.eq(True))
    assert left == []
    sent = await OutboxMessage.select(OutboxMessage.kind, OutboxMessage.message, OutboxMessage.message_id,
                                      OutboxMessage.subject, OutboxMessage.sent_at).where(
        OutboxMessage.kind.is_in(sorted(kinds)))
    # What stays is what the outbox page and the statistics need: kind, subject, Message-ID, when.
    assert all(bytes(r["message"]) == b"" and r["message_id"] and r["subject"] and r["sent_at"] for r in sent)
    # The file transport's copies (the mail itself, outside the database) still carry the links for their holders.
    assert any("/login/" in path.read_text() for path in settings.mail_dir.glob("*.eml"))
