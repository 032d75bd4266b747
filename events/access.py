"""The access policy: who is asking (`Actor`), who counts as staff, and who may see which event.

One rule set for the JSON API and the HTML pages alike; handlers never decide visibility themselves.

- Staff are coordinators and admins (`STAFF_ROLES`, `is_staff`). Admins may do whatever coordinators may.
- An event in draft is seen by staff only. A public event that is published, cancelled or completed is seen
  by everyone. A private event (a confirmed home visit, an invitation-only session) is seen by staff and by
  its members: people with a registration or an invitation for it, and those another area names as members
  (the host family of a home visit, through `signals.EVENT_MEMBERS`).
- Who may *hold a place* is the place ledger's rule (events.places); who may read a home address or a
  student's contact is events.visits.households' (the one audited door).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from events import signals
from events.errors import Forbidden, NotFound
from events.seminars.tables import EventInvitation, Registration

STAFF_ROLES = frozenset({"coordinator", "admin"})
SYSTEM_ROLE = "system"  # never stored: the CLI and the worker


def is_staff(roles: Iterable[str]) -> bool:
    return bool(STAFF_ROLES & set(roles))


@dataclass(frozen=True)
class Actor:
    """Who does or reads something: a person (with their roles) from a client, or the system itself."""

    person_id: int | None
    roles: frozenset[str] = field(default_factory=frozenset)
    client: str = ""

    @property
    def staff(self) -> bool:
        """Coordinators and admins; also the system itself (the CLI and the worker act for the ward)."""
        return is_staff(self.roles) or SYSTEM_ROLE in self.roles

    @property
    def admin(self) -> bool:
        return "admin" in self.roles or SYSTEM_ROLE in self.roles

    @classmethod
    def of(cls, person: Mapping[str, Any] | None, client: str = "") -> Actor:
        if person is None:
            return cls(None, frozenset(), client[:64])
        return cls(int(person["id"]), frozenset(person.get("roles") or ()), client[:64])

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(None, frozenset({SYSTEM_ROLE}), name[:64])


def require_staff(actor: Actor) -> None:
    if not actor.staff:
        raise Forbidden("この操作を行う権限がありません。", code="forbidden")


def require_admin(actor: Actor) -> None:
    if not actor.admin:
        raise Forbidden("この操作を行う権限がありません。", code="forbidden")


def event_visible(event: Mapping[str, Any], actor: Actor, *, member: bool) -> bool:
    """The visibility rule itself (pure): `member` says whether the actor belongs to the event."""
    if actor.staff:
        return True
    if event["status"] == "draft":
        return False
    if event.get("visibility", "public") == "public":
        return True
    return member


async def is_member(event_id: int, person_id: int | None) -> bool:
    """A registration (in any state), an invitation, or membership named by another area."""
    if person_id is None:
        return False
    if await Registration.exists().where((Registration.event == event_id) & (Registration.person == person_id)):
        return True
    if await EventInvitation.exists().where(
        (EventInvitation.event == event_id) & (EventInvitation.person == person_id)
    ):
        return True
    for members in signals.EVENT_MEMBERS.providers():
        if person_id in await members(event_id):
            return True
    return False


async def require_event_visible(event: Mapping[str, Any], actor: Actor) -> None:
    """NotFound (no hint that it exists) unless the actor may see the event."""
    if event_visible(event, actor, member=False):
        return
    if not event_visible(event, actor, member=await is_member(event["id"], actor.person_id)):
        raise NotFound("そのイベントは見つかりません。", code="event_not_found")
