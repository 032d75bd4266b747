"""Admin and coordinator pages of the shell: accounts, audit log, mail outbox."""

from __future__ import annotations

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


@get("/admin/audit", guards=[ADMIN], include_in_schema=False)
async def audit_log(request: Request, action: FromQuery[str] = "") -> Response:
    return page(request, "pages/admin_audit.html", title="監査ログ", action=action,
                entries=await audit.view(actor_of(request), action=action or None), labels=audit.ACTION_LABELS)


@get("/coordinator/outbox", guards=[COORDINATOR], include_in_schema=False)
async def outbox_page(request: Request, status: FromQuery[str] = "") -> Response:
    found = await outbox.view(actor_of(request), status=status or None)
    return page(request, "pages/outbox.html", title="メール送信状況", counts=found["counts"],
                messages=found["messages"], state_labels=STATE_LABELS, notice="")


@post("/coordinator/outbox/{message_id:int}/retry", guards=[COORDINATOR], include_in_schema=False)
async def outbox_retry(request: Request, message_id: FromPath[int]) -> Response:
    await outbox.retry_failed(message_id, actor=actor_of(request))
    return Redirect(path="/coordinator/outbox?status=queued", status_code=303)


ROUTES = [users, user_add, user_toggle, audit_log, outbox_page, outbox_retry]
