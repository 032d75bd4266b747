"""Personal-data rights in the shell: my data (page + JSON), correction, deletion, the guardian's token pages,
the coordinators' list of requests and legal holds, an admin's paper request, the privacy notice, and the JSON
API. Handlers are thin: parse, guard, call one events.privacy service with actor_of(request), render."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect
from litestar.status_codes import HTTP_202_ACCEPTED

from events import people, privacy, retention, timefmt
from events.config import config
from events.db import utcnow
from events.errors import DomainError, Invalid
from events.seminars.tables import LIVE_STATES
from lifedesign.i18n import gettext_for
from lifedesign.rendering import PROFILE_SECTIONS, form_data, page, register_nav, render_fragment
from lifedesign.security import ADMIN, COORDINATOR, LOGGED_IN, actor_of, client_of, session_cookie_name

register_nav("/coordinator/privacy", "個人情報の請求", ("coordinator", "admin"))

# Column names as a person reads them on the page (the JSON keeps the column names).
FIELD_LABELS = {
    "id": "番号", "email": "メールアドレス", "name": "お名前", "kana": "ふりがな", "locale": "言語", "active": "有効",
    "reminders": "リマインダー", "created_at": "作成日時", "updated_at": "更新日時", "erased_at": "削除日時",
    "roles": "役割", "role": "役割", "school_level": "学校の種別", "school_name": "学校名", "grade": "学年",
    "birth_date": "生年月日", "guardian_email": "保護者のメールアドレス", "guardian_name": "保護者のお名前",
    "facility_name": "施設", "job_title": "職名", "last_seen_at": "最後の利用", "ended_at": "終了日時",
    "label": "名前・内容", "prefix": "先頭", "revoked_at": "無効化日時", "title": "タイトル", "event_title": "イベント",
    "event_starts_at": "開始日時", "starts_at": "開始日時", "ends_at": "終了日時", "status": "状態", "answers": "回答",
    "queue_position": "キャンセル待ちの順番", "confirmed_at": "確定日時", "cancelled_at": "取消日時",
    "decision": "回答", "purpose": "同意の内容", "text_version": "同意文の版", "expires_at": "期限",
    "decided_at": "決定日時", "kind": "種類", "subject": "件名", "sent_at": "送信日時", "at": "日時",
    "action": "操作コード", "by": "操作した人", "as": "あなたとの関係", "district": "地区", "round_name": "訪問回",
    "note": "メモ", "windows": "訪問できる日時", "districts": "希望の地区", "survey_title": "アンケート",
    "responded_at": "回答日時", "answered": "回答済み", "reminded_at": "再送日時", "address": "住所", "postal_code": "郵便番号",
    "phone": "電話番号", "directions": "道順", "display_name": "表示名", "via": "依頼の方法", "fields": "項目",
    "decision_note": "担当者のコメント", "placed_at": "設定日時", "lifted_at": "解除日時", "table_no": "テーブル",
    "round": "ラウンド", "sequence": "版", "state": "状態", "accommodation": "配慮の希望",
    "guardian_phone": "保護者の電話番号", "request": "家庭訪問の希望",
}


def _(request: Request):
    return gettext_for(request.state.locale)


def _cell(key: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and key.endswith(("_at", "starts_at")) and len(value) >= 19:
        try:
            return timefmt.short(datetime.fromisoformat(value))
        except ValueError:
            return value
    return str(value)


def sections_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The export as the readable page shows it: one table per section, columns in the order rows have them."""
    out = []
    for name, heading in data["headings"].items():
        rows = data["tables"].get(name, [])
        columns: list[str] = []
        for row in rows:
            columns += [key for key in row if key not in columns]
        out.append({"name": name, "heading": heading, "count": len(rows),
                    "columns": [(key, FIELD_LABELS.get(key, key)) for key in columns],
                    "rows": [[_cell(key, row.get(key)) for key in columns] for row in rows]})
    return out


