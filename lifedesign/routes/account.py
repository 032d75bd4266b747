"""Pages every visitor uses: home, sign-up, magic-link login, logout, profile, language switch."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from events import auth, people
from events.config import config
from events.db import utcnow
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


SIGNUP_ROLES = (("student", "高校生・大学生"), ("host_family", "ホストファミリー（子育て家庭）"),
                ("facility_staff", "保育・教育施設の職員"))
# The order of the form: the first field with a problem gets the focus.
SIGNUP_FIELDS = ("role", "name", "kana", "email", "phone", "school_level", "school_name", "grade", "birth_date",
                 "guardian_name", "guardian_email", "guardian_phone", "facility")


async def _signup_page(request: Request, form: dict[str, str], *, errors: dict[str, str] | None = None,
                       status_code: int = 200) -> Response:
    role = form.get("role", "")
    step = "form" if role in dict(SIGNUP_ROLES) else "role"
    return page(request, "pages/signup.html", status_code=status_code, title="新規登録", form=form, step=step,
                signup_roles=SIGNUP_ROLES, errors=errors or {}, first_error=next(iter(errors or {}), ""),
                facilities=await people.list_facilities() if role == "facility_staff" else [])


@get("/signup", include_in_schema=False)
async def signup_form(request: Request, role: FromQuery[str] = "") -> Response:
    """Step 1 chooses how one takes part; step 2 (`?role=…`) asks only what that role needs."""
    return await _signup_page(request, {"role": role})


@post("/signup", include_in_schema=False)
async def signup(request: Request) -> Response:
    """Every problem at once (422, each field marked, the first focused); a known address is answered as a login."""
    form = await form_data(request)
    _ = gettext_for(request.state.locale)
    role = form.get("role", "")
    found = people.sign_up_problems(form, utcnow().date())  # a staff role is refused here (403)
    status = 422
    if not found:
        try:
            student = people.student_info_from(form) if role == "student" else None
            facility = int(form["facility"]) if role == "facility_staff" else None
            await people.sign_up(
                form.get("email", ""), form.get("name", ""), role=role, kana=form.get("kana", ""),
                phone=form.get("phone", ""), locale=request.state.locale, student=student, facility_id=facility,
            )
            await auth.request_login(form.get("email", ""), client=client_of(request))
        except DomainError as exc:
            if exc.code == "email_taken":  # say nothing about who is registered: behave as a login request
                await auth.request_login(form.get("email", ""), client=client_of(request))
            else:
                found, status = [exc], exc.status
    if found:
        problems = {p.extra.get("field") or "role": _(p.message) for p in found}
        ordered = {f: problems[f] for f in SIGNUP_FIELDS if f in problems}
        return await _signup_page(request, form, errors=ordered or problems, status_code=status)
    return page(
        request, "pages/message.html", heading=_("登録を受け付けました"),
        lines=[_("ログイン用のリンクをメールでお送りしました。メールのリンクからログインしてください。")], link=None,
    )


async def _profile_page(request: Request, *, notice: str = "", new_token: str = "", error: str = "",
                        error_field: str = "", form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    person = request.state.person
    return page(
        request, "pages/profile.html", status_code=status_code, title="プロフィール", notice=notice,
        new_token=new_token, tokens=await auth.list_api_tokens(person["id"]), role_labels=ROLE_LABELS,
        sections=await sections(request, PROFILE_SECTIONS), student=await people.student_profile(person["id"]),
        error=error, error_field=error_field, form=form or {},
    )


@get("/profile", guards=[LOGGED_IN], include_in_schema=False)
async def profile(request: Request) -> Response:
    return await _profile_page(request)


@post("/profile", guards=[LOGGED_IN], include_in_schema=False)
async def profile_save(request: Request) -> Response:
    form = await form_data(request)
    person_id = request.state.person["id"]
    try:
        await people.update_profile(person_id, name=form.get("name", ""), kana=form.get("kana", ""),
                                    reminders=form.get("reminders") == "1", phone=form.get("phone"),
                                    guardian_phone=form.get("guardian_phone"))
    except DomainError as exc:
        if exc.status != 422:
            raise
        return await _profile_page(request, error=gettext_for(request.state.locale)(exc.message),
                                   error_field=exc.extra.get("field", ""), form=form, status_code=422)
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
