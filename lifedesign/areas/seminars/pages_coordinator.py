"""Coordinator pages of seminars: list and calendar, create / edit with questions, publish / cancel / complete /
duplicate, lottery, registrations (with counter registration), CSV / XLSX, and the phone check-in page.

Every page that shows people's details records an audit entry (contact details; minors flagged).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from events import people, timefmt
from events.db import aware, utcnow
from events.errors import DomainError
from events.seminars import draws, exports, invitations, messages, registration, schedule
from events.seminars.pages_support import calendar_grid, calendar_range, tokyo_bounds
from events.seminars.tables import PRIORITY_RULES, REGISTRATION_STATES
from events.timefmt import TOKYO
from lifedesign.areas.seminars.pages_common import LABELS, REFUSALS, attachment, localized
from lifedesign.i18n import gettext_for
from lifedesign.rendering import confirm_page, confirmed, form_data, page
from lifedesign.security import COORDINATOR, actor_of

FIELD_LABELS = {
    "title": "タイトル", "title_en": "タイトル（英語）", "description": "説明", "description_en": "説明（英語）",
    "venue": "会場", "venue_en": "会場（英語）", "access": "会場へのアクセス", "access_en": "会場へのアクセス（英語）", "starts_at": "開始日時", "ends_at": "終了日時", "capacity": "定員",
    "registration_opens_at": "申込開始", "registration_closes_at": "申込締切", "cancel_cutoff_hours": "取消期限",
    "audience": "対象", "allocation": "受付方法", "kind": "種類", "questions": "質問", "series": "シリーズ名",
    "priority_rules": "抽選の優先", "max_companions": "一緒に申し込める人数", "offer_hours": "繰り上げの返事の期限",
    "offer_fallback_hours": "返事を待たずに確定する時間",
}
# How the seats go round (lottery priority, groups, offers to the waiting list).
NUMBER_FIELDS = ("max_companions", "offer_hours", "offer_fallback_hours")
FLAG_FIELDS = ("ask_accommodation", "one_per_series")
NUMBER_DEFAULTS = {"max_companions": "0", "offer_hours": "48", "offer_fallback_hours": "24"}
TEXT_FIELDS = ("title", "title_en", "description", "description_en", "venue", "venue_en", "access", "access_en",
               "series")
TIME_FIELDS = ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at")
EMPTY_QUESTION_ROWS = 2


def _today() -> date:
    return utcnow().astimezone(TOKYO).date()


def _local_input(value: datetime | None) -> str:
    """A stored time as the value of <input type="datetime-local"> (Asia/Tokyo)."""
    return value.astimezone(TOKYO).strftime("%Y-%m-%dT%H:%M") if value else ""


def _as_tokyo_iso(value: str) -> str:
    """The form sends Tokyo wall time without an offset; the service wants the offset written."""
    value = value.strip()
    if not value:
        return ""
    if len(value) == 16:  # YYYY-MM-DDTHH:MM
        value += ":00"
    return value + "+09:00" if "+" not in value[10:] and not value.endswith("Z") else value


def _field_error(exc: DomainError, _: Any) -> tuple[str, str]:
    field = str(exc.extra.get("field", ""))
    message = exc.message
    if field in FIELD_LABELS:
        message = message.replace(field, _(FIELD_LABELS[field]))
    return field, message


# ---------------------------------------------------------------- the event form


def _form_values(event: dict[str, Any] | None) -> dict[str, Any]:
    if event is None:
        return {"kind": "seminar", "audience": "students", "allocation": "first_come", "cancel_cutoff_hours": "24",
                "capacity": "", "questions": [], "priority_rules": [], "ask_accommodation": False,
                "one_per_series": False, **NUMBER_DEFAULTS}
    values: dict[str, Any] = {k: event.get(k) or "" for k in TEXT_FIELDS}
    values.update({k: _local_input(event.get(k)) for k in TIME_FIELDS})
    values.update(kind=event["kind"], audience=event["audience"], allocation=event["allocation"],
                  capacity=str(event["capacity"]), cancel_cutoff_hours=str(event["cancel_cutoff_hours"]),
                  questions=[{"kind": q["kind"], "label": q["label"], "label_en": q["label_en"],
                              "options": "\n".join(q["options"] or []), "required": q["required"]}
                             for q in event.get("questions", [])])
    values.update({k: str(event.get(k) if event.get(k) is not None else NUMBER_DEFAULTS[k]) for k in NUMBER_FIELDS})
    values.update({k: bool(event.get(k)) for k in FLAG_FIELDS})
    values["priority_rules"] = list(event.get("priority_rules") or [])
    return values


def _rules_from_form(form: dict[str, str]) -> list[str]:
    """The checked priority boxes (one `priority_<rule>` box each), in the order the service ranks them."""
    return [rule for rule in PRIORITY_RULES if form.get(f"priority_{rule}") == "1"]


def _questions_from_form(form: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    count = int(form.get("q_count", "0")) if form.get("q_count", "0").isdigit() else 0
    for index in range(min(count, 40)):
        label = form.get(f"q{index}_label", "")
        options = form.get(f"q{index}_options", "")
        rows.append({"kind": form.get(f"q{index}_kind", "text"), "label": label,
                     "label_en": form.get(f"q{index}_label_en", ""), "options": options,
                     "required": form.get(f"q{index}_required") == "1"})
    return rows


def _questions_for_service(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"kind": r["kind"], "label": r["label"], "label_en": r["label_en"], "required": r["required"],
             "options": [line.strip() for line in r["options"].splitlines() if line.strip()]}
            for r in rows if r["label"].strip()]


def _fields_from_form(form: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {k: form.get(k, "") for k in TEXT_FIELDS}
    for key in TIME_FIELDS:
        fields[key] = _as_tokyo_iso(form.get(key, ""))
    fields["kind"] = form.get("kind", "seminar")
    fields["audience"] = form.get("audience", "anyone")
    fields["allocation"] = form.get("allocation", "first_come")
    fields["capacity"] = form.get("capacity", "")
    fields["cancel_cutoff_hours"] = form.get("cancel_cutoff_hours", "") or "24"
    for key in NUMBER_FIELDS:
        fields[key] = form.get(key, "") or NUMBER_DEFAULTS[key]
    for key in FLAG_FIELDS:
        fields[key] = form.get(key) == "1"
    fields["priority_rules"] = _rules_from_form(form)
    for key in ("registration_opens_at", "registration_closes_at"):
        fields[key] = fields[key] or None
    return fields


def _form_page(request: Request, *, event: dict[str, Any] | None, values: dict[str, Any], error: str = "",
               field: str = "", status_code: int = 200, warnings: list[str] | None = None) -> Response:
    _ = gettext_for(request.state.locale)
    rows = list(values.get("questions") or [])
    rows += [{"kind": "text", "label": "", "label_en": "", "options": "", "required": False}] * EMPTY_QUESTION_ROWS
    title = _("イベントの編集") if event else _("イベントの作成")
    return page(request, "pages/seminars/coord_form.html", status_code=status_code, title=title, heading=title,
                event=event, values=values, question_rows=rows, error=error, error_field=field, warnings=warnings or [],
                action=f"/coordinator/events/{event['id']}/edit" if event else "/coordinator/events/new", **LABELS)


@get("/coordinator/events/new", guards=[COORDINATOR], include_in_schema=False)
async def event_new(request: Request) -> Response:
    return _form_page(request, event=None, values=_form_values(None))


def _values_from_post(form: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {k: form.get(k, "") for k in (*TEXT_FIELDS, *TIME_FIELDS, "kind", "audience", "allocation",
                                                            "capacity", "cancel_cutoff_hours", *NUMBER_FIELDS)}
    values.update({k: form.get(k) == "1" for k in FLAG_FIELDS})
    values["priority_rules"] = _rules_from_form(form)
    values["questions"] = [r for r in _questions_from_form(form) if r["label"].strip() or r["options"].strip()]
    return values


async def _unconfirmed_warnings(form: dict[str, str], fields: dict[str, Any], *, event: dict[str, Any] | None,
                                locale: str) -> list[str]:
    """Before saving a start in the past or a venue already booked at that time, the form asks once more
    (the coordinator saves with 「このまま保存する」, confirmed=1). Unreadable times are left to the service."""
    if confirmed(form):
        return []
    venue = fields.get("venue", event["venue"] if event else "")
    try:
        starts = datetime.fromisoformat(fields["starts_at"]) if fields.get("starts_at") else (event or {}).get("starts_at")
        ends = datetime.fromisoformat(fields["ends_at"]) if fields.get("ends_at") else (event or {}).get("ends_at")
    except ValueError:
        return []
    if not starts or not ends or starts.tzinfo is None or ends.tzinfo is None:
        return []
    _ = gettext_for(locale)
    out = []
    for warning in await schedule.time_warnings(venue, starts, ends, exclude_id=event["id"] if event else None):
        if warning["code"] == "starts_in_past":
            out.append(_("開始日時（%(when)s）が過去になっています。") % {"when": timefmt.long(starts, locale)})
        else:
            out.append(_("同じ会場で時間が重なるイベントがあります: %(t)s") % {"t": warning["title"]})
    return out


@post("/coordinator/events/new", guards=[COORDINATOR], include_in_schema=False)
async def event_create(request: Request) -> Response:
    form = await form_data(request)
    values = _values_from_post(form)
    if form.get("action") == "add_question":  # progressive enhancement: a row more, nothing saved yet
        return _form_page(request, event=None, values=values)
    fields = _fields_from_form(form)
    fields["questions"] = _questions_for_service(values["questions"])
    warnings = await _unconfirmed_warnings(form, fields, event=None, locale=request.state.locale)
    if warnings:
        return _form_page(request, event=None, values=values, warnings=warnings)
    try:
        event_id = await schedule.create_event(fields, actor=actor_of(request))
    except DomainError as exc:
        field, message = _field_error(exc, gettext_for(request.state.locale))
        return _form_page(request, event=None, values=values, error=message, field=field, status_code=exc.status)
    return Redirect(path=f"/coordinator/events/{event_id}?notice=created", status_code=303)


@get("/coordinator/events/{event_id:int}/edit", guards=[COORDINATOR], include_in_schema=False)
async def event_edit(request: Request, event_id: FromPath[int]) -> Response:
    event = await schedule.get_event(event_id)
    return _form_page(request, event=event, values=_form_values(event))


@post("/coordinator/events/{event_id:int}/edit", guards=[COORDINATOR], include_in_schema=False)
async def event_update(request: Request, event_id: FromPath[int]) -> Response:
    event = await schedule.get_event(event_id)
    form = await form_data(request)
    values = _values_from_post(form)
    if form.get("action") == "add_question":
        return _form_page(request, event=event, values=values)
    shown = _form_values(event)
    # Send only what the coordinator changed on the form: the form shows minutes, so re-sending an untouched
    # time stored with seconds would count as a change and mail everyone registered.
    changes = {key: value for key, value in _fields_from_form(form).items()
               if str(form.get(key, "")) != str(shown.get(key) or "")}
    questions = _questions_for_service(values["questions"])
    current = _questions_for_service(shown["questions"])
    if questions != current:  # questions are locked once people registered; send them only when changed
        changes["questions"] = questions
    if {"starts_at", "ends_at", "venue"} & set(changes):
        warnings = await _unconfirmed_warnings(form, changes, event=event, locale=request.state.locale)
        if warnings:
            return _form_page(request, event=event, values=values, warnings=warnings)
    try:
        await schedule.update_event(event_id, changes, actor=actor_of(request))
    except DomainError as exc:
        field, message = _field_error(exc, gettext_for(request.state.locale))
        return _form_page(request, event=event, values=values, error=message, field=field, status_code=exc.status)
    return Redirect(path=f"/coordinator/events/{event_id}?notice=saved", status_code=303)


# ---------------------------------------------------------------- list, calendar, one event


@get("/coordinator/events", guards=[COORDINATOR], include_in_schema=False)
async def event_admin_list(
    request: Request, status: FromQuery[str] = "", kind: FromQuery[str] = "", q: FromQuery[str] = "",
    start: FromQuery[str] = "", end: FromQuery[str] = "",
) -> Response:
    _ = gettext_for(request.state.locale)
    today = _today()
    try:
        first = date.fromisoformat(start) if start else today - timedelta(days=30)
        last = date.fromisoformat(end) if end else today + timedelta(days=365)
    except ValueError:
        first, last = today - timedelta(days=30), today + timedelta(days=365)
    if last < first or (last - first).days > 800:
        last = first + timedelta(days=365)
    begin, finish = tokyo_bounds(first, last + timedelta(days=1))
    events = await schedule.list_events_between(begin, finish, kinds=[kind] if kind else None)
    if status:
        events = [e for e in events if e["status"] == status]
    if q.strip():
        needle = registration.search_key(q)
        events = [e for e in events if needle in registration.search_key(e["title"] + " " + e["venue"])]
    events = [localized(e, request.state.locale) for e in events]
    return page(request, "pages/seminars/coord_list.html", title=_("イベント管理"), events=events,
                filters={"status": status, "kind": kind, "q": q, "start": first.isoformat(), "end": last.isoformat()},
                today=today.isoformat(), **LABELS)


@get("/coordinator/calendar", guards=[COORDINATOR], include_in_schema=False)
async def calendar(request: Request, view: FromQuery[str] = "month") -> Response:
    _ = gettext_for(request.state.locale)
    view = view if view in ("month", "week") else "month"
    raw_date = request.query_params.get("date", "")  # "date" would shadow datetime.date as a parameter name
    try:
        day = date.fromisoformat(raw_date) if raw_date else _today()
    except ValueError:
        day = _today()
    first, last = calendar_range(view, day)
    events = [localized(e, request.state.locale)
              for e in await schedule.list_events_between(*tokyo_bounds(first, last))]
    grid = calendar_grid(view, day, events)
    if view == "month":
        heading = _("%(year)d年%(month)d月") % {"year": day.year, "month": day.month}
    else:
        heading = _("%(start)s からの1週間") % {"start": grid["start"].strftime("%Y/%m/%d")}
    return page(request, "pages/seminars/coord_calendar.html", title=_("カレンダー"), heading=heading, grid=grid,
                view=view, weekdays=["月", "火", "水", "木", "金", "土", "日"], today=_today(), **LABELS)


NOTICES = {
    "created": "イベントを下書きとして作成しました。内容を確認して「公開する」を押してください。",
    "saved": "変更を保存しました。",
    "published": "イベントを公開しました。",
    "cancelled": "イベントを中止しました。申し込んでいた方にはメールでお知らせしました。",
    "completed": "イベントを終了にしました。",
    "duplicated": "イベントを複製しました（下書き）。日時や会場を確認してください。",
    "drawn": "抽選を行いました。申し込んだ方全員に結果をメールでお知らせしました。",
    "registered": "申込を登録しました。",
    "invited": "招待のメールをお送りしました。",
    "draw_cancelled": "抽選を無効と宣言しました。理由は公開の記録に表示されます。",
    "message_sent": "お知らせを送りました（メールは順に配信されます）。",
}


@get("/coordinator/events/{event_id:int}", guards=[COORDINATOR], include_in_schema=False)
async def event_admin(request: Request, event_id: FromPath[int], notice: FromQuery[str] = "",
                      verify: FromQuery[str] = "") -> Response:
    return await _event_admin_page(request, event_id, notice=notice, verify=verify)


async def _event_admin_page(request: Request, event_id: int, *, notice: str = "", verify: str = "", error: str = "",
                            guests: str = "", draw_error: str = "", message_error: str = "",
                            message_form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    _ = gettext_for(request.state.locale)
    event = localized(await schedule.get_event(event_id), request.state.locale)
    overlaps = await schedule.overlapping_events(event["venue"], event["starts_at"], event["ends_at"], exclude_id=event_id)
    for other in overlaps:
        other["when"] = timefmt.event_when(other, request.state.locale)
    record = await draws.lottery_record(event_id)
    if record:
        record["drawn_at"] = aware(record["drawn_at"])
    verified = await draws.verify_draw(event_id) if record and verify else None
    invited = (await invitations.invitations_of(event_id, actor=actor_of(request))
               if event["visibility"] == "private" else [])
    return page(request, "pages/seminars/coord_event.html", status_code=status_code, title=event["display_title"], event=event,
                overlaps=overlaps, record=record, verified=verified, notice=_(NOTICES[notice]) if notice in NOTICES else "",
                invited=invited, error=error, guests=guests, draw_error=draw_error, message_error=message_error,
                message_form=message_form or {"audience": "all", "subject": "", "body": ""},
                sent_messages=await messages.messages_of(event_id, actor=actor_of(request)),
                message_audiences=messages.AUDIENCE_LABELS,
                started=event["starts_at"] <= utcnow(), duplicate_start=_local_input(event["starts_at"] + timedelta(days=7)),
                **LABELS)


@post("/coordinator/events/{event_id:int}/invitations", guards=[COORDINATOR], include_in_schema=False)
async def event_invite(request: Request, event_id: FromPath[int]) -> Response:
    """Invite people to a private event: one e-mail address (and a name) per line."""
    form = await form_data(request)
    try:
        await invitations.invite(event_id, invitations.parse_guests(form.get("guests", "")), actor=actor_of(request))
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _event_admin_page(request, event_id, error=gettext_for(request.state.locale)(exc.message),
                                       guests=form.get("guests", ""), status_code=exc.status)
    return _back(event_id, "invited")


def _back(event_id: int, notice: str) -> Response:
    return Redirect(path=f"/coordinator/events/{event_id}?notice={notice}", status_code=303)


@post("/coordinator/events/{event_id:int}/publish", guards=[COORDINATOR], include_in_schema=False)
async def event_publish(request: Request, event_id: FromPath[int]) -> Response:
    await schedule.publish_event(event_id, actor=actor_of(request))
    return _back(event_id, "published")


@post("/coordinator/events/{event_id:int}/cancel", guards=[COORDINATOR], include_in_schema=False)
async def event_cancel(request: Request, event_id: FromPath[int]) -> Response:
    """Cancelling an event is irreversible and mails everyone registered: a confirmation step first."""
    form = await form_data(request)
    reason = form.get("reason", "")
    error = ""
    if confirmed(form):
        try:
            await schedule.cancel_event(event_id, actor=actor_of(request), reason=reason)
            return _back(event_id, "cancelled")
        except DomainError as exc:
            if exc.status == 404:
                raise
            error = gettext_for(request.state.locale)(exc.message)
    _ = gettext_for(request.state.locale)
    event = localized(await schedule.get_event(event_id), request.state.locale)
    return confirm_page(
        request, title=_("「%(t)s」を中止しますか") % {"t": event["display_title"]},
        action=f"/coordinator/events/{event_id}/cancel", button=_("イベントを中止する"),
        back=f"/coordinator/events/{event_id}#cancel", recipients=event["live_count"],
        consequences=[_("イベントを中止にし、公開ページに「中止」と表示します。"),
                      _("すべてのお申し込み（%(n)d件）を取り消し、カレンダーの予定も取り消します。") % {"n": event["live_count"]},
                      _("申し込んでいた方全員に、中止の理由を書いたメールをお送りします。")],
        reason_label=_("中止の理由（メールに記載されます）"), reason=reason,
        reason_required=event["live_count"] > 0, error=error, status_code=422 if error else 200)


@post("/coordinator/events/{event_id:int}/complete", guards=[COORDINATOR], include_in_schema=False)
async def event_complete(request: Request, event_id: FromPath[int]) -> Response:
    await schedule.complete_event(event_id, actor=actor_of(request))
    return _back(event_id, "completed")


@post("/coordinator/events/{event_id:int}/duplicate", guards=[COORDINATOR], include_in_schema=False)
async def event_duplicate(request: Request, event_id: FromPath[int]) -> Response:
    form = await form_data(request)
    new_id = await schedule.duplicate_event(event_id, actor=actor_of(request),
                                            starts_at=_as_tokyo_iso(form.get("starts_at", "")) or None,
                                            venue=form.get("venue") or None)
    return _back(new_id, "duplicated")


@post("/coordinator/events/{event_id:int}/draw", guards=[COORDINATOR], include_in_schema=False)
async def event_draw(request: Request, event_id: FromPath[int]) -> Response:
    """Drawing now closes registration and mails every applicant: a confirmation step first."""
    form = await form_data(request)
    if confirmed(form):
        await draws.draw_lottery(event_id, actor=actor_of(request))
        return _back(event_id, "drawn")
    _ = gettext_for(request.state.locale)
    event = localized(await schedule.get_event(event_id), request.state.locale)
    lines = [_("抽選申込 %(n)d名から、空いている %(seats)d 席を抽選します。") % {"n": event["applied_count"],
                                                                   "seats": event["remaining"]}]
    if event["registration_closes_at"] is None or event["registration_closes_at"] > utcnow():
        lines.insert(0, _("申込の受付を今すぐ締め切ります（この後は申し込めません）。"))
    lines += [_("結果（当選・キャンセル待ちの順番）を申込者全員にメールでお知らせします。"),
              _("抽選はやり直せません。")]
    return confirm_page(request, title=_("「%(t)s」の抽選を今すぐ行いますか") % {"t": event["display_title"]},
                        action=f"/coordinator/events/{event_id}/draw", button=_("抽選する"),
                        back=f"/coordinator/events/{event_id}#lottery", recipients=event["applied_count"],
                        consequences=lines, danger=False)


@post("/coordinator/events/{event_id:int}/messages", guards=[COORDINATOR], include_in_schema=False)
async def event_message(request: Request, event_id: FromPath[int]) -> Response:
    """A message to the people registered: checked, then a confirmation step with the count and the text."""
    form = await form_data(request)
    _ = gettext_for(request.state.locale)
    audience, subject, body = form.get("audience", "all"), form.get("subject", ""), form.get("body", "")
    try:
        subject, body = messages.clean_message(subject, body)
        people = await messages.recipients(event_id, audience)
        if confirmed(form):
            await messages.send_message(event_id, actor=actor_of(request), audience=audience, subject=subject,
                                        body=body)
            return _back(event_id, "message_sent")
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _event_admin_page(request, event_id, message_error=_(exc.message), status_code=exc.status,
                                       message_form={"audience": audience, "subject": subject, "body": body})
    event = localized(await schedule.get_event(event_id), request.state.locale)
    return confirm_page(
        request, title=_("「%(t)s」の申込者にお知らせを送りますか") % {"t": event["display_title"]},
        action=f"/coordinator/events/{event_id}/messages", button=_("送信する"), danger=False,
        back=f"/coordinator/events/{event_id}#message", recipients=len(people), preview=f"{subject}\n\n{body}",
        consequences=[_("送る相手: %(who)s") % {"who": _(messages.AUDIENCE_LABELS[audience])},
                      _("メールは一人ずつ送られ、ほかの方のアドレスは見えません。送った内容はこのページに残ります。")],
        fields={"audience": audience, "subject": subject, "body": body})


@get("/coordinator/events/{event_id:int}/registrations/print", guards=[COORDINATOR], include_in_schema=False)
async def registrations_print(request: Request, event_id: FromPath[int]) -> Response:
    """The printable attendee list (受付票): seat holders with a box to tick; reading it is audited."""
    _ = gettext_for(request.state.locale)
    event = localized(await schedule.get_event(event_id), request.state.locale)
    rows = [r for r in await registration.list_registrations(event_id, actor=actor_of(request))
            if r["status"] in ("confirmed", "pending_consent", "offered", "attended", "no_show")]
    return page(request, "pages/seminars/coord_print.html", title=_("受付票") + " — " + event["display_title"],
                event=event, rows=rows, printed_at=utcnow(), **LABELS)


@post("/coordinator/events/{event_id:int}/draw/cancel", guards=[COORDINATOR], include_in_schema=False)
async def event_draw_cancel(request: Request, event_id: FromPath[int]) -> Response:
    """Declare the draw void (audited, shown on the public record); it is never drawn again."""
    form = await form_data(request)
    try:
        await draws.cancel_draw(event_id, actor=actor_of(request), reason=form.get("reason", ""))
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await _event_admin_page(request, event_id, draw_error=gettext_for(request.state.locale)(exc.message),
                                       status_code=exc.status)
    return _back(event_id, "draw_cancelled")


# ---------------------------------------------------------------- registrations, exports, check-in


def counter_participant(form: dict[str, str]) -> registration.Participant | None:
    """The counter form's 「参加者」 choice: an adult (18 or older), or a student with a birth date."""
    choice = form.get("participant", "")
    if choice == "adult":
        return registration.Participant(adult=True)
    if choice == "student":
        return registration.Participant(adult=False, student=people.student_info_from(form))
    return None


