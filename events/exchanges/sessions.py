"""Exchange sessions: settings, table planning and live re-planning, seats, table mail, who-met-whom.

`assign_tables` reads the confirmed registrations and their facilities, runs the pure solver
(events.rotation.plan_rotation) outside any transaction, then writes the seats in one write
transaction after re-checking that nothing it planned from has changed meanwhile (optimistic: the
session's plan_version, current round and participant list). Rounds already held (1..current_round)
are passed to the solver as fixed rounds and never rewritten.

Who asks: the services a coordinator calls take `actor` (events.access.Actor) and refuse anyone who is not
staff. Staff views of names and seating (`session_view`, `seating_view`, `met_view`) and the changes
(`assign_tables`, `replan`, `send_table_mail`) write their audit entry in their own transaction. A person
reading their own table (`seats_of`, `table_summary_for`, `is_participant`) is not a staff view.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from events import access, audit, timefmt
from events.access import Actor
from events.config import config
from events.core.tables import Facility, OutboxMessage, Person, StaffMembership
from events.db import for_update, raw, read_transaction, utcnow, write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.exchanges import directory
from events.exchanges.tables import PRESENCE_STATES, ExchangePresence, ExchangeSession, TableSeat
from events.mail import queue_mail
from events.rotation import Participant, RotationError, plan_rotation
from events.seminars.tables import CALENDAR_STATES, Event, Registration

SEATED_STATES = CALENDAR_STATES  # a place whose person takes part (the one definition, events.seminars.tables)
MAX_ROUNDS = 20
MAX_TABLE_SIZE = 20
PLAN_TIME_LIMIT = 1.0


# ---------------------------------------------------------------- sessions


def _clean_themes(themes: list[str] | tuple[str, ...], rounds: int) -> list[str]:
    cleaned = [" ".join(str(t).split())[:100] for t in list(themes)[:rounds]]
    return cleaned + [""] * (rounds - len(cleaned))


def _check_sizes(rounds: int, table_size: int | None, tables: int | None) -> None:
    if not 1 <= rounds <= MAX_ROUNDS:
        raise Invalid(f"ラウンド数は1〜{MAX_ROUNDS}で入力してください。", code="invalid_rounds", field="rounds")
    if (table_size is None) == (tables is None):
        raise Invalid("1卓の人数かテーブル数のどちらか一方を入力してください。", code="invalid_table_size", field="table_size")
    if table_size is not None and not 2 <= table_size <= MAX_TABLE_SIZE:
        raise Invalid(f"1卓の人数は2〜{MAX_TABLE_SIZE}人で入力してください。", code="invalid_table_size", field="table_size")
    if tables is not None and not 1 <= tables <= 200:
        raise Invalid("テーブル数は1〜200で入力してください。", code="invalid_tables", field="tables")


async def create_session(event_id: int, *, actor: Actor, rounds: int, table_size: int | None = None,
                         tables: int | None = None, themes: list[str] | tuple[str, ...] = (),
                         themes_en: list[str] | tuple[str, ...] = (), round_minutes: int = 20) -> int:
    access.require_staff(actor)
    _check_sizes(rounds, table_size, tables)
    if not 5 <= round_minutes <= 180:
        raise Invalid("1ラウンドの時間は5〜180分で入力してください。", code="invalid_round_minutes", field="round_minutes")
    async with write_transaction():
        event = await Event.select(Event.id, Event.kind).where(Event.id == event_id).first()
        if event is None:
            raise NotFound("そのイベントは見つかりません。", code="event_not_found")
        if event["kind"] != "staff_exchange":
            raise Invalid("交流会（施設職員向け）のイベントにだけ設定できます。", code="not_staff_exchange")
        if await ExchangeSession.exists().where(ExchangeSession.event == event_id):
            raise Conflict("このイベントには既に交流会の設定があります。", code="session_exists")
        now = utcnow()
        row = await ExchangeSession.insert(ExchangeSession(
            event=event_id, rounds=rounds, table_size=table_size, tables=tables, round_minutes=round_minutes,
            themes=_clean_themes(themes, rounds), themes_en=_clean_themes(themes_en, rounds),
            created_at=now, updated_at=now,
        )).returning(ExchangeSession.id)
    return row[0]["id"]


async def update_session(session_id: int, *, actor: Actor, rounds: int, table_size: int | None = None,
                         tables: int | None = None, themes: list[str] | tuple[str, ...] = (),
                         themes_en: list[str] | tuple[str, ...] = (), round_minutes: int = 20) -> None:
    """Themes can change any time; changing rounds or table size before the start discards the plan."""
    access.require_staff(actor)
    _check_sizes(rounds, table_size, tables)
    async with write_transaction():
        session = await _locked_session(session_id)
        resized = (rounds, table_size, tables) != (session["rounds"], session["table_size"], session["tables"])
        if resized and session["current_round"] > 0:
            raise Conflict("交流会の開始後は、ラウンド数やテーブルの大きさを変更できません。", code="session_started")
        values: dict[Any, Any] = {
            ExchangeSession.rounds: rounds, ExchangeSession.table_size: table_size, ExchangeSession.tables: tables,
            ExchangeSession.round_minutes: round_minutes, ExchangeSession.themes: _clean_themes(themes, rounds),
            ExchangeSession.themes_en: _clean_themes(themes_en, rounds), ExchangeSession.updated_at: utcnow(),
        }
        if resized:
            await TableSeat.delete().where(TableSeat.session == session_id)
            values[ExchangeSession.plan_version] = session["plan_version"] + 1 if session["plan_version"] else 0
            values[ExchangeSession.planned_at] = None
        await ExchangeSession.update(values).where(ExchangeSession.id == session_id)


def _decode_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


_SESSION_COLUMNS = (
    "s.*, e.title AS event_title, e.title_en AS event_title_en, e.starts_at AS starts_at, e.ends_at AS ends_at, "
    "e.venue AS venue, e.venue_en AS venue_en, e.status AS event_status"
)


def _session_row(row: dict[str, Any]) -> dict[str, Any]:
    row["themes"] = _decode_json(row["themes"]) or []
    row["themes_en"] = _decode_json(row["themes_en"]) or []
    row["plan_steps"] = _decode_json(row["plan_steps"]) or []
    for key in ("starts_at", "ends_at", "planned_at", "created_at", "updated_at"):
        value = row.get(key)
        if isinstance(value, str):  # SQLite raw rows come back as text
            from datetime import datetime

            row[key] = datetime.fromisoformat(value)
    return row


async def get_session(session_id: int) -> dict[str, Any]:
    rows = await raw(f"SELECT {_SESSION_COLUMNS} FROM exchange_session s JOIN event e ON e.id = s.event WHERE s.id = {{}}",
                     session_id)
    if not rows:
        raise NotFound("その交流会は見つかりません。", code="session_not_found")
    return _session_row(rows[0])


async def session_for_event(event_id: int) -> dict[str, Any] | None:
    rows = await raw(f"SELECT {_SESSION_COLUMNS} FROM exchange_session s JOIN event e ON e.id = s.event WHERE s.event = {{}}",
                     event_id)
    return _session_row(rows[0]) if rows else None


async def list_sessions() -> list[dict[str, Any]]:
    rows = await raw(f"SELECT {_SESSION_COLUMNS} FROM exchange_session s JOIN event e ON e.id = s.event "
                     "ORDER BY e.starts_at DESC, s.id DESC")
    return [_session_row(r) for r in rows]


async def events_without_session() -> list[dict[str, Any]]:
    taken = [r["event"] for r in await ExchangeSession.select(ExchangeSession.event)]
    return await Event.select(Event.id, Event.title, Event.starts_at).where(
        (Event.kind == "staff_exchange") & Event.id.not_in(taken or [-1]) & (Event.status != "cancelled")
    ).order_by(Event.starts_at)


async def _locked_session(session_id: int) -> dict[str, Any]:
    rows = await raw(f"SELECT * FROM exchange_session WHERE id = {{}}{for_update()}", session_id)
    if not rows:
        raise NotFound("その交流会は見つかりません。", code="session_not_found")
    return rows[0]


# ---------------------------------------------------------------- participants and presence


async def _participants(session_id: int, session: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Everyone with a confirmed (or attended) place: id, name, kana, facility, presence (callers audit)."""
    session = session or await get_session(session_id)
    rows = await Registration.select(
        Registration.person.id.as_alias("id"), Registration.person.name.as_alias("name"),
        Registration.person.kana.as_alias("kana"), Registration.status,
    ).where((Registration.event == session["event"]) & Registration.status.is_in(list(SEATED_STATES)))
    ids = [r["id"] for r in rows] or [-1]
    facility: dict[int, dict[str, Any]] = {}
    for m in await StaffMembership.select(
        StaffMembership.person, StaffMembership.facility.id.as_alias("facility_id"),
        StaffMembership.facility.name.as_alias("facility_name"),
    ).where(StaffMembership.person.is_in(ids)).order_by(StaffMembership.id):
        facility.setdefault(m["person"], m)
    presence = {p["person"]: p["status"] for p in await ExchangePresence.select().where(
        ExchangePresence.session == session_id)}
    result = []
    for r in sorted(rows, key=lambda r: (r["kana"] or r["name"], r["id"])):
        m = facility.get(r["id"])
        result.append({**r, "facility_id": m["facility_id"] if m else None,
                       "facility_name": m["facility_name"] if m else "", "presence": presence.get(r["id"], "")})
    return result


