"""Pages every visitor uses: home, sign-up, magic-link login, logout, profile, language switch."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from events import auth, people
from events.config import config
from events.errors import DomainError
from lifedesign.i18n import gettext_for
from lifedesign.rendering import (
    HOME_SECTIONS,
    PROFILE_SECTIONS,
    ROLE_LABELS,
    form_data,
    page,
    sections,
)
from lifedesign.security import LANG_COOKIE, LOGGED_IN, client_of, cookie_options, session_cookie_name


@get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    blocks = await sections(request, HOME_SECTIONS) if request.state.person else []
    return page(request, "pages/home.html", sections=blocks)


@get("/login", include_in_schema=False)
async def login_form(request: Request, next: FromQuery[str] = "/") -> Response:
    return page(request, "pages/login.html", title="ログイン", next_path=next, email="", error="")


@post("/login", include_in_schema=False)
async def login_request(request: Request) -> Response:
    form = await form_data(request)
    _ = gettext_for(request.state.locale)
    try:
        email = await auth.accept_login_request(form.get("email", ""), client=client_of(request))
    except DomainError as exc:
        if exc.status == 429:
            raise
        return page(request, "pages/login.html", status_code=exc.status, next_path=form.get("next", "/"),
                    email=form.get("email", ""), error=_(exc.message))
    response = page(
        request, "pages/message.html", heading=_("メールを確認してください"),
        lines=[_("登録されているメールアドレスであれば、ログイン用のリンクをお送りしました。"),
               _("リンクは10分間、1回だけ有効です。届かない場合は迷惑メールフォルダもご確認ください。")],
        link=None,
    )
    # The lookup and the mail after the answer: known and unknown addresses are answered alike, and as fast.
    response.background = BackgroundTask(auth.send_login_link, email, form.get("next", "/"))
    return response


@get("/login/{token:str}", include_in_schema=False)
async def login_link(request: Request, token: FromPath[str]) -> Response:
    # A GET never logs in: mail scanners that follow links must not use up the token.
    request.state.personal = True
    valid = await auth.login_link_valid(token)
    return page(request, "pages/login_confirm.html", status_code=200 if valid else 400, token=token, valid=valid)


@post("/login/{token:str}", include_in_schema=False)
async def login_confirm(request: Request, token: FromPath[str]) -> Response:
    session = await auth.consume_login(token, client=client_of(request))  # a bad link leaves the session alone
    if request.state.session_raw:  # a new session id at every login: no fixation
        await auth.end_session(request.state.session_raw)
    response = Redirect(path=session.next_path, status_code=303)
    response.set_cookie(session_cookie_name(), session.session_id, **cookie_options())
    return response


@post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    if request.state.session_raw:
        await auth.end_session(request.state.session_raw)
    response = Redirect(path="/", status_code=303)
    response.delete_cookie(session_cookie_name(), path="/")
    return response


@get("/signup", include_in_schema=False)
async def signup_form(request: Request) -> Response:
    return page(request, "pages/signup.html", title="新規登録", form={}, error="",
                facilities=await people.list_facilities())


@post("/signup", include_in_schema=False)
async def signup(request: Request) -> Response:
    form = await form_data(request)
    _ = gettext_for(request.state.locale)
    role = form.get("role", "")
    try:
        student = people.student_info_from(form) if role == "student" else None
        facility = int(form["facility"]) if role == "facility_staff" and form.get("facility", "").isdigit() else None
        await people.sign_up(
            form.get("email", ""), form.get("name", ""), role=role, kana=form.get("kana", ""),
            locale=request.state.locale, student=student, facility_id=facility,
        )
        await auth.request_login(form.get("email", ""), client=client_of(request))
    except DomainError as exc:
        if exc.code == "email_taken":  # say nothing about who is registered: behave as a login request
            await auth.request_login(form.get("email", ""), client=client_of(request))
        else:
            return page(request, "pages/signup.html", status_code=exc.status, form=form, error=_(exc.message),
                        facilities=await people.list_facilities())
    return page(
        request, "pages/message.html", heading=_("登録を受け付けました"),
        lines=[_("ログイン用のリンクをメールでお送りしました。メールのリンクからログインしてください。")], link=None,
    )


async def _profile_page(request: Request, *, notice: str = "", new_token: str = "") -> Response:
    person = request.state.person
    return page(
        request, "pages/profile.html", title="プロフィール", notice=notice, new_token=new_token,
        tokens=await auth.list_api_tokens(person["id"]), role_labels=ROLE_LABELS,
        sections=await sections(request, PROFILE_SECTIONS),
    )


@get("/profile", guards=[LOGGED_IN], include_in_schema=False)
async def profile(request: Request) -> Response:
    return await _profile_page(request)


@post("/profile", guards=[LOGGED_IN], include_in_schema=False)
async def profile_save(request: Request) -> Response:
    form = await form_data(request)
    person_id = request.state.person["id"]
    await people.update_profile(person_id, name=form.get("name", ""), kana=form.get("kana", ""),
                                reminders=form.get("reminders") == "1")
    locale = form.get("locale", request.state.locale)
    await people.set_locale(person_id, locale)
    request.state.person = await people.get_person(person_id)
    request.state.locale = locale
    return await _profile_page(request, notice=gettext_for(locale)("保存しました。"))


@post("/profile/tokens", guards=[LOGGED_IN], include_in_schema=False)
async def token_create(request: Request) -> Response:
    form = await form_data(request)
    raw = await auth.create_api_token(request.state.person["id"], form.get("label", ""))
    return await _profile_page(request, new_token=raw)


@post("/profile/tokens/{token_id:int}/revoke", guards=[LOGGED_IN], include_in_schema=False)
async def token_revoke(request: Request, token_id: FromPath[int]) -> Response:
    await auth.revoke_api_token(request.state.person["id"], token_id)
    return Redirect(path="/profile", status_code=303)


@post("/lang", include_in_schema=False)
async def switch_language(request: Request) -> Response:
    form = await form_data(request)
    locale = form.get("lang", "ja") if form.get("lang") in ("ja", "en") else "ja"
    if request.state.person:
        await people.set_locale(request.state.person["id"], locale)
    target = form.get("next", "/")
    response = Redirect(path=target if target.startswith("/") and not target.startswith("//") else "/", status_code=303)
    response.set_cookie(LANG_COOKIE, locale, max_age=365 * 24 * 3600, **{**cookie_options(), "httponly": False})
    return response


static_files = create_static_files_router(
    path="/static", directories=[config().templates_dir / "static"], include_in_schema=False, send_as_attachment=False
)

ROUTES = [home, login_form, login_request, login_link, login_confirm, logout, signup_form, signup, profile,
          profile_save, token_create, token_revoke, switch_language, static_files]
