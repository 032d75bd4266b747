"""Events as coordinators plan them: create, edit, publish, cancel, complete, duplicate, list.

Public functions (each one transaction; errors are events.errors with a stable `code`):

- `create_event(fields, *, actor) -> int`                 fields: see EVENT_FIELDS; `questions` optional
- `update_event(event_id, changes, *, actor) -> dict`     PATCH semantics; returns get_event(...) + "warnings"
- `publish_event(event_id, *, actor) -> dict`
- `cancel_event(event_id, *, actor, reason="") -> int`    ends every live place (events.places), audited
- `complete_event(event_id, *, actor) -> dict`
- `duplicate_event(event_id, *, actor, starts_at=None, ends_at=None, venue=None, title=None) -> int`  (a draft)
- `get_event(event_id) -> dict`                        with counts, remaining, questions
- `list_public_events(*, now=None, limit=100) -> list[dict]`   upcoming, published, visibility public
- `list_events_between(start, end, *, kinds=None, include_private=True) -> list[dict]`  (month/week views)
- `overlapping_events(venue, starts_at, ends_at, *, exclude_id=None) -> list[dict]`    same venue, same time
- `validate_answers(questions, answers, *, strict=True) -> dict`

Event dicts carry the table's columns plus: confirmed_count (seat holders: confirmed, pending_consent,
attended, no_show), pending_consent_count, waitlist_count, applied_count, remaining, questions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from events import access, audit, places, signals
from events.access import Actor
from events.db import aware, raw, utcnow, write_transaction
from events.errors import Conflict, Invalid, NotFound
from events.seminars import allocation
from events.seminars.tables import (
    ALLOCATIONS,
    AUDIENCES,
    EVENT_KINDS,
    LIVE_STATES,
    SEAT_HOLDING_STATES,
    Event,
    EventQuestion,
    Registration,
)
from events.timefmt import TOKYO

QUESTION_KINDS = ("text", "single", "multi", "checkbox")
MAX_CAPACITY = 10_000
MAX_TEXT_ANSWER = 2000
# Editing these on a published event raises the calendar SEQUENCE and tells every registered person.
NOTIFY_FIELDS = ("title", "starts_at", "ends_at", "venue")
EVENT_FIELDS = (
    "kind", "title", "title_en", "description", "description_en", "venue", "venue_en", "access", "access_en",
    "starts_at", "ends_at",
    "capacity", "registration_opens_at", "registration_closes_at", "cancel_cutoff_hours", "audience", "allocation",
    "visibility", "series", "priority_rules", "max_companions", "offer_hours", "offer_fallback_hours",
    "ask_accommodation", "one_per_series",
)


def parse_time(value: object, field: str, *, optional: bool = False) -> datetime | None:
    """ISO 8601 with an offset (or an aware datetime); a naive time would be ambiguous."""
    if value is None or value == "":
        if optional:
            return None
        raise Invalid(f"{field} を入力してください。", code="missing_field", field=field)
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise Invalid(f"{field} の日時の形式が正しくありません（例: 2026-01-24T14:00:00+09:00）。",
                          code="invalid_datetime", field=field) from None
    if parsed.tzinfo is None:
        raise Invalid(f"{field} には時差（+09:00 など）を付けてください。", code="datetime_without_offset", field=field)
    return parsed.astimezone(UTC)


def _text(value: object, field: str, limit: int, *, required: bool = False) -> str:
    text = " ".join(str(value or "").split()) if limit <= 300 else str(value or "").strip()
    if required and not text:
        raise Invalid(f"{field} を入力してください。", code="missing_field", field=field)
    if len(text) > limit:
        raise Invalid(f"{field} は{limit}文字以内で入力してください。", code="too_long", field=field)
    return text


def _int(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Invalid(f"{field} は整数で入力してください。", code="invalid_number", field=field)
    try:
        number = int(value)
    except ValueError:
        raise Invalid(f"{field} は整数で入力してください。", code="invalid_number", field=field) from None
    if not low <= number <= high:
        raise Invalid(f"{field} は{low}〜{high}で入力してください。", code="out_of_range", field=field)
    return number


def _bool(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in ("1", "true", "on", "yes"):
        return True
    if str(value).strip().lower() in ("0", "false", "off", "no", ""):
        return False
    raise Invalid(f"{field} は true か false です。", code="invalid_boolean", field=field)


def _choice(value: object, field: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise Invalid(f"{field} は {' / '.join(allowed)} のいずれかです。", code=f"invalid_{field}", field=field)
    return str(value)


def clean_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate each given field on its own; cross-field rules are checked by check_event()."""
    unknown = set(fields) - set(EVENT_FIELDS) - {"questions"}
    if unknown:
        raise Invalid(f"不明な項目です: {', '.join(sorted(unknown))}", code="unknown_field", field=sorted(unknown)[0])
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "kind":
            out[name] = _choice(value, "kind", EVENT_KINDS)
        elif name == "audience":
            out[name] = _choice(value, "audience", AUDIENCES)
        elif name == "allocation":
            out[name] = _choice(value, "allocation", ALLOCATIONS)
        elif name == "visibility":
            out[name] = _choice(value, "visibility", ("public", "private"))
        elif name == "title":
            out[name] = _text(value, "title", 300, required=True)
        elif name in ("title_en", "venue", "venue_en"):
            out[name] = _text(value, name, 300)
        elif name == "series":
            out[name] = _text(value, name, 200)
        elif name in ("description", "description_en"):
            out[name] = _text(value, name, 20_000)
        elif name in ("access", "access_en"):
            out[name] = _text(value, name, 2000)
        elif name in ("starts_at", "ends_at"):
            out[name] = parse_time(value, name)
        elif name in ("registration_opens_at", "registration_closes_at"):
            out[name] = parse_time(value, name, optional=True)
        elif name == "capacity":
            out[name] = _int(value, "capacity", 1, MAX_CAPACITY)
        elif name == "cancel_cutoff_hours":
            out[name] = _int(value, "cancel_cutoff_hours", 0, 24 * 60)
        elif name == "priority_rules":
            out[name] = allocation.clean_rules(value)
        elif name == "max_companions":
            out[name] = _int(value, name, 0, 5)
        elif name in ("offer_hours", "offer_fallback_hours"):
            out[name] = _int(value, name, 0, 24 * 14)
        elif name in ("ask_accommodation", "one_per_series"):
            out[name] = _bool(value, name)
        elif name == "questions":
            out[name] = clean_questions(value)
    return out


