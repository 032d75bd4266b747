"""Retention by category, on whichever engine the suite runs (SQLite, or PostgreSQL with LIFEDESIGN_DATABASE_URL):
time moves forward past each period, `--dry-run` counts, the purge removes or scrubs exactly that, no foreign
key dangles and no statistic changes; the worker's daily run happens once a day; batches stay short."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from piccolo.conf.apps import Finder

from events import auth, clock, consent, privacy, retention
from events.config import config
from events.core.tables import (
    AuditEntry,
    GuardianAccess,
    LoginToken,
    OutboxMessage,
    Person,
    PurgeRun,
    WebSession,
)
from events.db import raw, utcnow, write_transaction
from events.feedback import surveys
from events.feedback.tables import FeedbackAnswer
from events.outbox import enqueue
from events.visits.tables import HouseholdAddress
from lifedesign import worker
from tests.conftest import as_staff, links_in, make_person, outbox_mails
from tests.service.privacy_helpers import (
    adult,
    consent_token,
    family,
    minor,
    past_event_with_named_survey,
    seminar,
    survey_figures,
)


async def dangling() -> list[str]:
    """Every foreign key of the schema whose value points at no row."""
    broken = []
    for table in Finder().get_table_classes():
        for column in table._meta.foreign_key_columns:
            target = column._foreign_key_meta.resolved_references._meta.tablename
            name = column._meta.db_column_name
            rows = await raw(f"SELECT COUNT(*) AS n FROM {table._meta.tablename} WHERE {name} IS NOT NULL AND "
                             f"{name} NOT IN (SELECT id FROM {target})")
            if rows[0]["n"]:
                broken.append(f"{table._meta.tablename}.{name}")
    return broken


async def outbox_states() -> dict[str, int]:
    rows = await raw("SELECT kind, status, COUNT(*) AS n FROM outbox_message GROUP BY kind, status")
    return {f"{r['kind']}/{r['status']}": r["n"] for r in rows}


async def deliver_all(settings) -> None:
    while (await worker.deliver_once(settings))["sent"]:
        pass


def later(**delta) -> timedelta:
    return timedelta(**delta)


async def log_in(person_id: int) -> None:
    """The real login (link mailed, then used): a session and the audit log's `login` entry."""
    email = await privacy_email(person_id)
    await auth.request_login(email, client="127.0.0.1")
    link = [u for u in links_in((await outbox_mails("login", email))[-1]) if "/login/" in u][0]
    session = await auth.consume_login(link.rsplit("/", 1)[1], client="127.0.0.1")
    await auth.end_session(session.session_id)


async def minors_due() -> int:
    category = next(c for c in retention.categories() if c.name == "minor_profiles")
    return await category.count(category.period(config()).before(utcnow()))


