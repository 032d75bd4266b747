"""Fair allocation as Yokohama runs it: priority groups, tickets and the seed commitment, companions, one
application per series, accommodation requests, and answering a waiting-list offer.

- `priority_of(event, person, ward_tie) -> (int, str)`   the application's priority group and why, from the rules
      the coordinator chose for the event (`Event.priority_rules`, in precedence order: a rule earlier in the list
      outweighs every rule after it). The reason is shown to the applicant in their mail and on the event page.
- `ensure_commitment(event_id) -> str`   a lottery's secret seed and its public sha256 commitment, made once —
      when the event is published (or, for events published before commitments existed, before the first
      application). Nobody can choose the seed after seeing the applications.
- `new_ticket() -> str`   an application's pseudonymous ticket (public; no name in it).
- `companions_of(emails, event, applicant)`   the people an applicant brings (at most `Event.max_companions`,
      each with an account, each eligible as the applicant is); the group wins or loses together.
- `check_one_per_series(event, person_ids)`   refuses a second live application in a series marked so.
- `answer_offer(registration_id, *, actor, accept)`   a waiting-list offer taken or declined (the ledger decides).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from events import lottery, people, places
from events.access import Actor
from events.core.tables import Person, StudentProfile
from events.db import write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.seminars.tables import LIVE_STATES, PRIORITY_RULES, WARD_TIES, Event, Registration

RULE_LABELS = {
    "ward": "金沢区にお住まい・通学・通勤の方",
    "first_time": "このシリーズに初めて参加する方",
    "high_school": "高校生",
    "university": "大学生",
}
RULE_LABELS_EN = {
    "ward": "Live, study or work in Kanazawa ward",
    "first_time": "First time in this series",
    "high_school": "High-school student",
    "university": "University student",
}
NO_PRIORITY = "none"  # the event has priority rules and the application meets none of them
NO_PRIORITY_LABELS = {"ja": "優先の条件なし", "en": "No priority rule met"}
WARD_TIE_LABELS = {"lives": "区内在住", "studies": "区内在学", "works": "区内在勤", "none": "いずれでもない"}
TICKET_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud over the phone
TICKET_LENGTH = 8


def new_ticket() -> str:
    return "".join(secrets.choice(TICKET_ALPHABET) for _ in range(TICKET_LENGTH))


def clean_rules(value: object) -> list[str]:
    rules = list(value or []) if isinstance(value, list | tuple) else []
    unknown = [r for r in rules if r not in PRIORITY_RULES]
    if unknown:
        raise Invalid(f"不明な優先の条件です: {', '.join(map(str, unknown))}", code="invalid_priority_rule",
                      field="priority_rules")
    return [r for r in PRIORITY_RULES if r in rules]  # precedence is the fixed order of PRIORITY_RULES


def clean_ward_tie(value: object, *, required: bool) -> str:
    tie = str(value or "").strip()
    if not tie:
        if required:
            raise Invalid("金沢区にお住まい・通学・通勤かどうかを選んでください。", code="ward_tie_required",
                          field="ward_tie")
        return ""
    if tie not in WARD_TIES:
        raise Invalid("金沢区との関わりの選択が正しくありません。", code="invalid_ward_tie", field="ward_tie")
    return tie


async def _first_time(event: Mapping[str, Any], person_id: int) -> bool:
    if not event.get("series"):
        return True
    return not await Registration.exists().where(
        (Registration.person == person_id) & (Registration.event != event["id"])
        & (Registration.event.series == event["series"])
        & Registration.status.is_in(["confirmed", "attended"]))


async def priority_of(event: Mapping[str, Any], person_id: int, ward_tie: str) -> tuple[int, str]:
    """The priority group (higher is drawn first) and its reason (the rule codes met, comma-separated, or
    `NO_PRIORITY`), recorded at application time; `priority_label` puts it in words."""
    rules = clean_rules(event.get("priority_rules"))
    if not rules:
        return 0, ""
    profile = await StudentProfile.select(StudentProfile.school_level).where(StudentProfile.person == person_id).first()
    level = profile["school_level"] if profile else ""
    met = []
    for rule in rules:
        if rule == "ward":
            ok = ward_tie in ("lives", "studies", "works")
        elif rule == "first_time":
            ok = await _first_time(event, person_id)
        else:
            ok = level == rule
        if ok:
            met.append(rule)
    value = sum(2 ** (len(rules) - 1 - rules.index(rule)) for rule in met)
    return value, ",".join(met) if met else NO_PRIORITY


def reason_of_priority(rules: Iterable[str], value: int) -> str:
    """The reason recorded with a priority group, read back from its value (the public record has values only)."""
    rules = list(rules)
    if not rules:
        return ""
    met = [rule for index, rule in enumerate(rules) if int(value) & 2 ** (len(rules) - 1 - index)]
    return ",".join(met) if met else NO_PRIORITY


def priority_label(reason: str | None, locale: str = "ja") -> str:
    """The recorded reason (rule codes) in words for people; "" where the event has no priority rules."""
    if not reason:
        return ""
    english = locale == "en"
    if reason == NO_PRIORITY:
        return NO_PRIORITY_LABELS["en" if english else "ja"]
    labels = RULE_LABELS_EN if english else RULE_LABELS
    return (", " if english else "、").join(labels.get(code, code) for code in reason.split(","))


async def ensure_commitment(event_id: int, *, entropy: bytes | None = None) -> str:
    """The lottery's public commitment (made once, in the caller's transaction)."""
    seed = lottery.new_seed(entropy or os.urandom(16))
    await Event.update({Event.lottery_seed: seed, Event.lottery_commitment: lottery.commitment(seed)}).where(
        (Event.id == event_id) & (Event.lottery_seed == ""))
    row = await Event.select(Event.lottery_seed, Event.lottery_commitment).where(Event.id == event_id).first()
    if not row["lottery_commitment"]:  # a seed made before commitments existed: commit to it now
        await Event.update({Event.lottery_commitment: lottery.commitment(row["lottery_seed"])}).where(
            Event.id == event_id)
        return lottery.commitment(row["lottery_seed"])
    return row["lottery_commitment"]


async def companions_of(emails: Iterable[str], event: Mapping[str, Any], applicant: int) -> list[int]:
    """The people one application brings: each must hold an account; at most `max_companions`."""
    wanted = list(dict.fromkeys(people.normalize_email(e) for e in emails if str(e).strip()))
    if not wanted:
        return []
    limit = int(event.get("max_companions") or 0)
    if len(wanted) > limit:
        raise Invalid(f"このイベントで一緒に申し込めるのは{limit}人までです。" if limit else
                      "このイベントは一人ずつのお申し込みです。", code="too_many_companions", field="companions")
    rows = await Person.select(Person.id, Person.email, Person.active).where(Person.email.is_in(wanted))
    found = {r["email"]: r for r in rows}
    missing = [e for e in wanted if e not in found or not found[e]["active"]]
    if missing:
        raise Invalid("一緒に申し込む方は、先にアカウントを登録してください: " + "、".join(missing),
                      code="companion_not_found", field="companions")
    ids = [found[e]["id"] for e in wanted]
    if applicant in ids:
        raise Invalid("ご本人を同行者に含めることはできません。", code="companion_is_applicant", field="companions")
    return ids


async def check_one_per_series(event: Mapping[str, Any], person_ids: Iterable[int]) -> None:
    if not event.get("one_per_series") or not event.get("series"):
        return
    clash = await Registration.select(Registration.person).where(
        Registration.person.is_in(list(person_ids)) & (Registration.event != event["id"])
        & (Registration.event.series == event["series"]) & Registration.status.is_in(list(LIVE_STATES))).first()
    if clash:
        raise Conflict("このシリーズへのお申し込みは、お一人につき1回までです（すでに別の回にお申し込みがあります）。",
                       code="one_per_series")


async def answer_offer(registration_id: int, *, actor: Actor, accept: bool) -> dict[str, Any]:
    """The person (or a coordinator for them) takes or declines a seat offered from the waiting list."""
    async with write_transaction():
        row = await places.registration_row(registration_id)
        if not actor.staff and row["person"] != actor.person_id:
            raise NotFound("その申込は見つかりません。", code="registration_not_found")
        updated = await places.answer_offer(registration_id, accept=accept, by=actor.person_id)
        if updated is None:
            raise Conflict("このお席のご案内は、期限切れか、すでにお返事済みです。", code="offer_closed")
    return {"id": updated["id"], "event_id": updated["event"], "person_id": updated["person"],
            "status": updated["status"]}