async def set_presence(session_id: int, person_id: int, status: str, *, actor: Actor) -> None:
    """Mark someone arrived, late (seated in the remaining rounds) or absent (left out of them)."""
    access.require_staff(actor)
    if status not in (*PRESENCE_STATES, ""):
        raise Invalid("出欠の状態が正しくありません。", code="invalid_presence", field="status")
    async with write_transaction():
        session = await _locked_session(session_id)
        registered = await Registration.exists().where(
            (Registration.event == session["event"]) & (Registration.person == person_id)
            & Registration.status.is_in(list(SEATED_STATES)))
        if not registered:
            raise NotFound("その方はこの交流会に申し込んでいません。", code="not_registered")
        await ExchangePresence.delete().where(
            (ExchangePresence.session == session_id) & (ExchangePresence.person == person_id))
        if status:
            await ExchangePresence.insert(ExchangePresence(session=session_id, person=person_id, status=status,
                                                           updated_at=utcnow()))


async def set_current_round(session_id: int, current_round: int, *, actor: Actor) -> None:
    """Rounds 1..current_round are held (fixed at the next re-plan); the phone page shows this one."""
    access.require_staff(actor)
    async with write_transaction():
        session = await _locked_session(session_id)
        if not 0 <= current_round <= session["rounds"]:
            raise Invalid(f"ラウンドは0〜{session['rounds']}で指定してください。", code="invalid_round")
        if current_round > 0 and not session["plan_version"]:
            raise Conflict("先に席を決めてください。", code="not_planned")
        if current_round < session["current_round"]:
            raise Conflict("終わったラウンドには戻せません。", code="round_already_held")
        await ExchangeSession.update({ExchangeSession.current_round: current_round,
                                      ExchangeSession.updated_at: utcnow()}).where(ExchangeSession.id == session_id)


