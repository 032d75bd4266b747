"""Admin and coordinator pages of the shell: accounts, audit log, mail outbox."""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from events import audit, outbox, people
from events.core.tables import ROLES
from events.errors import DomainError
from lifedesign.i18n import gettext_for
from lifedesign.rendering import ROLE_LABELS, form_data, page, register_nav
from lifedesign.security import ADMIN, COORDINATOR, actor_of

STATE_LABELS = {
    "queued": "送信待ち", "inflight": "送信中", "awaiting_retry": "再試行待ち",
    "sent": "送信済み", "failed": "失敗", "withdrawn": "取り下げ",
}

register_nav("/admin/users", "アカウント管理", ("admin",))
register_nav("/admin/audit", "監査ログ", ("admin",))
register_nav("/coordinator/outbox", "メール送信状況", ("coordinator", "admin"))


async def _users_page(request: Request, q: str = "", *, notice: str = "", error: str = "", status: int = 200) -> Response:
    return page(request, "pages/admin_users.html", status_code=status, title="アカウント管理", q=q,
                people=await people.view_people(actor_of(request), query=q), all_roles=ROLES, role_labels=ROLE_LABELS,
                notice=notice, error=error)


@get("/admin/users", guards=[ADMIN], include_in_schema=False)
async def users(request: Request, q: FromQuery[str] = "") -> Response:
    return await _users_page(request, q)


@post("/admin/users", guards=[ADMIN], include_in_schema=False)
async def user_add(request: Request) -> Response:
    form = await form_data(request)
    _ = gettext_for(request.state.locale)
    try:
        await people.add_account(actor_of(request), form.get("email", ""), form.get("name", ""),
                                 roles=(form.get("role", ""),))
    except DomainError as exc:
        return await _users_page(request, error=_(exc.message), status=exc.status)
    return await _users_page(request, notice=_("追加しました。"))


@post("/admin/users/{person_id:int}/{action:str}", guards=[ADMIN], include_in_schema=False)
async def user_toggle(request: Request, person_id: FromPath[int], action: FromPath[str]) -> Response:
    if action not in ("disable", "enable"):
        raise DomainError("不明な操作です。", code="unknown_action", status=404)
    await people.set_active(actor_of(request), person_id, action == "enable")
    return Redirect(path="/admin/users", status_code=303)


def _audit_filter(action: str, actor: str, subject_type: str, subject_id: str, since: str,
                  until: str) -> audit.AuditFilter:
    return audit.AuditFilter.parse(action=action, actor=actor, subject_type=subject_type, subject_id=subject_id,
                                   since=since, until=until)


@get("/admin/audit", guards=[ADMIN], include_in_schema=False)
async def audit_log(request: Request, action: FromQuery[str] = "", actor: FromQuery[str] = "",
                    subject_type: FromQuery[str] = "", subject_id: FromQuery[str] = "", since: FromQuery[str] = "",
                    until: FromQuery[str] = "", cursor: FromQuery[str] = "") -> Response:
    """Human labels, a date range, actor and subject filters, pages by cursor, and the same filter as CSV."""
    try:
        wanted = _audit_filter(action, actor, subject_type, subject_id, since, until)
        found = await audit.search(actor_of(request), wanted, cursor=cursor)
        error, status = "", 200
    except DomainError as exc:
        if exc.status >= 500 or exc.status in (401, 403):
            raise
        wanted, found = audit.AuditFilter(), {"entries": [], "next_cursor": None}
        error, status = gettext_for(request.state.locale)(exc.message), exc.status
    query = urlencode({k: v for k, v in wanted.as_dict().items() if v})
    return page(request, "pages/admin_audit.html", status_code=status, title="監査ログ", wanted=wanted.as_dict(),
                entries=found["entries"], next_cursor=found["next_cursor"], cursor=cursor, query=query, error=error,
                labels=audit.ACTION_LABELS)


@get("/admin/audit.csv", guards=[ADMIN], include_in_schema=False)
async def audit_csv(request: Request, action: FromQuery[str] = "", actor: FromQuery[str] = "",
                    subject_type: FromQuery[str] = "", subject_id: FromQuery[str] = "", since: FromQuery[str] = "",
                    until: FromQuery[str] = "") -> Response:
    wanted = _audit_filter(action, actor, subject_type, subject_id, since, until)
    body = await audit.export_csv(actor_of(request), wanted)
    return Response(content=body, media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="audit.csv"', "Cache-Control": "no-store"})


@get("/coordinator/outbox", guards=[COORDINATOR], include_in_schema=False)
async def outbox_page(request: Request, status: FromQuery[str] = "") -> Response:
    found = await outbox.view(actor_of(request), status=status or None)
    return page(request, "pages/outbox.html", title="メール送信状況", counts=found["counts"], stuck=found["stuck"],
                messages=found["messages"], state_labels=STATE_LABELS, notice="")


@post("/coordinator/outbox/{message_id:int}/retry", guards=[COORDINATOR], include_in_schema=False)
async def outbox_retry(request: Request, message_id: FromPath[int]) -> Response:
    await outbox.retry_failed(message_id, actor=actor_of(request))
    return Redirect(path="/coordinator/outbox?status=queued", status_code=303)


@post("/coordinator/outbox/{message_id:int}/release", guards=[COORDINATOR], include_in_schema=False)
async def outbox_release(request: Request, message_id: FromPath[int]) -> Response:
    await outbox.release_stuck(message_id, actor=actor_of(request))
    return Redirect(path="/coordinator/outbox?status=awaiting_retry", status_code=303)


@post("/coordinator/outbox/{message_id:int}/withdraw", guards=[COORDINATOR], include_in_schema=False)
async def outbox_withdraw(request: Request, message_id: FromPath[int]) -> Response:
    await outbox.withdraw_message(message_id, actor=actor_of(request))
    return Redirect(path="/coordinator/outbox?status=withdrawn", status_code=303)


ROUTES = [users, user_add, user_toggle, audit_log, audit_csv, outbox_page, outbox_retry, outbox_release,
          outbox_withdraw]
