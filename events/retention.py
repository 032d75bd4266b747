"""Retention: how long each kind of personal data is kept, and the purge that applies it.

The rule this module owns: **nothing personal is kept longer than its period** (`DomainConfig.retention_*`,
set from `LIFEDESIGN_RETENTION_*`; the README and the privacy notice print the same figures from `policy()`),
and **a purge never breaks a foreign key or a statistic**: rows that other rows or counts depend on are
scrubbed, not deleted (outbox rows keep kind, state and dates; a minor's account is anonymised by
events.privacy; a named survey answer only loses the link to its person), and what is deleted is referenced by
nothing (tokens, sessions, addresses, audit entries past their time). People under a legal hold are passed over,
and so is the mail sent to them or to their guardian (bodies, addresses and the .eml copies stay until the hold
is lifted).

Each category purges in batches, one write transaction each, sized so that no batch holds the write lock for
more than about a second (`run`: a batch that took longer than `TARGET_LOCK_S` halves the next, a quick one
doubles it). Batches walk primary-key ranges, so a batch's work does not depend on the query planner. The
worker runs `daily_purge` every pass; it does the work once a day after `purge_hour` (Asia/Tokyo), claimed
by a unique row so that one worker of many does it. `lifedesign purge [--dry-run]` runs the same `run`.

Areas add their own categories (`register`) from their install(): visits (household addresses), invites
(reminder opt-out links), feedback (survey links, named answers).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from events import audit, consent, privacy, timefmt
from events.access import Actor
from events.config import DomainConfig, config
from events.core.tables import PurgeRun
from events.db import raw, utcnow, write_transaction
from events.errors import Conflict

TARGET_LOCK_S = 0.25  # a batch slower than this halves the next one; the bound we promise is about a second
MIN_BATCH, START_BATCH, MAX_BATCH = 50, 500, 5000
SYSTEM = "retention"


@dataclass(frozen=True)
class Period:
    amount: int
    unit: str  # days | months

    def before(self, moment: datetime) -> datetime:
        if self.unit == "days":
            return moment - timedelta(days=self.amount)
        months = moment.year * 12 + moment.month - 1 - self.amount
        year, month = divmod(months, 12)
        day = min(moment.day, _month_days(year, month + 1))
        return moment.replace(year=year, month=month + 1, day=day)

    @property
    def ja(self) -> str:
        if self.amount == 0:
            return "すぐ"
        return f"{self.amount}日" if self.unit == "days" else f"{self.amount}か月"

    @property
    def en(self) -> str:
        if self.amount == 0:
            return "at once"
        unit = ("day" if self.amount == 1 else "days") if self.unit == "days" else (
            "month" if self.amount == 1 else "months")
        return f"{self.amount} {unit}"


def _month_days(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


# One batch: how many rows went, and where the next batch goes on from (None: the category is done).
Batch = tuple[int, Any]


@dataclass(frozen=True)
class Category:
    """One kind of data with its period. `count(cutoff)` says how much is due; `purge(cutoff, limit, after)`
    does one batch in its own write transaction, going on from `after` (keyset order, so no row is read twice)."""

    name: str
    label: str  # what it is, as a person reads it (Japanese; English in the privacy catalog)
    what_happens: str  # what the purge does to it (Japanese)
    period: Callable[[DomainConfig], Period]
    count: Callable[[datetime], Awaitable[int]]
    purge: Callable[[datetime, int, Any], Awaitable[Batch]]
    start: Any = 0
    from_: str = "期限切れ・使用済みから"  # the period runs from … (Japanese)


_CATEGORIES: dict[str, Category] = {}


def register(category: Category) -> None:
    _CATEGORIES[category.name] = category


def categories() -> list[Category]:
    return list(_CATEGORIES.values())


def policy(cfg: DomainConfig | None = None) -> list[dict[str, Any]]:
    """The retention table the privacy notice and `lifedesign purge --dry-run` show (one source of truth)."""
    cfg = cfg or config()
    return [{"name": c.name, "label": c.label, "what_happens": c.what_happens, "from": c.from_,
             "period_ja": c.period(cfg).ja, "period_en": c.period(cfg).en, "period": c.period(cfg)}
            for c in categories()]


# ---------------------------------------------------------------- helpers for table categories


async def count_where(table: str, condition: str, *args: Any) -> int:
    rows = await raw(f"SELECT COUNT(*) AS n FROM {table} WHERE {condition}", *args)
    return int(rows[0]["n"])


async def batch_where(table: str, condition: str, args: tuple[Any, ...], *, limit: int, after: Any,
                      set_sql: str = "", set_args: tuple[Any, ...] = ()) -> Batch:
    """Delete (no `set_sql`) or update the rows matching `condition`, one write transaction per call.

    Integer keys: the next `limit` ids after `after` (a primary-key range, so the work and the lock are bounded
    whatever the planner thinks of the condition, fresh statistics or not). Other keys: the next `limit`
    matching rows in key order."""
    verb = f"UPDATE {table} SET {set_sql}" if set_sql else f"DELETE FROM {table}"
    async with write_transaction():
        if isinstance(after, int):
            top = (await raw(f"SELECT MAX(id) AS top FROM {table}"))[0]["top"]
            if top is None or after >= top:
                return 0, None
            high = after + int(limit)
            rows = await raw(f"{verb} WHERE id > {{}} AND id <= {{}} AND ({condition}) RETURNING id",
                             *set_args, after, high, *args)
            return len(rows), (high if high < top else None)
        found = await raw(f"SELECT id FROM {table} WHERE id > {{}} AND ({condition}) ORDER BY id LIMIT {int(limit)}",
                          after, *args)
        if not found:
            return 0, None
        await raw(f"{verb} WHERE id >= {{}} AND id <= {{}} AND ({condition})", *set_args, found[0]["id"],
                  found[-1]["id"], *args)
    return len(found), found[-1]["id"]


def table_category(name: str, label: str, what_happens: str, period: Callable[[DomainConfig], Period], *,
                   table: str, condition: str, args: Callable[[datetime], tuple[Any, ...]], set_sql: str = "",
                   set_args: tuple[Any, ...] = (), start: Any = 0, from_: str = "期限切れ・使用済みから") -> Category:
    async def count(cutoff: datetime) -> int:
        return await count_where(table, condition, *args(cutoff))

    async def purge(cutoff: datetime, limit: int, after: Any) -> Batch:
        return await batch_where(table, condition, args(cutoff), limit=limit, after=after, set_sql=set_sql,
                                 set_args=set_args)

    return Category(name, label, what_happens, period, count, purge, start=start, from_=from_)


HELD = "(SELECT person FROM legal_hold WHERE lifted_at IS NULL)"
# The addresses of held people and of their guardians: mail to them is kept as it was sent.
HELD_ADDRESSES = ("(SELECT lower(email) FROM person WHERE id IN " + HELD + " UNION SELECT lower(email) FROM "
                  "former_email WHERE person IN " + HELD + " UNION SELECT lower(guardian_email) FROM student_profile "
                  "WHERE guardian_email <> '' AND person IN " + HELD + ")")


def token_period(cfg: DomainConfig) -> Period:
    """Links and tokens (areas' too): `retention_token_days`."""
    return Period(cfg.retention_token_days, "days")


def outbox_period(cfg: DomainConfig) -> Period:
    """Sent mail and what came with it (areas' too): `retention_outbox_months`."""
    return Period(cfg.retention_outbox_months, "months")


def _audit(cfg: DomainConfig) -> Period:
    return Period(cfg.retention_audit_months, "months")


def _minors(cfg: DomainConfig) -> Period:
    return Period(cfg.retention_minor_months, "months")


def _now_period(cfg: DomainConfig) -> Period:
    return Period(0, "days")


# ---------------------------------------------------------------- the kernel's categories


_OUTBOX_DONE = "status IN ('sent', 'failed', 'withdrawn')"
_OUTBOX_DUE = (f"{_OUTBOX_DONE} AND COALESCE(sent_at, created_at) < {{}} AND (recipient <> '' OR length(message) > 0 "
               f"OR subject <> '') AND lower(recipient) NOT IN {HELD_ADDRESSES}")
_ERASED_DUE = f"{_OUTBOX_DONE} AND group_key LIKE 'erased:%' AND (recipient <> '' OR length(message) > 0)"
_SCRUB = "recipient = '', subject = '', message = {}, last_error = ''"


async def _scrub_outbox(condition: str, args: tuple[Any, ...], limit: int, after: Any) -> Batch:
    async with write_transaction():
        top = (await raw("SELECT MAX(id) AS top FROM outbox_message"))[0]["top"]
        if top is None or after >= top:
            return 0, None
        high = after + int(limit)
        rows = await raw(f"UPDATE outbox_message SET {_SCRUB} WHERE id > {{}} AND id <= {{}} AND ({condition}) "
                         "RETURNING id", b"", after, high, *args)
    privacy.remove_mail_files(r["id"] for r in rows)  # after the commit: a file is only a copy
    return len(rows), (high if high < top else None)


async def _outbox_count(cutoff: datetime) -> int:
    return await count_where("outbox_message", _OUTBOX_DUE, cutoff)


async def _outbox_purge(cutoff: datetime, limit: int, after: Any) -> Batch:
    return await _scrub_outbox(_OUTBOX_DUE, (cutoff,), limit, after)


async def _erased_count(cutoff: datetime) -> int:
    return await count_where("outbox_message", _ERASED_DUE)


async def _erased_purge(cutoff: datetime, limit: int, after: Any) -> Batch:
    return await _scrub_outbox(_ERASED_DUE, (), limit, after)


async def _mail_files(cutoff: datetime) -> list[Path]:
    """The .eml copies older than `cutoff`, except those of mail kept under a legal hold (<outbox id>.eml)."""
    folder = config().mail_dir
    if folder is None or not Path(folder).is_dir():
        return []
    held = {f"{row['id']:08d}.eml" for row in await raw(
        f"SELECT id FROM outbox_message WHERE lower(recipient) IN {HELD_ADDRESSES}")}
    limit = cutoff.timestamp()
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if (entry.name.endswith(".eml") and entry.name not in held and entry.is_file()
                    and entry.stat().st_mtime < limit):
                found.append(Path(entry.path))
    return sorted(found)


async def _files_count(cutoff: datetime) -> int:
    return len(await _mail_files(cutoff))


async def _files_purge(cutoff: datetime, limit: int, after: Any) -> Batch:
    """No database lock is involved: one scan of the folder, every due file removed (not `limit` at a time)."""
    removed = 0
    for path in await _mail_files(cutoff):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return removed, None


async def _consent_count(cutoff: datetime) -> int:
    return await consent.count_purgeable_links(cutoff)


async def _consent_purge(cutoff: datetime, limit: int, after: Any) -> Batch:
    async with write_transaction():
        done = await consent.purge_links(cutoff, limit=limit)
    return done, (after + 1 if done else None)


# ---------------------------------------------------------------- minors' profiles


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # an aggregate over SQLite loses the column type
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _birth(value: Any) -> date:
    return date.fromisoformat(value[:10]) if isinstance(value, str) else value


_ACTIVITY = """
SELECT sp.person AS person, sp.birth_date AS birth_date, p.created_at AS created_at,
  (SELECT MAX(e.ends_at) FROM registration r JOIN event e ON e.id = r.event WHERE r.person = sp.person) AS last_event,
  (SELECT MAX(w.last_seen_at) FROM web_session w WHERE w.person = sp.person) AS last_seen,
  (SELECT MAX(v.updated_at) FROM visit_request v WHERE v.student = sp.person) AS last_request
FROM student_profile sp JOIN person p ON p.id = sp.person
WHERE p.erased_at IS NULL AND sp.person > {} AND sp.person NOT IN """ + HELD + """
ORDER BY sp.person LIMIT {}
"""


# Logins as the audit log recorded them: sessions go after `retention_token_days`, the audit log lasts longer
# than any minor's period (lifedesign.settings refuses otherwise), so a login months ago still counts.
_LOGINS = """
SELECT actor AS person, MAX(at) AS last_login FROM audit_entry
WHERE action = 'login' AND actor > {} AND actor <= {} GROUP BY actor
"""


async def _minor_candidates(cutoff: datetime, after: int, limit: int) -> tuple[list[int], int | None]:
    """Minors at their last activity (a registration's event, a login, a visit request, sign-up), when that
    activity is older than the cutoff. Returns (due people, last person scanned)."""
    rows = await raw(_ACTIVITY, after, limit)
    if not rows:
        return [], None
    logins = {r["person"]: r["last_login"] for r in await raw(_LOGINS, after, rows[-1]["person"])}
    due = []
    for row in rows:
        row = {**row, "last_login": logins.get(row["person"])}
        moments = [m for m in (_moment(row[k]) for k in ("created_at", "last_event", "last_seen", "last_request",
                                                          "last_login")) if m]
        last = max(moments)
        if last < cutoff and consent.is_minor(_birth(row["birth_date"]), timefmt.tokyo_date(last)):
            due.append(row["person"])
    return due, rows[-1]["person"]


async def _minors_count(cutoff: datetime) -> int:
    total, after = 0, 0
    while after is not None:
        due, after = await _minor_candidates(cutoff, after, 2000)
        total += len(due)
    return total


async def _minors_purge(cutoff: datetime, limit: int, after: Any) -> Batch:
    """One scan of up to `limit` students, then one transaction per person erased (each well under a second)."""
    due, last = await _minor_candidates(cutoff, after, min(limit, 500))
    done = 0
    for person_id in due:
        async with write_transaction():
            try:
                await privacy.erase(person_id, actor=Actor.system(SYSTEM), by=None, reason="retention", notify=False)
            except Conflict:  # erased meanwhile
                continue
        done += 1
    return done, last


# ---------------------------------------------------------------- register the kernel's categories


register(table_category(
    "login_links", "ログイン用リンク", "削除します", token_period, table="login_token",
    condition="expires_at < {}", args=lambda cutoff: (cutoff,), from_="有効期限から"))
register(table_category(
    "sessions", "ログインの記録（セッション）", "削除します", token_period, table="web_session",
    condition="COALESCE(ended_at, last_seen_at) < {}", args=lambda cutoff: (cutoff,), from_="ログアウト・最後の利用から"))
register(table_category(
    "request_records", "送信の重複防止・回数制限の記録", "削除します", token_period, table="idempotent_request",
    condition="created_at < {}", args=lambda cutoff: (cutoff,), from_="記録から"))
register(Category("consent_links", "保護者の同意のお願いのリンク（同意の記録は残ります）", "リンクを無効化", token_period,
                  _consent_count, _consent_purge, from_="回答・期限切れから"))
register(table_category(
    "guardian_links", "保護者向けの情報確認リンク", "削除します", token_period, table="guardian_access",
    condition="expires_at < {}", args=lambda cutoff: (cutoff,), from_="有効期限から"))
register(Category("outbox_bodies", "送信済みメールの本文・宛先", "本文と宛先を消去（件数・種類・日時は統計として残ります）",
                  outbox_period, _outbox_count, _outbox_purge, from_="送信から"))
register(table_category(  # an old address goes with the mail sent to it (the same period); a held person's stays
    "former_emails", "訂正前のメールアドレス", "削除します", outbox_period, table="former_email",
    condition="replaced_at < {} AND person NOT IN " + HELD, args=lambda cutoff: (cutoff,), from_="訂正から"))
register(Category("mail_files", "メールの控え（.eml ファイル）", "削除します", outbox_period, _files_count, _files_purge,
                  start="", from_="作成から"))
register(Category("erased_mail", "削除したアカウントへの最後のメール", "送信後すぐに本文と宛先を消去", _now_period,
                  _erased_count, _erased_purge, from_="送信から"))
register(Category("minor_profiles", "18歳未満の方のアカウント", "匿名化（参加の件数は統計として残ります）", _minors,
                  _minors_count, _minors_purge, from_="最後の利用から"))
register(table_category(
    "audit_log", "監査ログ", "削除します", _audit, table="audit_entry", condition="at < {}",
    args=lambda cutoff: (cutoff,), from_="記録から"))


# ---------------------------------------------------------------- running


@dataclass
class CategoryReport:
    name: str
    label: str
    period: str
    due: int = 0
    done: int = 0
    batches: int = 0
    seconds: float = 0.0
    longest_batch_s: float = 0.0


@dataclass
class Report:
    dry_run: bool
    started_at: datetime
    categories: list[CategoryReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return sum(c.done for c in self.categories)

    @property
    def due(self) -> int:
        return sum(c.due for c in self.categories)

    @property
    def longest_batch_s(self) -> float:
        return max((c.longest_batch_s for c in self.categories), default=0.0)

    def counts(self) -> dict[str, int]:
        return {c.name: (c.due if self.dry_run else c.done) for c in self.categories}


Progress = Callable[[CategoryReport], None]


async def run(*, dry_run: bool = False, now: datetime | None = None, progress: Progress | None = None,
              only: list[str] | None = None, trigger: str = "cli", run_id: int | None = None,
              batch: int = START_BATCH) -> Report:
    """Every category (or `only` these): count what is due; unless `dry_run`, purge it batch by batch."""
    now = now or utcnow()
    report = Report(dry_run=dry_run, started_at=now)
    began = time.perf_counter()
    cfg = config()
    for category in categories():
        if only and category.name not in only:
            continue
        cutoff = category.period(cfg).before(now)
        item = CategoryReport(category.name, category.label, category.period(cfg).ja)
        item.due = await category.count(cutoff)
        report.categories.append(item)
        if dry_run or item.due == 0:
            if progress:
                progress(item)
            continue
        size, after = max(MIN_BATCH, min(batch, MAX_BATCH)), category.start
        started = time.perf_counter()
        while after is not None:
            tick = time.perf_counter()
            done, after = await category.purge(cutoff, size, after)
            took = time.perf_counter() - tick
            item.done += done
            item.batches += 1
            item.longest_batch_s = max(item.longest_batch_s, took)
            size = max(MIN_BATCH, size // 2) if took > TARGET_LOCK_S else (
                min(MAX_BATCH, size * 2) if took < TARGET_LOCK_S / 5 else size)
            if progress:
                progress(item)
        item.seconds = time.perf_counter() - started
    report.seconds = time.perf_counter() - began
    async with write_transaction():
        counts = report.counts()
        if run_id is None:
            await PurgeRun.insert(PurgeRun(trigger=trigger, dry_run=dry_run, started_at=now, finished_at=utcnow(),
                                           counts=counts))
        else:
            await PurgeRun.update({PurgeRun.finished_at: utcnow(), PurgeRun.counts: counts}).where(
                PurgeRun.id == run_id)
        if not dry_run:
            await audit.record(Actor.system(SYSTEM if trigger == "worker" else "cli"), "retention_purged",
                               subject_type="retention", detail={"counts": counts, "trigger": trigger})
    return report


async def daily_purge(now: datetime | None = None) -> Report | None:
    """Worker job: once a day after `purge_hour` (Asia/Tokyo). Cheap otherwise: one indexed lookup."""
    now = now or utcnow()
    local = now.astimezone(timefmt.TOKYO)
    if local.hour < config().purge_hour:
        return None
    claim = f"daily:{local.date().isoformat()}"
    if await PurgeRun.exists().where(PurgeRun.claim == claim):
        return None
    async with write_transaction():
        rows = await PurgeRun.insert(PurgeRun(claim=claim, trigger="worker", started_at=now)).on_conflict(
            action="DO NOTHING").returning(PurgeRun.id)
    if not rows:  # another worker claimed today's run
        return None
    return await run(now=now, trigger="worker", run_id=rows[0]["id"])