# ---------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlanSummary:
    session_id: int
    plan_version: int
    seed: int
    people: int
    tables: int
    rounds: int
    fixed_rounds: int
    bound: int  # most rounds anyone can have without meeting someone twice (-1: no finite bound)
    clash_free_rounds: int
    repeat_pairs: int
    same_facility_pairs: int
    prior_pairs: int  # planned pairs who had already met in earlier sessions
    method: str
    seconds: float

    @property
    def target(self) -> int:
        return self.rounds if self.bound < 0 else min(self.rounds, self.bound)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "target": self.target}


async def _fixed_rounds(session_id: int, held: int) -> list[list[list[int]]]:
    rows = await TableSeat.select(TableSeat.round, TableSeat.table_no, TableSeat.person).where(
        (TableSeat.session == session_id) & (TableSeat.round <= held)).order_by(TableSeat.round).order_by(
        TableSeat.table_no).order_by(TableSeat.person)
    rounds: list[dict[int, list[int]]] = [{} for _ in range(held)]
    for r in rows:
        rounds[r["round"] - 1].setdefault(r["table_no"], []).append(r["person"])
    return [[tables[t] for t in sorted(tables)] for tables in rounds]


async def prior_meetings(session_id: int, person_ids: list[int]) -> set[tuple[int, int]]:
    """Pairs among `person_ids` who sat at one table in an earlier exchange session."""
    sessions = await list_sessions()
    this = next((s for s in sessions if s["id"] == session_id), None)
    if this is None:
        raise NotFound("その交流会は見つかりません。", code="session_not_found")
    earlier = [s["id"] for s in sessions if s["starts_at"] < this["starts_at"]]
    if not earlier or not person_ids:
        return set()
    rows = await TableSeat.select(TableSeat.session, TableSeat.round, TableSeat.table_no, TableSeat.person).where(
        TableSeat.session.is_in(earlier) & TableSeat.person.is_in(list(person_ids)))
    tables: dict[tuple[int, int, int], list[int]] = {}
    for r in rows:
        tables.setdefault((r["session"], r["round"], r["table_no"]), []).append(r["person"])
    return {(a, b) for members in tables.values() for a, b in combinations(sorted(members), 2)}