async def _registrations_page(request: Request, event_id: int, status: str, *, error: str = "", notice: str = "",
                              form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    _ = gettext_for(request.state.locale)
    event = localized(await schedule.get_event(event_id), request.state.locale)
    status = status if status in (*REGISTRATION_STATES, "live") else ""
    rows = await registration.list_registrations(event_id, actor=actor_of(request), status=status or None)
    minors = sum(1 for r in rows if r["is_minor"])
    query = urlencode({"status": status}) if status else ""
    return page(request, "pages/seminars/coord_registrations.html", status_code=status_code,
                title=_("申込者一覧") + " — " + event["display_title"], event=event, rows=rows, status=status,
                minors=minors, error=error, notice=_(NOTICES[notice]) if notice in NOTICES else "", form=form or {},
                export_query=("?" + query) if query else "", states=REGISTRATION_STATES, **LABELS)


@get("/coordinator/events/{event_id:int}/registrations", guards=[COORDINATOR], include_in_schema=False)
async def registrations_page(request: Request, event_id: FromPath[int], status: FromQuery[str] = "",
                             notice: FromQuery[str] = "") -> Response:
    return await _registrations_page(request, event_id, status, notice=notice)


@post("/coordinator/events/{event_id:int}/registrations", guards=[COORDINATOR], include_in_schema=False)
async def counter_registration(request: Request, event_id: FromPath[int]) -> Response:
    """Telephone and counter registrations: by e-mail and name (the person is created if new)."""
    form = await form_data(request)
    try:
        await registration.register_by_coordinator(
            event_id, email=form.get("email", ""), name=form.get("name", ""), actor=actor_of(request),
            participant=counter_participant(form), idempotency_key=form.get("idem") or None)
    except DomainError as exc:
        _ = gettext_for(request.state.locale)
        return await _registrations_page(request, event_id, "", error=_(REFUSALS.get(exc.code, exc.message)), form=form,
                                         status_code=exc.status)
    return Redirect(path=f"/coordinator/events/{event_id}/registrations?notice=registered", status_code=303)


async def _export(request: Request, event_id: int, status: str, ext: str) -> Response:
    event = await schedule.get_event(event_id)
    status = status if status in (*REGISTRATION_STATES, "live") else ""
    body = await exports.export(event_id, ext, actor=actor_of(request), status=status or None)
    media = ("text/csv" if ext == "csv"
             else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    day = timefmt.short(event["starts_at"], "%Y%m%d")
    safe_title = "".join(c for c in event["title"] if c not in '\\/:*?"<>|\r\n\t')[:60]
    return Response(body, media_type=media, headers={
        "Content-Disposition": attachment(exports.export_filename(event_id, ext), f"申込者一覧_{day}_{safe_title}.{ext}")})


@get("/coordinator/events/{event_id:int}/registrations.csv", guards=[COORDINATOR], include_in_schema=False)
async def export_csv(request: Request, event_id: FromPath[int], status: FromQuery[str] = "") -> Response:
    return await _export(request, event_id, status, "csv")


@get("/coordinator/events/{event_id:int}/registrations.xlsx", guards=[COORDINATOR], include_in_schema=False)
async def export_xlsx(request: Request, event_id: FromPath[int], status: FromQuery[str] = "") -> Response:
    return await _export(request, event_id, status, "xlsx")


async def _checkin_page(request: Request, event_id: int, q: str, *, error: str = "", marked: int | None = None,
                        status_code: int = 200) -> Response:
    _ = gettext_for(request.state.locale)
    event = localized(await schedule.get_event(event_id), request.state.locale)
    rows = await registration.checkin_search(event_id, q, actor=actor_of(request))
    return page(request, "pages/seminars/coord_checkin.html", status_code=status_code, title=_("受付（出欠）"),
                event=event, rows=rows, q=q, error=error, marked=marked,
                attended=sum(1 for r in rows if r["status"] == "attended"), **LABELS)


@get("/coordinator/events/{event_id:int}/checkin", guards=[COORDINATOR], include_in_schema=False)
async def checkin_page(request: Request, event_id: FromPath[int], q: FromQuery[str] = "",
                       marked: FromQuery[int | None] = None) -> Response:
    return await _checkin_page(request, event_id, q, marked=marked)


@post("/coordinator/registrations/{registration_id:int}/attendance", guards=[COORDINATOR], include_in_schema=False)
async def attendance(request: Request, registration_id: FromPath[int]) -> Response:
    form = await form_data(request)
    actor = actor_of(request)
    found = await registration.get_registration(registration_id, actor=actor)
    q = form.get("q", "")
    try:
        await registration.mark_attendance(registration_id, form.get("status", ""), actor=actor)
    except DomainError as exc:
        return await _checkin_page(request, found["event_id"], q, error=gettext_for(request.state.locale)(exc.message),
                                   status_code=exc.status)
    query = urlencode({"q": q, "marked": registration_id})
    return Redirect(path=f"/coordinator/events/{found['event_id']}/checkin?{query}#r{registration_id}", status_code=303)


COORDINATOR_ROUTES = [event_new, event_create, event_edit, event_update, event_admin_list, calendar, event_admin,
                      event_publish, event_cancel, event_complete, event_duplicate, event_draw, event_draw_cancel, event_invite,
                      event_message, registrations_print,
                      registrations_page,
                      counter_registration, export_csv, export_xlsx, checkin_page, attendance]