async def test_each_category_goes_after_its_period_and_nothing_else_does(db, settings, monkeypatch):
    coordinator = await make_person("coordinator")
    student, other = await adult(), await adult("他の 学生")
    young = await minor("mother@example.jp")
    returning = await minor("aunt@example.jp", name="再訪 花子")  # signs up now, logs in again in 20 months
    held_minor = await minor("father@example.jp", name="保全 太郎")
    await privacy.place_hold(as_staff(coordinator), held_minor, "事故報告 2026-03")
    event_id = await seminar(coordinator, capacity=5, days=3)
    from events.seminars import registration

    pending = (await registration.register(event_id, young))["id"]
    await consent.decide(await consent_token("mother@example.jp"), "give", client="127.0.0.1")
    session = await auth.create_session(student)
    await auth.end_session(session.session_id)
    await auth.request_login(await privacy_email(student), client="127.0.0.1")
    await privacy.request_guardian_link("mother@example.jp", client="127.0.0.1")
    _family, household = await family("能見台", coordinator)
    async with write_transaction():  # the vetting runs out in ten days
        from events.visits.tables import Household

        await Household.update({Household.vetted_until: utcnow().date() + timedelta(days=10)}).where(
            Household.id == household)
    past = await past_event_with_named_survey(coordinator, [student, other])
    await surveys.close_survey(past["survey"], actor=as_staff(coordinator))
    consent_link = await consent_token("mother@example.jp")  # before delivery: a sent link's bytes are erased
    await deliver_all(settings)
    mail_dir = Path(config().mail_dir)
    files = len(list(mail_dir.glob("*.eml")))
    assert files > 5
    figures, states = await survey_figures(past["survey"], coordinator), await outbox_states()

    with clock.travel(later(days=8)):
        preview = await retention.run(dry_run=True)
        due = preview.counts()
        assert due["login_links"] == 1 and due["sessions"] == 1 and due["guardian_links"] == 1
        assert due["consent_links"] == 1 and due["survey_links"] == 2  # the survey closed: its links stop working
        assert due["outbox_bodies"] == 0 and due["minor_profiles"] == 0 and due["audit_log"] == 0
        assert await LoginToken.count() == 1  # a dry run changes nothing
        done = await retention.run()
        assert done.counts() == {**due, **{k: 0 for k, v in due.items() if v == 0}}
        assert await LoginToken.count() == 0 and await GuardianAccess.count() == 0
        assert await WebSession.count().where(WebSession.person == student) == 0
        try:  # the guardian's old link no longer opens the consent page
            await consent.view(consent_link)
            raise AssertionError("the purged consent link still works")
        except consent.NotFound:
            pass
        assert (await consent.records(consent.Subject("registration", pending)))[0]["decision"] == "given"
        assert (await retention.run(dry_run=True)).due == 0

    with clock.travel(later(days=7 * 31)):
        due = (await retention.run(dry_run=True)).counts()
        assert due["outbox_bodies"] >= files and due["mail_files"] == files and due["household_addresses"] == 1
        assert due["minor_profiles"] == 0
        await retention.run()
        assert list(mail_dir.glob("*.eml")) == []
        assert await OutboxMessage.count().where((OutboxMessage.recipient != "") & OutboxMessage.status.is_in(
            ["sent", "failed", "withdrawn"])) == 0  # mail still queued (a reminder) keeps its address until sent
        assert await outbox_states() == states  # kinds, states and counts survive the scrub
        assert await HouseholdAddress.count().where(HouseholdAddress.household == household) == 0
        assert await Person.count().where(Person.erased_at.is_not_null()) == 0

    with clock.travel(later(days=20 * 31)):
        await log_in(returning)
    with clock.travel(later(days=20 * 31 + 8)):
        assert (await retention.run(only=["sessions"])).counts() == {"sessions": 1}
    with clock.travel(later(days=25 * 31)):
        due = (await retention.run(dry_run=True)).counts()
        # the held minor is passed over; the one who logged in five months ago stays although the purge of
        # sessions took that session away (the audit log's login counts) …
        assert due["minor_profiles"] == 1 and await WebSession.count().where(WebSession.person == returning) == 0
        with monkeypatch.context() as blind:  # … negative control: without the logins, they would go too
            blind.setattr(retention, "_LOGINS", retention._LOGINS.replace("action = 'login'", "1 = 0"))
            assert await minors_due() == 2
        assert await minors_due() == 1
        assert due["survey_answers"] == 2
        await retention.run()
        erased = {r["id"] for r in await Person.select(Person.id).where(Person.erased_at.is_not_null())}
        assert erased == {young}
        assert await FeedbackAnswer.count().where(FeedbackAnswer.person.is_not_null()) == 0
        assert await survey_figures(past["survey"], coordinator) == figures

    old_entries = await AuditEntry.count().where(AuditEntry.at < utcnow() + timedelta(minutes=5))
    assert old_entries > 0
    with clock.travel(later(days=61 * 31)):
        due = (await retention.run(dry_run=True)).counts()
        assert due["audit_log"] >= old_entries
        await retention.run()
        assert await AuditEntry.count().where(AuditEntry.action == "retention_purged") >= 1  # the later runs' entries
    assert await dangling() == []
    assert await PurgeRun.count() == 10  # every run, dry or not, is recorded