def _japanese_rotation_error(exc: RotationError, people: list[dict[str, Any]], table_count: int) -> Invalid:
    sizes = Counter(p["facility_id"] for p in people if p["facility_id"] is not None)
    if sizes:
        facility_id, largest = sizes.most_common(1)[0]
        if largest > table_count:
            name = next(p["facility_name"] for p in people if p["facility_id"] == facility_id)
            return Invalid(
                f"「{name}」の参加者が{largest}人いますが、テーブルは{table_count}卓です。同じ施設の方が同じテーブルに"
                f"ならないよう、テーブルを{largest}卓以上にしてください（1卓の人数を減らすと卓が増えます）。",
                code="facility_larger_than_tables")
    return Invalid(f"席を決められませんでした（{exc}）。", code="rotation_failed")


async def assign_tables(session_id: int, seed: int | None = None, *, actor: Actor,
                        time_limit: float = PLAN_TIME_LIMIT, attempts: int = 3) -> PlanSummary:
    """Plan (or re-plan) the seats of the rounds not yet held, from confirmed registrations and presence.

    The audit entry (exchange_planned) is written in the transaction that stores the seats."""
    access.require_staff(actor)
    return await _plan(session_id, seed, actor=actor, action="exchange_planned", detail={},
                       time_limit=time_limit, attempts=attempts)