def check_event(event: Mapping[str, Any]) -> None:
    """Rules across fields, on the event as it would be after the change."""
    starts, ends = aware(event["starts_at"]), aware(event["ends_at"])
    if ends <= starts:
        raise Invalid("終了日時は開始日時より後にしてください。", code="ends_before_starts", field="ends_at")
    if ends - starts > timedelta(days=14):
        raise Invalid("開催期間が長すぎます（14日以内）。", code="event_too_long", field="ends_at")
    opens, closes = aware(event.get("registration_opens_at")), aware(event.get("registration_closes_at"))
    if opens and closes and closes <= opens:
        raise Invalid("申込締切は申込開始より後にしてください。", code="window_inverted", field="registration_closes_at")
    if closes and closes > starts:
        raise Invalid("申込締切は開始日時より前にしてください。", code="window_after_start", field="registration_closes_at")
    if opens and opens >= starts:
        raise Invalid("申込開始は開始日時より前にしてください。", code="window_after_start", field="registration_opens_at")
    if event.get("allocation") == "lottery" and not closes:
        raise Invalid("抽選の場合は申込締切を設定してください。", code="lottery_needs_close", field="registration_closes_at")


def clean_questions(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > 30:
        raise Invalid("質問は30件までのリストで指定してください。", code="invalid_questions", field="questions")
    questions = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise Invalid("質問の形式が正しくありません。", code="invalid_questions", field="questions")
        kind = _choice(item.get("kind", "text"), "question_kind", QUESTION_KINDS)
        label = _text(item.get("label"), f"questions[{index}].label", 500, required=True)
        options = item.get("options") or []
        if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
            raise Invalid("選択肢は文字列のリストで指定してください。", code="invalid_options", field="questions")
        options = [" ".join(o.split()) for o in options]
        if kind in ("single", "multi") and len(options) < 2:
            raise Invalid(f"「{label}」には選択肢を2つ以上指定してください。", code="options_required", field="questions")
        if len(set(options)) != len(options):
            raise Invalid(f"「{label}」の選択肢が重複しています。", code="duplicate_options", field="questions")
        questions.append({
            "kind": kind, "label": label, "label_en": _text(item.get("label_en"), "label_en", 500),
            "options": options if kind in ("single", "multi") else [], "required": bool(item.get("required", False)),
        })
    return questions


def validate_answers(questions: list[Mapping[str, Any]], answers: object, *, strict: bool = True) -> dict[str, Any]:
    """Answers keyed by question id (as a string). `strict=False` (counter registrations) skips `required`."""
    if answers is None:
        answers = {}
    if not isinstance(answers, Mapping):
        raise Invalid("回答の形式が正しくありません。", code="invalid_answers", field="answers")
    by_id = {str(q["id"]): q for q in questions}
    unknown = set(map(str, answers)) - set(by_id)
    if unknown:
        raise Invalid("不明な質問への回答があります。", code="unknown_question", field="answers")
    clean: dict[str, Any] = {}
    for key, question in by_id.items():
        value = answers.get(key, answers.get(int(key)) if key.isdigit() else None)
        label, kind = question["label"], question["kind"]
        empty = value is None or value == "" or value == [] or (kind == "checkbox" and value is False)
        if empty:
            if question["required"] and strict:
                raise Invalid(f"「{label}」は必須です。", code="answer_required", field=f"answers.{key}")
            continue
        if kind == "text":
            if not isinstance(value, str) or len(value) > MAX_TEXT_ANSWER:
                raise Invalid(f"「{label}」は{MAX_TEXT_ANSWER}文字以内の文章で回答してください。",
                              code="invalid_answer", field=f"answers.{key}")
            clean[key] = value.strip()
        elif kind == "single":
            if value not in question["options"]:
                raise Invalid(f"「{label}」は選択肢から選んでください。", code="invalid_answer", field=f"answers.{key}")
            clean[key] = value
        elif kind == "multi":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not set(value) <= set(question["options"]) or len(set(value)) != len(value):
                raise Invalid(f"「{label}」は選択肢から選んでください。", code="invalid_answer", field=f"answers.{key}")
            clean[key] = [o for o in question["options"] if o in value]
        else:  # checkbox
            if value not in (True, "on", "true", "1", 1):
                raise Invalid(f"「{label}」の回答が正しくありません。", code="invalid_answer", field=f"answers.{key}")
            clean[key] = True
    return clean


async def questions_of(event_id: int) -> list[dict[str, Any]]:
    return await EventQuestion.select().where(EventQuestion.event == event_id).order_by(
        EventQuestion.position
    ).output(load_json=True)


async def _counts(event_ids: list[int]) -> dict[int, dict[str, int]]:
    if not event_ids:
        return {}
    rows = await Registration.select(Registration.event, Registration.status).where(
        Registration.event.is_in(event_ids) & (Registration.status != "cancelled")
    )
    counts: dict[int, dict[str, int]] = {i: {s: 0 for s in LIVE_STATES} for i in event_ids}
    for row in rows:
        counts[row["event"]][row["status"]] += 1
    return counts


def _with_counts(event: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    for key in ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at", "lottery_drawn_at",
                "created_at", "updated_at"):
        event[key] = aware(event.get(key))
    event["confirmed_count"] = sum(counts[s] for s in SEAT_HOLDING_STATES)
    event["pending_consent_count"] = counts["pending_consent"]
    event["waitlist_count"] = counts["waitlisted"]
    event["applied_count"] = counts["applied"]
    event["offered_count"] = counts["offered"]
    event["live_count"] = sum(counts[s] for s in LIVE_STATES)  # everyone a cancellation would tell
    event["remaining"] = max(event["capacity"] - event["taken"], 0)
    event["registration_window"] = registration_window(event)
    return event


def registration_window(event: Mapping[str, Any], now: datetime | None = None) -> str:
    """"before" registration opens, "open", or "closed" (past the closing time — a draw closes it too — or
    the start)."""
    now = now or utcnow()
    opens, closes = aware(event.get("registration_opens_at")), aware(event.get("registration_closes_at"))
    starts = aware(event.get("starts_at"))
    if opens and now < opens:
        return "before"
    if (closes and now >= closes) or (starts and now >= starts):
        return "closed"
    return "open"


async def get_event(event_id: int) -> dict[str, Any]:
    event = await Event.select().where(Event.id == event_id).output(load_json=True).first()
    if event is None:
        raise NotFound("そのイベントは見つかりません。", code="event_not_found")
    event = _with_counts(event, (await _counts([event_id]))[event_id])
    event["questions"] = await questions_of(event_id)
    return event


async def _listing(query: Any) -> list[dict[str, Any]]:
    events = await query.output(load_json=True)
    counts = await _counts([e["id"] for e in events])
    return [_with_counts(e, counts[e["id"]]) for e in events]


async def list_public_events(*, now: datetime | None = None, limit: int = 100, kind: str | None = None,
                             audiences: Iterable[str] | None = None, month: date | None = None,
                             open_only: bool = False) -> list[dict[str, Any]]:
    """Upcoming published public events, soonest first, with remaining places; optionally of some audiences,
    in one month (Asia/Tokyo), or only those taking applications now."""
    query = Event.select().where(
        (Event.status == "published") & (Event.visibility == "public") & (Event.ends_at > (now or utcnow()))
    ).order_by(Event.starts_at).limit(limit)
    if kind:
        query = query.where(Event.kind == kind)
    if audiences:
        query = query.where(Event.audience.is_in(list(audiences)))
    if month:
        first = datetime(month.year, month.month, 1, tzinfo=TOKYO)
        after = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=TOKYO)
        query = query.where((Event.starts_at >= first) & (Event.starts_at < after))
    events = await _listing(query)
    return [e for e in events if e["registration_window"] == "open"] if open_only else events


