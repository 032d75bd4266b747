"""Server-rendered pages: one Jinja environment, one `page()` call per handler."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, pass_context, select_autoescape
from litestar import Request, Response
from litestar.enums import MediaType

from events import timefmt
from events.config import config
from lifedesign.i18n import gettext_for

NAV: list[dict[str, Any]] = []  # areas append {"href", "label", "roles"} at import time


def register_nav(href: str, label: str, roles: tuple[str, ...]) -> None:
    NAV.append({"href": href, "label": label, "roles": roles})


@pass_context
def _jst(context: Any, value: Any, fmt: str | None = None) -> str:
    """`|jst`: a time for a table, with its weekday, in the page's language (`|jst(fmt)` for a fixed format)."""
    if fmt:
        return timefmt.short(value, fmt)
    return timefmt.compact(value, context.get("lang", "ja"))


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(config().templates_dir)),
        autoescape=select_autoescape(default=True),
        undefined=ChainableUndefined,  # a missing form field renders empty, not a 500
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # compiled once per process: no stat() of the template file per page (restart to edit)
    )
    env.filters["jst"] = _jst
    env.filters["jst_long"] = timefmt.long
    env.globals["ward_contact"] = lambda locale: config().contact(locale)  # the footer of every page
    return env


def request_locale(request: Request) -> str:
    """The identify middleware decides; unmatched routes (404) never reach it, so decide the same way here."""
    locale = getattr(request.state, "locale", None) or request.query_params.get("lang") or request.cookies.get("ld_lang")
    return locale if locale in ("ja", "en") else "ja"


def page(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    title: str = "",
    **context: Any,
) -> Response:
    locale = request_locale(request)
    person = getattr(request.state, "person", None)
    roles = set(person["roles"]) if person else set()
    _ = gettext_for(locale)
    nav = [item for item in NAV if roles & set(item["roles"]) or "*" in item["roles"]]
    html = environment().get_template(template).render(
        request=request,
        _=_,
        lang=locale,
        person=person,
        roles=roles,
        csrf_token=getattr(request.state, "csrf_token", ""),
        nav=nav,
        title=title,
        path=request.url.path,
        **context,
    )
    return Response(content=html, media_type=MediaType.HTML, status_code=status_code)


# Areas contribute blocks to the role home page and the profile page: async (request) -> HTML or "".
HOME_SECTIONS: list[Any] = []
PROFILE_SECTIONS: list[Any] = []


async def sections(request: Request, providers: list[Any]) -> list[Any]:
    from markupsafe import Markup

    blocks = []
    for provider in providers:
        html = await provider(request)
        if html:
            blocks.append(Markup(html))
    return blocks


def render_fragment(request: Request, template: str, **context: Any) -> str:
    """A block of HTML for HOME_SECTIONS / PROFILE_SECTIONS, rendered with the page's context."""
    locale = request_locale(request)
    return environment().get_template(template).render(
        request=request, _=gettext_for(locale), lang=locale, person=getattr(request.state, "person", None),
        csrf_token=getattr(request.state, "csrf_token", ""), **context,
    )


async def form_data(request: Request) -> dict[str, str]:
    """An HTML form as plain strings (the last value wins; lists via form_list)."""
    form = await request.form()
    return {key: str(value).strip() for key, value in form.items() if isinstance(value, str)}


async def form_list(request: Request, name: str) -> list[str]:
    form = await request.form()
    return [str(v) for v in form.getall(name)] if name in form else []


ROLE_LABELS = {
    "student": "学生",
    "host_family": "ホストファミリー",
    "facility_staff": "施設職員",
    "coordinator": "コーディネーター",
    "admin": "管理者",
}


CONFIRM_FIELD = "confirmed"  # a form posted from the confirmation page carries confirmed=1


def confirmed(form: dict[str, str]) -> bool:
    """Whether an irreversible action's form comes from its confirmation step (see `confirm_page`)."""
    return form.get(CONFIRM_FIELD) == "1"


def confirm_page(request: Request, *, title: str, action: str, consequences: list[str], button: str,
                 back: str, fields: dict[str, str] | None = None, recipients: int | None = None,
                 reason_label: str = "", reason: str = "", reason_required: bool = False, error: str = "",
                 danger: bool = True, preview: str = "", status_code: int = 200,
                 irreversible: bool = True) -> Response:
    """The one confirmation step before an irreversible action, without JavaScript: the same form posted
    again with confirmed=1. It says what will happen and how many people get mail; where people are told
    why, it asks for the reason (required when `reason_required`); `preview` shows a text as it will be sent.
    Texts are given translated."""
    return page(request, "pages/confirm.html", status_code=status_code, title=title, heading=title, action=action,
                consequences=consequences, button=button, back=back, fields=fields or {}, recipients=recipients,
                reason_label=reason_label, reason=reason, reason_required=reason_required, error=error,
                danger=danger, preview=preview, confirm_field=CONFIRM_FIELD, irreversible=irreversible)
