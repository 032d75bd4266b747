"""The guardian's consent page, one for every subject (a seminar place, a home visit): no account, the token
in the link is the key. Bad input — an unknown token, a missing or unknown answer, a second answer, an
expired link — answers a clear page with a 4xx status, never a 500."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.params import FromPath

from events import consent
from events.errors import DomainError, NotFound
from lifedesign.i18n import gettext_for
from lifedesign.rendering import confirm_page, confirmed, form_data, page
from lifedesign.security import client_of

DONE = {
    "given": "同意いただき、ありがとうございました。生徒さんと保護者の方に、確認のメールをお送りしました。",
    "refused": "「同意しない」とのご回答を承りました。生徒さんのお申込みは取り消されました。",
    "revoked": "同意の取り消しを承りました。生徒さんの参加は取りやめとなり、区の担当者にも連絡しました。",
}


def _invalid_link(request: Request) -> Response:
    _ = gettext_for(request.state.locale)
    return page(request, "pages/message.html", status_code=404, title=_("このリンクは無効です"),
                heading=_("このリンクは無効です"),
                lines=[_("メールに記載されたリンクをもう一度ご確認ください。"),
                       _("ご不明な点は、金沢区こども家庭支援課までお問い合わせください。")], link=None)


async def _page(request: Request, token: str, *, error: str = "", done: str = "", status: int = 200) -> Response:
    try:
        found = await consent.view(token)
    except NotFound:
        return _invalid_link(request)
    if status == 200 and found["state"] == "expired" and not done:
        status = 410
    _ = gettext_for(request.state.locale)
    return page(request, "pages/consent.html", status_code=status, title=_("保護者の方の同意のお願い"),
                consent=found, token=token, error=error, done=done)


@get("/consent/{token:str}", include_in_schema=False)
async def consent_page(request: Request, token: FromPath[str]) -> Response:
    request.state.personal = True
    return await _page(request, token)


@post("/consent/{token:str}", include_in_schema=False)
async def consent_decide(request: Request, token: FromPath[str]) -> Response:
    request.state.personal = True
    _ = gettext_for(request.state.locale)
    form = await form_data(request)
    decision = (form.get("decision") or "").strip().lower()
    if decision in ("refuse", "refused", "revoke", "revoked") and not confirmed(form):
        return await _confirm(request, token, decision)
    try:
        outcome = await consent.decide(token, form.get("decision", ""), client=client_of(request))
    except NotFound:
        return _invalid_link(request)
    except DomainError as exc:
        if exc.status >= 500:
            raise
        return await _page(request, token, error=_(exc.message), status=exc.status)
    return await _page(request, token, done=_(DONE[outcome["decision"]]))


async def _confirm(request: Request, token: str, decision: str) -> Response:
    """「同意しない」 and 「同意を取り消す」 cannot be undone: say so once more before acting (the answer 「同意する」
    needs no second step: it is what the guardian was asked for, and it can be withdrawn later)."""
    try:
        found = await consent.view(token)
    except NotFound:
        return _invalid_link(request)
    _ = gettext_for(request.state.locale)
    what = {"student": found["student_name"], "title": found["title"]}
    if decision.startswith("refuse"):
        title = _("「同意しない」と回答しますか")
        lines = [_("%(student)sさんの「%(title)s」へのお申し込みは取り消されます。") % what,
                 _("ご回答は後から変えられません。参加をご希望の場合は、生徒さんからもう一度お申し込みください。")]
        button = _("同意しない")
    else:
        title = _("同意を取り消しますか")
        lines = [_("%(student)sさんの「%(title)s」への参加は取りやめになります。") % what,
                 _("区の担当者にも連絡が届きます。もう一度参加するには、生徒さんからのお申し込みと保護者の方の同意が改めて必要です。")]
        button = _("同意を取り消す")
    lines.append(_("保護者の方に、ご回答の確認メールをお送りします。"))
    return confirm_page(request, title=title, action=f"/consent/{token}", consequences=lines, button=button,
                        back=f"/consent/{token}", fields={"decision": decision})


ROUTES = [consent_page, consent_decide]