async def list_events_between(
    start: datetime, end: datetime, *, kinds: Iterable[str] | None = None, include_private: bool = True
) -> list[dict[str, Any]]:
    """Every event (any status) that overlaps [start, end): the coordinators' month and week views."""
    query = Event.select().where((Event.starts_at < end) & (Event.ends_at > start)).order_by(Event.starts_at)
    if kinds:
        query = query.where(Event.kind.is_in(list(kinds)))
    if not include_private:
        query = query.where(Event.visibility == "public")
    return await _listing(query)


def _venue_key(venue: str) -> str:
    import unicodedata

    return "".join(unicodedata.normalize("NFKC", venue or "").split()).lower()


async def overlapping_events(
    venue: str, starts_at: datetime, ends_at: datetime, *, exclude_id: int | None = None
) -> list[dict[str, Any]]:
    """Live events at the same venue whose time overlaps: a warning for the coordinator, not a refusal."""
    key = _venue_key(venue)
    if not key:
        return []
    rows = await Event.select(Event.id, Event.title, Event.venue, Event.starts_at, Event.ends_at, Event.status).where(
        (Event.starts_at < ends_at) & (Event.ends_at > starts_at) & Event.status.is_in(["draft", "published"])
    )
    return [
        {**row, "starts_at": aware(row["starts_at"]), "ends_at": aware(row["ends_at"])}
        for row in rows
        if row["id"] != exclude_id and _venue_key(row["venue"]) == key
    ]