async def test_mail_to_held_people_and_their_guardians_stays_until_the_hold_is_lifted(db, settings):
    """A legal hold keeps the mail about the held person as it was sent — to them and to their guardian: body,
    address and the .eml copy. Control in the same run: another family's mail of the same age goes; and once the
    hold is lifted, the held mail goes too."""
    from events.seminars import registration

    coordinator = await make_person("coordinator")
    held, other = await minor("held-parent@example.jp", name="保全 次郎"), await minor("other-parent@example.jp")
    hold = await privacy.place_hold(as_staff(coordinator), held, "事故報告 2026-11")
    event_id = await seminar(coordinator, capacity=5, days=3)
    for person in (held, other):
        assert (await registration.register(event_id, person))["status"] == "pending_consent"
    await deliver_all(settings)
    held_addresses = {(await privacy_email(held)).lower(), "held-parent@example.jp"}

    async def mails() -> dict[int, tuple[str, bool, bool]]:
        """Sent mail by id: (address as it was sent, body kept, .eml copy kept)."""
        rows = await raw("SELECT id, recipient, message FROM outbox_message WHERE status = 'sent'")
        folder = Path(config().mail_dir)
        return {r["id"]: (r["recipient"].lower(), len(bytes(r["message"])) > 0,
                          (folder / f"{r['id']:08d}.eml").exists()) for r in rows}

    before = await mails()  # (a link's mail loses its body and copy on sending, and keeps its address)
    kept = {i for i, (address, _, _) in before.items() if address in held_addresses}
    gone = set(before) - kept
    assert "held-parent@example.jp" in {before[i][0] for i in kept}  # the guardian's mail is held too
    assert any(before[i][1] and before[i][2] for i in kept) and any(before[i][1] and before[i][2] for i in gone)
    with clock.travel(later(days=7 * 31)):
        due = (await retention.run(dry_run=True)).counts()
        assert due["outbox_bodies"] == len(gone) and due["mail_files"] == len(gone)
        await retention.run(only=["outbox_bodies", "mail_files"])
        after = await mails()
        assert all(after[i] == before[i] for i in kept)
        assert all(after[i] == ("", False, False) for i in gone)
        await privacy.lift_hold(as_staff(coordinator), hold)
        await retention.run(only=["outbox_bodies", "mail_files"])
        after = await mails()
        assert all(after[i] == ("", False, False) for i in before)


async def privacy_email(person_id: int) -> str:
    return (await Person.select(Person.email).where(Person.id == person_id).first())["email"]


async def test_the_daily_job_runs_once_a_day_after_its_hour(db):
    tokyo = retention.timefmt.TOKYO
    day = (utcnow() + timedelta(days=2)).astimezone(tokyo).date()
    at = lambda d, hour: datetime(d.year, d.month, d.day, hour, 30, tzinfo=tokyo)  # noqa: E731
    with clock.travel(at(day, config().purge_hour - 1)):
        assert await retention.daily_purge() is None  # before the hour
    with clock.travel(at(day, config().purge_hour)):
        assert await retention.daily_purge() is not None
        assert await retention.daily_purge() is None  # once
    with clock.travel(at(day + timedelta(days=1), 23)):
        assert await retention.daily_purge() is not None
    claims = [r["claim"] for r in await PurgeRun.select(PurgeRun.claim).order_by(PurgeRun.id)]
    assert claims == [f"daily:{day.isoformat()}", f"daily:{(day + timedelta(days=1)).isoformat()}"]
    assert retention.daily_purge in worker.KERNEL_JOBS


async def test_a_large_purge_goes_in_short_batches(db):
    now = utcnow()
    async with write_transaction():
        for index in range(600):
            await enqueue(key=f"bulk:{index}", kind="reminder", recipient=f"p{index}@example.jp", subject="件名",
                          message=b"x" * 2000)
        await raw("UPDATE outbox_message SET status = 'sent', sent_at = {}", now)
    with clock.travel(later(days=7 * 31)):
        report = await retention.run(only=["outbox_bodies"], batch=50)
    item = report.categories[0]
    assert item.done == 600 and item.batches >= 3
    assert report.longest_batch_s < 1.0
    assert await OutboxMessage.count() == 600 and await OutboxMessage.count().where(OutboxMessage.recipient != "") == 0


def test_the_period_arithmetic_and_what_the_notice_prints():
    moment = datetime(2026, 3, 31, 12, 0, tzinfo=retention.UTC)
    assert retention.Period(1, "months").before(moment) == datetime(2026, 2, 28, 12, 0, tzinfo=retention.UTC)
    assert retention.Period(13, "months").before(moment) == datetime(2025, 2, 28, 12, 0, tzinfo=retention.UTC)
    assert retention.Period(7, "days").before(moment) == datetime(2026, 3, 24, 12, 0, tzinfo=retention.UTC)
    assert (retention.Period(6, "months").ja, retention.Period(1, "days").en) == ("6か月", "1 day")
    from lifedesign import areas  # noqa: F401 - every area's categories

    policy = {p["name"]: p for p in retention.policy(config())}
    assert policy["outbox_bodies"]["period_ja"] == f"{config().retention_outbox_months}か月"
    assert {"household_addresses", "survey_answers", "reminder_links", "audit_log"} <= set(policy)
