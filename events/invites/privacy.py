"""The invites area's share of personal-data rights (events.privacy) and retention (events.retention).

Disclosure: the person's calendar invites (state and SEQUENCE per event), feed URLs and reminder opt-out
links (dates only: the secrets themselves are never stored). Erasure: the feed URLs and opt-out links go
(a CANCEL for each future place was already sent when the ledger ended it). Retention: an opt-out link goes
with the mail that carried it (`retention_outbox_months`).
"""

from __future__ import annotations

from typing import Any

from events import privacy, retention
from events.invites.tables import CalendarFeedToken, CalendarInvite, ReminderOptOutToken

TABLES = {
    "calendar_invite": "カレンダーの招待",
    "calendar_feed_token": "カレンダー配信用のURL",
    "reminder_opt_out_token": "リマインダーの配信停止リンク",
}


async def export(person_id: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "calendar_invite": await CalendarInvite.select(
            CalendarInvite.id, CalendarInvite.event, CalendarInvite.event.title.as_alias("event_title"),
            CalendarInvite.sequence, CalendarInvite.state, CalendarInvite.created_at, CalendarInvite.updated_at,
        ).where(CalendarInvite.person == person_id).order_by(CalendarInvite.id),
        "calendar_feed_token": await CalendarFeedToken.select(
            CalendarFeedToken.id, CalendarFeedToken.created_at, CalendarFeedToken.revoked_at,
        ).where(CalendarFeedToken.person == person_id).order_by(CalendarFeedToken.id),
        "reminder_opt_out_token": await ReminderOptOutToken.select(
            ReminderOptOutToken.id, ReminderOptOutToken.created_at, ReminderOptOutToken.used_at,
        ).where(ReminderOptOutToken.person == person_id).order_by(ReminderOptOutToken.id),
    }


async def erase(erasure: privacy.Erasure) -> None:
    await CalendarFeedToken.delete().where(CalendarFeedToken.person == erasure.person_id)
    await ReminderOptOutToken.delete().where(ReminderOptOutToken.person == erasure.person_id)



def register() -> None:
    privacy.register_part(privacy.Part("invites", TABLES, export, erase))
    retention.register(retention.table_category(
        "reminder_links", "リマインダーの配信停止リンク", "削除します", retention.outbox_period, table="reminder_opt_out_token",
        condition="created_at < {}", args=lambda cutoff: (cutoff,), from_="メールの送信から"))