async def _replace_questions(event_id: int, questions: list[dict[str, Any]]) -> None:
    await EventQuestion.delete().where(EventQuestion.event == event_id)
    for position, question in enumerate(questions):
        await EventQuestion.insert(EventQuestion(event=event_id, position=position, **question))


async def create_event(fields: Mapping[str, Any], *, actor: Actor) -> int:
    access.require_staff(actor)
    clean = clean_fields(fields)
    for required in ("title", "starts_at", "ends_at", "capacity"):
        if required not in clean:
            raise Invalid(f"{required} を入力してください。", code="missing_field", field=required)
    questions = clean.pop("questions", [])
    event = {"allocation": "first_come", **clean}
    check_event(event)
    now = utcnow()
    async with write_transaction():
        row = await Event.insert(Event(**clean, status="draft", created_by=actor.person_id, created_at=now, updated_at=now)).returning(Event.id)
        event_id = row[0]["id"]
        await _replace_questions(event_id, questions)
    return event_id


async def _event_for_update(event_id: int) -> dict[str, Any]:
    from events.db import for_update

    rows = await raw(f"SELECT id FROM event WHERE id = {{}}{for_update()}", event_id)
    if not rows:
        raise NotFound("そのイベントは見つかりません。", code="event_not_found")
    event = await Event.select().where(Event.id == event_id).output(load_json=True).first()
    for key in ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at", "lottery_drawn_at"):
        event[key] = aware(event[key])
    return event


