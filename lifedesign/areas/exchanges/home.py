"""A block on a staff member's home page: their exchange sessions, with a link to their table."""

from __future__ import annotations

from litestar import Request

from events.exchanges import sessions
from lifedesign.rendering import render_fragment


async def staff_home_section(request: Request) -> str:
    person = request.state.person
    if person is None or "facility_staff" not in person["roles"]:
        return ""
    mine = await sessions.sessions_of(person["id"])
    return render_fragment(request, "pages/exchanges/home_section.html", sessions=mine) if mine else ""