async def _plan(session_id: int, seed: int | None, *, actor: Actor, action: str, detail: dict[str, Any],
                time_limit: float, attempts: int) -> PlanSummary:
    for _attempt in range(attempts):
        session = await get_session(session_id)
        held = session["current_round"]
        if held >= session["rounds"]:
            raise Conflict("すべてのラウンドが終わっているため、席は変更できません。", code="all_rounds_held")
        async with read_transaction():
            people = [p for p in await _participants(session_id, session) if p["presence"] != "absent"]
        if not people:
            raise Invalid("参加が確定している方がいません。", code="no_participants")
        fixed = await _fixed_rounds(session_id, held)
        ids = [p["id"] for p in people]
        prior = await prior_meetings(session_id, ids)
        solver_input = [Participant(p["id"], p["facility_id"] if p["facility_id"] is not None else -p["id"])
                        for p in people]
        used_seed = seed if seed is not None else secrets.randbelow(2**31)
        started = time.perf_counter()
        try:
            plan = await asyncio.to_thread(
                plan_rotation, solver_input, session["rounds"], table_size=session["table_size"],
                tables=session["tables"], seed=used_seed, fixed_rounds=fixed, prior_meetings=sorted(prior),
                time_limit=time_limit,
            )
        except RotationError as exc:
            count = len(people) if session["tables"] is None else min(session["tables"], len(people))
            if session["table_size"]:
                count = -(-len(people) // session["table_size"])
            raise _japanese_rotation_error(exc, people, count) from None
        seconds = time.perf_counter() - started
        facility_of = {p["id"]: p["facility_id"] for p in people}
        new_rounds = plan.rounds[held:]
        prior_pairs = sum(1 for round_ in new_rounds for table in round_
                          for a, b in combinations(sorted(table), 2) if (a, b) in prior)
        async with write_transaction():
            current = await _locked_session(session_id)
            still = [p for p in await _participants(session_id) if p["presence"] != "absent"]
            if (current["plan_version"], current["current_round"], current["rounds"]) != (
                    session["plan_version"], held, session["rounds"]) or [p["id"] for p in still] != ids:
                continue  # something changed while the solver ran: plan again from the new state
            version = current["plan_version"] + 1
            await TableSeat.delete().where((TableSeat.session == session_id) & (TableSeat.round > held))
            seats = [TableSeat(session=session_id, round=held + r + 1, table_no=t + 1, person=person,
                               facility_id=facility_of.get(person))
                     for r, round_ in enumerate(new_rounds) for t, table in enumerate(round_) for person in table]
            if seats:
                await TableSeat.insert(*seats)
            await ExchangeSession.update({
                ExchangeSession.plan_version: version, ExchangeSession.seed: used_seed,
                ExchangeSession.plan_method: plan.method[:100], ExchangeSession.plan_bound: plan.bound,
                ExchangeSession.plan_clash_free: plan.clash_free_rounds, ExchangeSession.plan_repeats: plan.repeat_pairs,
                ExchangeSession.plan_same_facility: plan.same_facility_pairs,
                ExchangeSession.plan_prior_pairs: prior_pairs, ExchangeSession.plan_steps: list(plan.search_steps),
                ExchangeSession.plan_fixed_rounds: held, ExchangeSession.plan_seconds: f"{seconds:.3f}",
                ExchangeSession.planned_at: utcnow(), ExchangeSession.updated_at: utcnow(),
            }).where(ExchangeSession.id == session_id)
            summary = PlanSummary(
                session_id=session_id, plan_version=version, seed=used_seed, people=len(people),
                tables=len(plan.rounds[-1]) if plan.rounds else 0, rounds=session["rounds"], fixed_rounds=held,
                bound=plan.bound, clash_free_rounds=plan.clash_free_rounds, repeat_pairs=plan.repeat_pairs,
                same_facility_pairs=plan.same_facility_pairs, prior_pairs=prior_pairs, method=plan.method,
                seconds=round(seconds, 3),
            )
            await audit.record(actor, action, subject_type="exchange_session", subject_id=session_id,
                               detail={**summary.as_dict(), **detail})
        return summary
    raise Conflict("席の計算中に参加者が変わりました。もう一度お試しください。", code="plan_changed")


async def replan(session_id: int, *, actor: Actor, late: list[int] = (), absent: list[int] = (),  # type: ignore[assignment]
                 arrived: list[int] = (), seed: int | None = None,  # type: ignore[assignment]
                 time_limit: float = PLAN_TIME_LIMIT, attempts: int = 3) -> PlanSummary:
    """Live re-plan: record who is late, absent or has arrived, then re-solve the rounds not yet held.

    The audit entry (exchange_replanned, with the presence marks) is written with the new seats."""
    access.require_staff(actor)
    for status, ids in (("late", late), ("absent", absent), ("arrived", arrived)):
        for person_id in ids:
            await set_presence(session_id, person_id, status, actor=actor)
    return await _plan(session_id, seed, actor=actor, action="exchange_replanned",
                       detail={"late": list(late), "absent": list(absent), "arrived": list(arrived)},
                       time_limit=time_limit, attempts=attempts)


# ---------------------------------------------------------------- seats


def theme_of(session: dict[str, Any], round_no: int, locale: str = "ja") -> str:
    themes = session["themes_en"] if locale == "en" else session["themes"]
    ja = session["themes"]
    text = themes[round_no - 1] if 0 < round_no <= len(themes) else ""
    if not text and 0 < round_no <= len(ja):
        text = ja[round_no - 1]
    return text


async def seating(session_id: int) -> list[dict[str, Any]]:
    """Rounds -> tables -> people (name, kana, facility) of the current plan.

    Unaudited, for a person's own table (`seats_of`, `table_summary_for`); staff views use `seating_view`."""
    async with read_transaction():  # one snapshot (and one connection) for the three reads
        return await _seating(session_id)


async def _seating(session_id: int, session: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    session = session or await get_session(session_id)
    rows = await TableSeat.select(
        TableSeat.round, TableSeat.table_no, TableSeat.person.id.as_alias("person_id"),
        TableSeat.person.name.as_alias("name"), TableSeat.person.kana.as_alias("kana"), TableSeat.facility_id,
    ).where(TableSeat.session == session_id).order_by(TableSeat.round).order_by(TableSeat.table_no).order_by(
        TableSeat.person)
    facility_names = {f["id"]: f["name"] for f in await Facility.select(Facility.id, Facility.name)}
    rounds: list[dict[str, Any]] = [
        {"round": r, "theme": theme_of(session, r), "theme_en": theme_of(session, r, "en"), "tables": {}}
        for r in range(1, session["rounds"] + 1)]
    for row in rows:
        if row["round"] > len(rounds):
            continue
        tables = rounds[row["round"] - 1]["tables"]
        tables.setdefault(row["table_no"], []).append(
            {"id": row["person_id"], "name": row["name"], "kana": row["kana"],
             "facility": facility_names.get(row["facility_id"], "")})
    for r in rounds:
        r["tables"] = [{"table": t, "people": people} for t, people in sorted(r["tables"].items())]
    return rounds


# ---------------------------------------------------------------- staff views (audited)

SEATING_ACTIONS = {
    "seats": "staff_viewed_exchange_seats",  # the JSON API
    "chart": "staff_viewed_exchange_chart",  # the printed seating chart
    "cards": "staff_viewed_exchange_cards",  # the printed name cards
}


async def session_view(session_id: int, *, actor: Actor) -> dict[str, Any]:
    """The coordinator's session page in one audited read: the session, its participants, the seating and
    what the plan misses (`gaps`, see plan_gaps)."""
    access.require_staff(actor)

    async def read() -> dict[str, Any]:
        session = await get_session(session_id)
        people = await _participants(session_id, session)
        rounds = await _seating(session_id, session)
        return {"session": session, "participants": people, "seating": rounds,
                "gaps": plan_gaps(session, people, rounds)}

    return await audit.viewed(actor, "staff_viewed_exchange", read, subject_type="exchange_session",
                              subject_id=session_id,
                              detail=lambda v: {"participants": len(v["participants"]),
                                                "plan_version": v["session"]["plan_version"]})


async def seating_view(session_id: int, *, actor: Actor, purpose: str = "seats",
                       round_no: int | None = None) -> dict[str, Any]:
    """The seating for the seats API, the printed chart or the name cards (audited, one action each):
    {"session": ..., "seating": rounds (only `round_no` when given)}."""
    access.require_staff(actor)
    action = SEATING_ACTIONS.get(purpose)
    if action is None:
        raise Invalid(f"表示の種類が正しくありません: {purpose}", code="invalid_purpose")

    async def read() -> dict[str, Any]:
        session = await get_session(session_id)
        rounds = await _seating(session_id, session)
        if round_no is not None:
            rounds = [r for r in rounds if r["round"] == round_no]
        return {"session": session, "seating": rounds}

    return await audit.viewed(actor, action, read, subject_type="exchange_session", subject_id=session_id,
                              detail=lambda v: {"purpose": purpose, "round": round_no,
                                                "plan_version": v["session"]["plan_version"],
                                                "people": len({p["id"] for r in v["seating"] for t in r["tables"]
                                                               for p in t["people"]})})


async def seats_of(session_id: int, person_id: int) -> list[dict[str, Any]]:
    """One person's table in every round, with the theme and who else sits there."""
    return _seats_in(await seating(session_id), person_id)


def _seats_in(rounds: list[dict[str, Any]], person_id: int) -> list[dict[str, Any]]:
    result = []
    for r in rounds:
        mine = next((t for t in r["tables"] if any(p["id"] == person_id for p in t["people"])), None)
        result.append({
            "round": r["round"], "theme": r["theme"], "theme_en": r["theme_en"],
            "table": mine["table"] if mine else None,
            "tablemates": [p for p in mine["people"] if p["id"] != person_id] if mine else [],
        })
    return result


async def is_participant(session_id: int, person_id: int) -> bool:
    session = await get_session(session_id)
    return await Registration.exists().where(
        (Registration.event == session["event"]) & (Registration.person == person_id)
        & Registration.status.is_in(list(SEATED_STATES)))


def _summary_lines(session: dict[str, Any], seats: list[dict[str, Any]], locale: str) -> list[str]:
    lines = []
    for s in seats:
        theme = s["theme_en"] if locale == "en" else s["theme"]
        if locale == "en":
            where = f"table {s['table']}" if s["table"] else "no seat (please see the coordinator)"
            lines.append(f"Round {s['round']}{f' ({theme})' if theme else ''}: {where}")
        else:
            where = f"テーブル {s['table']}" if s["table"] else "席なし（受付でお声がけください）"
            lines.append(f"第{s['round']}ラウンド{f'「{theme}」' if theme else ''}: {where}")
    return lines


def my_table_url(session_id: int) -> str:
    return f"{config().base_url}/exchanges/{session_id}/my-table"


async def table_summary_for(event_id: int, person_id: int, locale: str = "ja") -> str | None:
    """Plain text of a person's tables for an invite's description; None when not planned or not seated."""
    session = await session_for_event(event_id)
    if session is None or not session["plan_version"]:
        return None
    seats = await seats_of(session["id"], person_id)
    if not any(s["table"] for s in seats):
        return None
    head = "Your tables at the exchange session:" if locale == "en" else "交流会でのあなたの席（テーブル番号）:"
    tail = (f"On the day, see your table on your phone: {my_table_url(session['id'])}" if locale == "en"
            else f"当日はスマートフォンでも確認できます: {my_table_url(session['id'])}")
    return "\n".join([head, *_summary_lines(session, seats, locale), tail])


async def send_table_mail(session_id: int, *, actor: Actor) -> int:
    """Queue each seated person's tables (exchange_tables mail); a seating already mailed is not sent again.

    The seating is read, the mail queued and the audit entry (exchange_tables_mailed) written in one
    transaction."""
    access.require_staff(actor)
    queued = 0
    async with write_transaction():
        session = await get_session(session_id)
        if not session["plan_version"]:
            raise Conflict("先に席を決めてください。", code="not_planned")
        plan = await _seating(session_id, session)
        seated = {p["id"] for r in plan for t in r["tables"] for p in t["people"]}
        people = await Person.select(Person.id, Person.email, Person.name, Person.locale).where(
            Person.id.is_in(list(seated) or [-1]) & (Person.active == True))  # noqa: E712
        for person in people:
            seats = _seats_in(plan, person["id"])
            locale = person["locale"] if person["locale"] in ("ja", "en") else "ja"
            fingerprint = hashlib.sha256(json.dumps([s["table"] for s in seats]).encode()).hexdigest()[:16]
            title = session["event_title_en"] if locale == "en" and session["event_title_en"] else session["event_title"]
            venue = session["venue_en"] if locale == "en" and session["venue_en"] else session["venue"]
            thread = f"exchange_tables:{session_id}:{person['id']}"
            # （更新） only for someone who was sent their tables before, not for a first mail after a re-plan
            mailed_before = await OutboxMessage.exists().where(OutboxMessage.group_key == thread)
            sent = await queue_mail(
                "exchange_tables", to_email=person["email"], to_name=person["name"], locale=locale,
                key=f"exchange_tables:{session_id}:{person['id']}:{fingerprint}",
                context={"title": title, "starts_at": session["starts_at"], "venue": venue,
                         "when": timefmt.long(session["starts_at"], locale),
                         "lines": _summary_lines(session, seats, locale), "link": my_table_url(session_id),
                         "updated": mailed_before},
                group_key=thread,
            )
            queued += int(sent)
        await audit.record(actor, "exchange_tables_mailed", subject_type="exchange_session", subject_id=session_id,
                           detail={"queued": queued, "seated": len(seated), "plan_version": session["plan_version"]})
    return queued


# ---------------------------------------------------------------- who has met whom


async def met_view(*, actor: Actor, session_ids: list[int] | None = None,
                   facility_id: int | None = None) -> dict[str, Any]:
    """Who has met whom (audited): person pairs and facility pairs with meeting counts, across `session_ids`
    (all sessions when None). With `facility_id`, `people` lists only that facility's staff."""
    access.require_staff(actor)

    async def read() -> dict[str, Any]:
        matrix = await _met_matrix(session_ids)
        if facility_id is not None:
            members = {p["id"] for p in await directory.staff_rows(facility_id=facility_id)}
            matrix["people"] = [p for p in matrix["people"] if p["id"] in members]
        return matrix

    return await audit.viewed(actor, "staff_viewed_met", read, subject_type="exchange_session",
                              subject_id=",".join(map(str, session_ids or []))[:64],
                              detail=lambda m: {"sessions": session_ids, "facility": facility_id,
                                                "people": len(m["people"]), "pairs": len(m["people_pairs"])})


async def _met_matrix(session_ids: list[int] | None = None) -> dict[str, Any]:
    """Meetings across sessions: person pairs and facility pairs (how many times people sat together)."""
    select = TableSeat.select(TableSeat.session, TableSeat.round, TableSeat.table_no, TableSeat.person,
                              TableSeat.facility_id)
    if session_ids:
        select = select.where(TableSeat.session.is_in(session_ids))
    tables: dict[tuple[int, int, int], list[tuple[int, int | None]]] = {}
    for r in await select:
        tables.setdefault((r["session"], r["round"], r["table_no"]), []).append((r["person"], r["facility_id"]))
    people_pairs: Counter[tuple[int, int]] = Counter()
    facility_pairs: Counter[tuple[int, int]] = Counter()
    seen_people: set[int] = set()
    seen_facilities: set[int] = set()
    for members in tables.values():
        for (a, fa), (b, fb) in combinations(sorted(members), 2):
            people_pairs[a, b] += 1
            if fa is not None and fb is not None:
                facility_pairs[min(fa, fb), max(fa, fb)] += 1
        for person, facility in members:
            seen_people.add(person)
            if facility is not None:
                seen_facilities.add(facility)
    people = await Person.select(Person.id, Person.name, Person.kana).where(
        Person.id.is_in(list(seen_people) or [-1]))
    facilities = await Facility.select(Facility.id, Facility.name).where(
        Facility.id.is_in(list(seen_facilities) or [-1])).order_by(Facility.name)
    return {
        "people": sorted(people, key=lambda p: (p["kana"] or p["name"], p["id"])),
        "facilities": facilities,
        "people_pairs": dict(people_pairs),
        "facility_pairs": dict(facility_pairs),
    }


async def sessions_of(person_id: int) -> list[dict[str, Any]]:
    """Exchange sessions a person holds a place in (not cancelled events), latest first."""
    events = {r["event"] for r in await Registration.select(Registration.event).where(
        (Registration.person == person_id) & Registration.status.is_in(list(SEATED_STATES)))}
    return [s for s in await list_sessions() if s["event"] in events and s["event_status"] != "cancelled"]


def plan_gaps(session: dict[str, Any], people: list[dict[str, Any]], rounds: list[dict[str, Any]]) -> dict[str, list]:
    """Who the plan misses (registered, not absent, without a seat in a coming round) and who it seats
    though no longer registered or marked absent: either means the coming rounds should be re-planned."""
    coming = [r for r in rounds if r["round"] > session["current_round"]]
    seated = {p["id"]: p for r in coming for t in r["tables"] for p in t["people"]}
    expected = {p["id"]: p for p in people if p["presence"] != "absent"}
    return {
        "unseated": [p for pid, p in expected.items() if pid not in seated] if coming and session["plan_version"] else [],
        "departed": [p for pid, p in seated.items() if pid not in expected],
    }