async def update_event(event_id: int, changes: Mapping[str, Any], *, actor: Actor) -> dict[str, Any]:
    """PATCH: only the given fields change. Capacity may grow (the waiting list moves up) but not drop below
    the seats already held. A published event's time, venue or title change is announced to everyone."""
    access.require_staff(actor)
    clean = clean_fields(changes)
    async with write_transaction():
        event = await _event_for_update(event_id)
        if event["status"] in ("cancelled", "completed"):
            raise Conflict("中止または終了したイベントは編集できません。", code="event_closed")
        questions = clean.pop("questions", None)
        changed = {k: v for k, v in clean.items() if event.get(k) != v}
        after = {**event, **changed}
        check_event(after)
        has_registrations = await Registration.exists().where(Registration.event == event_id)
        if "allocation" in changed and (has_registrations or event["lottery_drawn_at"]):
            raise Conflict("申込のあるイベントの受付方法は変更できません。", code="allocation_locked", field="allocation")
        if ("priority_rules" in changed or "max_companions" in changed) and has_registrations:
            raise Conflict("申込のあるイベントの優先の条件・同行者の人数は変更できません。", code="allocation_locked",
                           field="priority_rules")
        if "capacity" in changed and changed["capacity"] < event["taken"]:
            raise Invalid(f"定員は、すでに確保されている席数（{event['taken']}）より少なくできません。",
                          code="capacity_below_taken", field="capacity")
        if questions is not None:
            if has_registrations:
                raise Conflict("申込のあるイベントの質問は変更できません。", code="questions_locked", field="questions")
            await _replace_questions(event_id, questions)
        notify = sorted(f for f in NOTIFY_FIELDS if f in changed) if event["status"] == "published" else []
        values: dict[Any, Any] = {getattr(Event, k): v for k, v in changed.items()}
        values[Event.updated_at] = utcnow()
        if notify:
            values[Event.calendar_sequence] = event["calendar_sequence"] + 1
        await Event.update(values).where(Event.id == event_id)
        # Seats first: whoever moves up is told once, by their place mail, which carries the new details.
        moved = await places.promote(event_id) if "capacity" in changed else []
        if notify:
            await signals.EVENT_CHANGED.send(signals.EventChanged(
                event_id=event_id, fields=frozenset(notify), before={f: event[f] for f in notify},
                already_told=frozenset(moved)))
        if after.get("allocation") == "lottery" and event["status"] == "published":
            await allocation.ensure_commitment(event_id)
    result = await get_event(event_id)
    result["warnings"] = await _warnings(result)
    result["changed_fields"] = sorted(changed) + (["questions"] if questions is not None else [])
    return result


async def time_warnings(venue: str, starts_at: datetime, ends_at: datetime, *,
                        exclude_id: int | None = None) -> list[dict[str, Any]]:
    """What a coordinator should see before saving these times: a start already past, and other events
    at the same venue whose times overlap (the venue may be double-booked)."""
    found: list[dict[str, Any]] = []
    if starts_at < utcnow():
        found.append({"code": "starts_in_past", "message": "開始日時が過去になっています。"})
    for other in await overlapping_events(venue, starts_at, ends_at, exclude_id=exclude_id):
        found.append({"code": "venue_overlap", "message": f"同じ会場で時間が重なるイベントがあります: {other['title']}",
                      "event_id": other["id"], "title": other["title"]})
    return found


