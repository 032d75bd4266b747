"""Invites area, HTTP: personal feeds, the public .ics download, the feed block of the profile page,
reminder unsubscribe (one-click, RFC 8058) and the coordinator's "resend the invite" action."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from events.errors import NotFound
from events.invites import feeds, invites, reminders
from lifedesign.i18n import gettext_for
from lifedesign.rendering import PROFILE_SECTIONS, form_data, page, render_fragment
from lifedesign.security import COORDINATOR, LOGGED_IN, actor_of
from lifedesign.settings import get_settings

CALENDAR_TYPE = "text/calendar"  # Litestar adds "; charset=utf-8" to text/* types


@get("/calendar/{filename:str}", include_in_schema=False)
async def calendar_feed(request: Request, filename: FromPath[str]) -> Response:
    """A person's subscribable feed: /calendar/<token>.ics (token = the secret).

    Cache-Control private, no-cache: a calendar client may keep the body and revalidate with its ETag,
    a shared cache may not store it (a logged-in browser still gets no-store from the shell)."""
    if not filename.endswith(".ics"):
        raise NotFound("このカレンダーのURLは使えません。", code="feed_not_found")
    result = await feeds.feed(filename.removesuffix(".ics"), request.headers.get("if-none-match"))
    headers = {"ETag": result.etag, "Cache-Control": "private, no-cache"}
    if result.status == 304:
        return Response(content=b"", status_code=304, headers=headers)
    return Response(content=result.body, status_code=200, media_type=CALENDAR_TYPE, headers=headers)


@get("/events/{event_id:int}/calendar.ics", include_in_schema=False)
async def event_download(request: Request, event_id: FromPath[int]) -> Response:
    """Add a published public event to one's calendar (METHOD:PUBLISH)."""
    body = await feeds.public_download(event_id, request.state.locale)
    return Response(
        content=body, media_type=CALENDAR_TYPE,
        headers={"Content-Disposition": f'attachment; filename="event-{event_id}.ics"'},
    )


@post("/profile/calendar-feed", guards=[LOGGED_IN], include_in_schema=False)
async def feed_issue(request: Request) -> Response:
    """Issue the feed URL, or replace it: the old URL stops working at once."""
    await feeds.issue_token(request.state.person["id"], get_settings().secret_key)
    return Redirect(path="/profile#calendar-feed", status_code=303)


class FeedOut(msgspec.Struct):
    """A personal calendar feed (its URL is the secret): subscribe with `webcal_url`; null when none is issued."""

    feed_url: str | None
    webcal_url: str | None


def _feed_out(token: str | None) -> FeedOut:
    return FeedOut(feed_url=feeds.feed_url(token) if token else None,
                   webcal_url=feeds.webcal_url(token) if token else None)


@get("/api/v1/me/calendar-feed", guards=[LOGGED_IN], tags=["invites"])
async def feed_show_api(request: Request) -> FeedOut:
    """Your calendar feed's URL, as on /profile (null while none is issued)."""
    return _feed_out(await feeds.current_token(request.state.person["id"], get_settings().secret_key))


@post("/api/v1/me/calendar-feed", guards=[LOGGED_IN], tags=["invites"], status_code=HTTP_200_OK)
async def feed_issue_api(request: Request) -> FeedOut:
    """Issue your calendar feed, or rotate it: the old URL stops working at once."""
    return _feed_out(await feeds.issue_token(request.state.person["id"], get_settings().secret_key))


async def profile_feed_section(request: Request) -> str:
    person = request.state.person
    if person is None:
        return ""
    token = await feeds.current_token(person["id"], get_settings().secret_key)
    return render_fragment(
        request, "pages/invites/profile_feed.html",
        feed_url=feeds.feed_url(token) if token else "", webcal_url=feeds.webcal_url(token) if token else "",
    )


@get("/reminders/unsubscribe/{token:str}", include_in_schema=False)
async def unsubscribe_form(request: Request, token: FromPath[str]) -> Response:
    # A GET never changes anything (mail scanners follow links); the page's button POSTs.
    request.state.personal = True
    valid = await reminders.opt_out_token_valid(token)
    return page(request, "pages/invites/unsubscribe.html", status_code=200 if valid else 404,
                title=gettext_for(request.state.locale)("リマインダーメールの停止"), token=token, valid=valid,
                done=False)


@post("/reminders/unsubscribe/{token:str}", include_in_schema=False)
async def unsubscribe(request: Request, token: FromPath[str]) -> Response:
    """RFC 8058 one-click (a mail client POSTs List-Unsubscribe=One-Click) and the page's button alike.
    The token is the authorisation: this path is exempt from the CSRF check (lifedesign.security)."""
    request.state.personal = True
    done = await reminders.unsubscribe(token)
    return page(request, "pages/invites/unsubscribe.html", status_code=200 if done else 404,
                title=gettext_for(request.state.locale)("リマインダーメールの停止"), token=token,
                valid=done is not None, done=done is not None)


@post("/api/v1/registrations/{registration_id:int}/resend-invite", guards=[COORDINATOR], tags=["invites"],
      status_code=HTTP_202_ACCEPTED)
async def resend_invite_api(request: Request, registration_id: FromPath[int]) -> dict[str, object]:
    """Send the person's current calendar invite again (same UID and SEQUENCE)."""
    return await invites.resend_invite(registration_id, actor=actor_of(request))


@post("/coordinator/registrations/{registration_id:int}/resend-invite", guards=[COORDINATOR],
      include_in_schema=False)
async def resend_invite_form(request: Request, registration_id: FromPath[int]) -> Response:
    """The same, from a button on a coordinator page (form with _csrf and an optional local `next`)."""
    form = await form_data(request)
    await invites.resend_invite(registration_id, actor=actor_of(request))
    target = form.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return Redirect(path=target, status_code=303)
    _ = gettext_for(request.state.locale)
    return page(request, "pages/message.html", heading=_("招待状を再送しました"),
                lines=[_("カレンダー招待を送信待ちに登録しました。まもなく送信されます。")], link=None)


ROUTES = [calendar_feed, event_download, feed_issue, feed_show_api, feed_issue_api, unsubscribe_form, unsubscribe,
          resend_invite_api, resend_invite_form]


def register_sections() -> None:
    if profile_feed_section not in PROFILE_SECTIONS:
        PROFILE_SECTIONS.append(profile_feed_section)
