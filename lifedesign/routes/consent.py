"""The guardian's consent page, one for every subject (a seminar place, a home visit): no account, the token
in the link is the key. Bad input — an unknown token, a missing or unknown answer, a second answer, an
expired link — answers a clear page with a 4xx status, never a 500."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.params import FromPath

from events import consent
from events.errors import DomainError, NotFound
from lifedesign.i18n import gettext_for
from lifedesign.rendering import form_data, page
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
    try:
        outcome = await consent.decide(token, form.get("decision", ""), client=client_of(request))
    except NotFound:
        return _invalid_link(request)
    except DomainError as exc:
        if exc.status >= 500:
            raise
        return await _page(request, token, error=_(exc.message), status=exc.status)
    return await _page(request, token, done=_(DONE[outcome["decision"]]))


ROUTES = [consent_page, consent_decide]