async def _warnings(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    return await time_warnings(event["venue"], event["starts_at"], event["ends_at"], exclude_id=event["id"])


async def publish_event(event_id: int, *, actor: Actor) -> dict[str, Any]:
    access.require_staff(actor)
    async with write_transaction():
        event = await _event_for_update(event_id)
        if event["status"] == "published":
            pass  # publishing twice is harmless
        elif event["status"] != "draft":
            raise Conflict("この状態のイベントは公開できません。", code="event_not_draft")
        else:
            if event["starts_at"] <= utcnow():
                raise Invalid("開始日時が過ぎたイベントは公開できません。", code="event_in_past")
            await Event.update({Event.status: "published", Event.updated_at: utcnow()}).where(Event.id == event_id)
            if event["allocation"] == "lottery":  # the seed is committed to before anyone applies
                await allocation.ensure_commitment(event_id)
    result = await get_event(event_id)
    result["warnings"] = await _warnings(result)
    return result


async def cancel_event(event_id: int, *, actor: Actor, reason: str = "") -> int:
    """Cancel the event and every live registration; one mail to each registered person. Returns how many.
    When anyone is registered, the reason is required: it is in the mail they get."""
    access.require_staff(actor)
    reason = _text(reason, "reason", 2000)
    async with write_transaction():
        event = await _event_for_update(event_id)
        if event["status"] == "cancelled":
            return 0
        if event["status"] == "completed":
            raise Conflict("終了したイベントは中止できません。", code="event_closed")
        live = await Registration.count().where((Registration.event == event_id)
                                                & Registration.status.is_in(list(LIVE_STATES)))
        if live and not reason.strip():
            raise Invalid("中止の理由を入力してください（申し込んだ方へのメールに記載されます）。",
                          code="reason_required", field="reason")
        await Event.update({
            Event.status: "cancelled", Event.updated_at: utcnow(), Event.calendar_sequence: event["calendar_sequence"] + 1,
        }).where(Event.id == event_id)
        count = await places.end_all(event_id, reason="event_cancelled", by=actor.person_id,
                                     detail={"reason": reason})
        await signals.EVENT_CANCELLED.send(signals.EventCancelled(event_id=event_id, reason=reason))
        await audit.record(actor, "event_cancelled", subject_type="event", subject_id=event_id,
                           detail={"registrations_cancelled": count})
    return count


async def complete_event(event_id: int, *, actor: Actor) -> dict[str, Any]:
    access.require_staff(actor)
    async with write_transaction():
        event = await _event_for_update(event_id)
        if event["status"] == "completed":
            return await get_event(event_id)
        if event["status"] != "published":
            raise Conflict("公開中のイベントだけを終了にできます。", code="event_not_published")
        if event["starts_at"] > utcnow():
            raise Conflict("開始前のイベントは終了にできません。", code="event_not_started")
        await Event.update({Event.status: "completed", Event.updated_at: utcnow()}).where(Event.id == event_id)
    return await get_event(event_id)


async def duplicate_event(
    event_id: int, *, actor: Actor, starts_at: object = None, ends_at: object = None,
    venue: str | None = None, title: str | None = None,
) -> int:
    """A draft copy (questions included). A new start moves the end and the window by the same amount."""
    source = await get_event(event_id)
    new_start = parse_time(starts_at, "starts_at") if starts_at else source["starts_at"]
    shift = new_start - source["starts_at"]
    fields: dict[str, Any] = {k: source[k] for k in EVENT_FIELDS}
    fields["starts_at"] = new_start
    fields["ends_at"] = parse_time(ends_at, "ends_at") if ends_at else source["ends_at"] + shift
    for key in ("registration_opens_at", "registration_closes_at"):
        fields[key] = source[key] + shift if source[key] else None
    if venue is not None:
        fields["venue"] = venue
    if title is not None:
        fields["title"] = title
    fields["questions"] = [
        {k: q[k] for k in ("kind", "label", "label_en", "options", "required")} for q in source["questions"]
    ]
    return await create_event(fields, actor=actor)