def _json_download(data: Any, filename: str) -> Response:
    body = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False).encode("utf-8")
    return Response(content=body, media_type="application/json; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def _upcoming(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The person's registrations still to come (what deleting the account would cancel)."""
    now = utcnow().isoformat()
    return [r for r in data["tables"].get("registration", []) if "as" not in r and r.get("status") in LIVE_STATES
            and (r.get("event_starts_at") or "") > now]


# ---------------------------------------------------------------- the person


async def _my_page(request: Request, *, notice: str = "", error: str = "", status: int = 200) -> Response:
    data = await privacy.my_data(actor_of(request))
    return page(request, "pages/privacy/my_data.html", status_code=status, title="あなたの情報", data=data,
                sections=sections_of(data), fields=privacy.REQUESTABLE_FIELDS, notice=notice, error=error,
                upcoming=_upcoming(data))


@get("/my/data", guards=[LOGGED_IN], include_in_schema=False)
async def my_data_page(request: Request) -> Response:
    return await _my_page(request)


@get("/my/data.json", guards=[LOGGED_IN], include_in_schema=False)
async def my_data_download(request: Request) -> Response:
    data = await privacy.my_data(actor_of(request))
    return _json_download(data, f"lifedesign-my-data-{utcnow().date().isoformat()}.json")


@post("/my/data/correction", guards=[LOGGED_IN], include_in_schema=False)
async def my_correction(request: Request) -> Response:
    form = await form_data(request)
    field = form.get("field", "")
    try:
        await privacy.request_correction(actor_of(request), request.state.person["id"],
                                         {field: form.get("value", "")} if field else {}, form.get("note", ""))
    except DomainError as exc:
        if exc.status >= 500:
            raise
        return await _my_page(request, error=_(request)(exc.message), status=exc.status)
    return await _my_page(request, notice=_(request)("訂正のご依頼を受け付けました。区の担当者が確認し、結果をメールでお知らせします。"))


@get("/my/data/delete", guards=[LOGGED_IN], include_in_schema=False)
async def my_delete_form(request: Request) -> Response:
    data = await privacy.my_data(actor_of(request))
    return page(request, "pages/privacy/delete.html", title="アカウントの削除", upcoming=_upcoming(data),
                error="", staff=actor_of(request).staff)


def _deleted_page(request: Request, outcome: dict[str, Any]) -> Response:
    _t = _(request)
    if outcome["status"] == "done":
        response = page(request, "pages/message.html", title=_t("アカウントを削除しました"),
                        heading=_t("アカウントを削除しました"),
                        lines=[_t("お名前・メールアドレスなどの個人情報を削除し、今後の参加申込を取り消しました。"),
                               _t("確認のメールをお送りしました。ご利用ありがとうございました。")],
                        link={"href": "/privacy", "label": _t("プライバシーポリシー")})
        response.delete_cookie(session_cookie_name(), path="/")
        return response
    lines = {"awaiting_guardian": [_t("18歳未満の方のアカウントの削除には、保護者の方の確認が必要です。"),
                                   _t("保護者の方にメールでお知らせしました。保護者の方が確認すると削除されます。")],
             "review": [_t("保存が必要な記録があるため、区の担当者が確認してから削除します。"),
                        _t("結果はメールでお知らせします。")]}
    return page(request, "pages/message.html", title=_t("削除のご依頼を受け付けました"),
                heading=_t("削除のご依頼を受け付けました"), lines=lines.get(outcome["status"], []), link=None)


@post("/my/data/delete", guards=[LOGGED_IN], include_in_schema=False)
async def my_delete(request: Request) -> Response:
    form = await form_data(request)
    try:
        if form.get("confirm") != "1":
            raise Invalid("「削除に同意します」にチェックを入れてください。", code="confirm_required", field="confirm")
        outcome = await privacy.request_deletion(actor_of(request), request.state.person["id"], via="self",
                                                 note=form.get("note", ""))
    except DomainError as exc:
        if exc.status >= 500:
            raise
        data = await privacy.my_data(actor_of(request))
        return page(request, "pages/privacy/delete.html", status_code=exc.status, title="アカウントの削除",
                    upcoming=_upcoming(data), error=_(request)(exc.message), staff=actor_of(request).staff)
    return _deleted_page(request, outcome)


async def _student_form(request: Request, *, error: str = "", status: int = 200, form: dict | None = None) -> Response:
    profile = await people.student_profile(request.state.person["id"])
    return page(request, "pages/privacy/student_form.html", status_code=status, title="学生情報の訂正",
                profile=form if form is not None else (profile or {}), has_profile=profile is not None, error=error)


@get("/profile/student", guards=[LOGGED_IN], include_in_schema=False)
async def student_form(request: Request) -> Response:
    return await _student_form(request)


@post("/profile/student", guards=[LOGGED_IN], include_in_schema=False)
async def student_save(request: Request) -> Response:
    form = await form_data(request)
    try:
        outcome = await privacy.correct_student_profile(actor_of(request), request.state.person["id"],
                                                        people.student_info_from(form))
    except DomainError as exc:
        if exc.status >= 500:
            raise
        return await _student_form(request, error=_(request)(exc.message), status=exc.status, form=form)
    suffix = "&consent=1" if outcome["consent_reasked"] else ""
    return Redirect(path=f"/profile?student=saved{suffix}", status_code=303)


async def _profile_section(request: Request) -> str:
    person = request.state.person
    profile = await people.student_profile(person["id"]) if "student" in person["roles"] else None
    return render_fragment(request, "pages/privacy/_profile_section.html", profile=profile,
                           saved=request.query_params.get("student") == "saved",
                           reasked=request.query_params.get("consent") == "1")


PROFILE_SECTIONS.append(_profile_section)


# ---------------------------------------------------------------- the guardian (token pages, no account)


@get("/privacy/guardian", include_in_schema=False)
async def guardian_form(request: Request) -> Response:
    return page(request, "pages/privacy/guardian_form.html", title="保護者の方へ", error="", email="")


@post("/privacy/guardian", include_in_schema=False)
async def guardian_request(request: Request) -> Response:
    form = await form_data(request)
    _t = _(request)
    try:
        await privacy.request_guardian_link(form.get("email", ""), client=client_of(request))
    except DomainError as exc:
        if exc.status in (429,) or exc.status >= 500:
            raise
        return page(request, "pages/privacy/guardian_form.html", status_code=exc.status, title="保護者の方へ",
                    error=_t(exc.message), email=form.get("email", ""))
    return page(request, "pages/message.html", heading=_t("メールを確認してください"),
                lines=[_t("お子さまのプロフィールに登録されている保護者のメールアドレスであれば、確認用のリンクをお送りしました。"),
                       _t("リンクは24時間有効です。")], link=None)


async def _guardian_page(request: Request, token: str, *, notice: str = "", error: str = "",
                         status: int = 200) -> Response:
    request.state.personal = True
    try:
        found = await privacy.guardian_view(token, client=client_of(request))
    except DomainError as exc:
        if exc.status >= 500:
            raise
        _t = _(request)
        return page(request, "pages/message.html", status_code=exc.status, title=_t("このリンクは無効です"),
                    heading=_t("このリンクは無効です"), lines=[_t(exc.message)],
                    link={"href": "/privacy/guardian", "label": _t("もう一度リンクを申し込む")})
    return page(request, "pages/privacy/guardian.html", status_code=status, title="お子さまの情報",
                found=found, token=token, sections={c["id"]: sections_of(c["data"]) for c in found["children"]},
                fields=privacy.REQUESTABLE_FIELDS, notice=notice,
                error=error)


@get("/privacy/guardian/{token:str}", include_in_schema=False)
async def guardian_page(request: Request, token: FromPath[str]) -> Response:
    return await _guardian_page(request, token)


@get("/privacy/guardian/{token:str}/data.json", include_in_schema=False)
async def guardian_download(request: Request, token: FromPath[str], student: FromQuery[int] = 0) -> Response:
    request.state.personal = True
    found = await privacy.guardian_view(token, client=client_of(request))
    chosen = [c["data"] for c in found["children"] if not student or c["id"] == student]
    return _json_download({"format": privacy.EXPORT_FORMAT, "children": chosen}, "lifedesign-child-data.json")


def _student_of(form: dict[str, str]) -> int:
    value = form.get("student_id", "")
    if not value.isdigit():
        raise Invalid("お子さまを選んでください。", code="student_required", field="student_id")
    return int(value)


@post("/privacy/guardian/{token:str}/delete", include_in_schema=False)
async def guardian_delete(request: Request, token: FromPath[str]) -> Response:
    request.state.personal = True
    form = await form_data(request)
    try:
        if form.get("confirm") != "1":
            raise Invalid("「削除に同意します」にチェックを入れてください。", code="confirm_required", field="confirm")
        outcome = await privacy.guardian_request_deletion(token, _student_of(form), client=client_of(request),
                                                          note=form.get("note", ""))
    except DomainError as exc:
        if exc.status >= 500 or exc.code in ("guardian_link_unknown", "guardian_link_expired"):
            return await _guardian_page(request, token)
        return await _guardian_page(request, token, error=_(request)(exc.message), status=exc.status)
    _t = _(request)
    if outcome["status"] == "done":
        return page(request, "pages/message.html", title=_t("アカウントを削除しました"),
                    heading=_t("アカウントを削除しました"),
                    lines=[_t("お子さまの個人情報を削除し、今後の参加申込を取り消しました。確認のメールをお送りしました。")],
                    link=None)
    return await _guardian_page(request, token,
                                notice=_t("保存が必要な記録があるため、区の担当者が確認してから削除します。結果はメールでお知らせします。"))


@post("/privacy/guardian/{token:str}/correction", include_in_schema=False)
async def guardian_correction(request: Request, token: FromPath[str]) -> Response:
    request.state.personal = True
    form = await form_data(request)
    field = form.get("field", "")
    try:
        await privacy.guardian_request_correction(token, _student_of(form), {field: form.get("value", "")} if field
                                                  else {}, form.get("note", ""), client=client_of(request))
    except DomainError as exc:
        if exc.status >= 500:
            raise
        return await _guardian_page(request, token, error=_(request)(exc.message), status=exc.status)
    return await _guardian_page(request, token, notice=_(request)("訂正のご依頼を受け付けました。区の担当者が確認します。"))


# ---------------------------------------------------------------- the privacy notice


@get("/privacy", include_in_schema=False)
async def privacy_notice(request: Request) -> Response:
    cfg = config()
    return page(request, "pages/privacy/notice.html", title="個人情報の取り扱い（プライバシーポリシー）",
                policy=retention.policy(cfg), contact=cfg.privacy_contact, sender=cfg.mail_from_name,
                sender_email=cfg.mail_from, consent_hours=cfg.consent_expiry_hours)


# ---------------------------------------------------------------- coordinators and admins


async def _coordinator_page(request: Request, *, notice: str = "", error: str = "", status: int = 200,
                            show_all: bool = False) -> Response:
    found = await privacy.view_requests(actor_of(request), include_closed=show_all)
    return page(request, "pages/privacy/coordinator.html", status_code=status, title="個人情報の請求",
                found=found, fields=privacy.REQUESTABLE_FIELDS, notice=notice, error=error, show_all=show_all,
                is_admin="admin" in request.state.person["roles"])


@get("/coordinator/privacy", guards=[COORDINATOR], include_in_schema=False)
async def coordinator_page(request: Request, all: FromQuery[str] = "") -> Response:
    return await _coordinator_page(request, show_all=all == "1")


async def _staff_action(request: Request, action, done: str) -> Response:
    try:
        await action()
    except DomainError as exc:
        if exc.status >= 500:
            raise
        return await _coordinator_page(request, error=_(request)(exc.message), status=exc.status)
    return await _coordinator_page(request, notice=_(request)(done))


@post("/coordinator/privacy/requests/{request_id:int}", guards=[COORDINATOR], include_in_schema=False)
async def coordinator_decide(request: Request, request_id: FromPath[int]) -> Response:
    form = await form_data(request)
    return await _staff_action(request, lambda: privacy.decide_request(
        actor_of(request), request_id, action=form.get("action", ""), note=form.get("note", "")), "処理しました。")


@post("/coordinator/privacy/holds", guards=[COORDINATOR], include_in_schema=False)
async def coordinator_hold(request: Request) -> Response:
    form = await form_data(request)

    async def place() -> None:
        person = await privacy.find_person(form.get("email", ""))
        await privacy.place_hold(actor_of(request), person["id"], form.get("reason", ""))

    return await _staff_action(request, place, "保存義務を設定しました。")


@post("/coordinator/privacy/holds/{hold_id:int}/lift", guards=[COORDINATOR], include_in_schema=False)
async def coordinator_lift(request: Request, hold_id: FromPath[int]) -> Response:
    return await _staff_action(request, lambda: privacy.lift_hold(actor_of(request), hold_id), "保存義務を解除しました。")


@get("/coordinator/privacy/lookup", guards=[COORDINATOR], include_in_schema=False)
async def coordinator_lookup(request: Request, email: FromQuery[str] = "") -> Response:
    try:
        person = await privacy.find_person(email)
    except DomainError as exc:
        if exc.status >= 500:
            raise
        return await _coordinator_page(request, error=_(request)(exc.message), status=exc.status)
    return Redirect(path=f"/coordinator/privacy/people/{person['id']}", status_code=303)


@get("/coordinator/privacy/people/{person_id:int}", guards=[COORDINATOR], include_in_schema=False)
async def coordinator_person(request: Request, person_id: FromPath[int]) -> Response:
    data = await privacy.view_person_data(actor_of(request), person_id)
    return page(request, "pages/privacy/person.html", title="利用者の情報（開示）", data=data,
                sections=sections_of(data))


@get("/coordinator/privacy/people/{person_id:int}/data.json", guards=[COORDINATOR], include_in_schema=False)
async def coordinator_person_download(request: Request, person_id: FromPath[int]) -> Response:
    data = await privacy.view_person_data(actor_of(request), person_id)
    return _json_download(data, f"lifedesign-person-{person_id}.json")


@post("/admin/privacy/deletion", guards=[ADMIN], include_in_schema=False)
async def admin_paper_deletion(request: Request) -> Response:
    form = await form_data(request)

    async def delete() -> None:
        person = await privacy.find_person(form.get("email", ""))
        if form.get("confirm") != "1":
            raise Invalid("書面の請求を確認したうえで、チェックを入れてください。", code="confirm_required", field="confirm")
        await privacy.request_deletion(actor_of(request), person["id"], via="paper", note=form.get("note", ""))

    return await _staff_action(request, delete, "書面による削除のご依頼を処理しました（保存義務がある場合は確認待ちです）。")


# ---------------------------------------------------------------- JSON API


class CorrectionIn(msgspec.Struct):
    fields: dict[str, str]
    note: str = ""


class DeletionIn(msgspec.Struct):
    confirm: bool = False
    note: str = ""


class DecisionIn(msgspec.Struct):
    action: str
    note: str = ""


@get("/api/v1/me/data", guards=[LOGGED_IN], tags=["privacy"])
async def api_my_data(request: Request) -> dict[str, Any]:
    """Everything held about you, by table (the same as /my/data.json)."""
    return await privacy.my_data(actor_of(request))


@post("/api/v1/me/correction-requests", guards=[LOGGED_IN], tags=["privacy"], status_code=HTTP_202_ACCEPTED)
async def api_correction(request: Request, data: JSONBody[CorrectionIn]) -> dict[str, Any]:
    """Ask for a correction you may not make yourself (coordinators decide; you are told by e-mail)."""
    request_id = await privacy.request_correction(actor_of(request), request.state.person["id"], data.fields,
                                                  data.note)
    return {"request_id": request_id, "status": "review"}


@post("/api/v1/me/deletion", guards=[LOGGED_IN], tags=["privacy"], status_code=HTTP_202_ACCEPTED)
async def api_deletion(request: Request, data: JSONBody[DeletionIn]) -> dict[str, Any]:
    """Delete your account (`confirm: true`): done now, or waiting for your guardian or a coordinator."""
    if not data.confirm:
        raise Invalid("削除するには confirm: true を送ってください。", code="confirm_required", field="confirm")
    outcome = await privacy.request_deletion(actor_of(request), request.state.person["id"], via="self",
                                             note=data.note)
    return {"request_id": outcome["request_id"], "status": outcome["status"], "cancelled": outcome["cancelled"]}


@get("/api/v1/privacy/requests", guards=[COORDINATOR], tags=["privacy"])
async def api_requests(request: Request, all: FromQuery[bool] = False) -> dict[str, Any]:
    found = await privacy.view_requests(actor_of(request), include_closed=all)
    return {"requests": [privacy.plain(r) for r in found["requests"]],
            "holds": [privacy.plain(h) for h in found["holds"]]}


@post("/api/v1/privacy/requests/{request_id:int}/decision", guards=[COORDINATOR], tags=["privacy"])
async def api_decide(request: Request, request_id: FromPath[int], data: JSONBody[DecisionIn]) -> dict[str, Any]:
    return await privacy.decide_request(actor_of(request), request_id, action=data.action, note=data.note)


ROUTES = [my_data_page, my_data_download, my_correction, my_delete_form, my_delete, student_form, student_save,
          guardian_form, guardian_request, guardian_page, guardian_download, guardian_delete, guardian_correction,
          privacy_notice, coordinator_page, coordinator_decide, coordinator_hold, coordinator_lift,
          coordinator_lookup, coordinator_person, coordinator_person_download, admin_paper_deletion, api_my_data,
          api_correction, api_deletion, api_requests, api_decide]
