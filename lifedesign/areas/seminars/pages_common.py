"""Labels and small helpers shared by the seminar pages (public and coordinator)."""

from __future__ import annotations

from datetime import UTC
from typing import Any
from urllib.parse import quote, urlencode

from events import timefmt
from events.config import config
from events.seminars.allocation import RULE_LABELS, WARD_TIE_LABELS, priority_label

STATUS_LABELS = {
    "confirmed": "参加確定",
    "waitlisted": "キャンセル待ち",
    "pending_consent": "保護者の同意待ち",
    "applied": "抽選申込済み",
    "offered": "繰り上げのご案内中",
    "cancelled": "取消済み",
    "attended": "出席",
    "no_show": "欠席",
}
EVENT_STATUS_LABELS = {"draft": "下書き", "published": "公開中", "cancelled": "中止", "completed": "終了"}
AUDIENCE_LABELS = {
    "high_school": "高校生",
    "university": "大学生",
    "students": "高校生・大学生",
    "facility_staff": "保育・教育施設の職員",
    "anyone": "どなたでも",
}
KIND_LABELS = {"seminar": "セミナー", "home_visit": "家庭訪問", "staff_exchange": "職員交流会"}
ALLOCATION_LABELS = {"first_come": "先着順", "lottery": "抽選"}
QUESTION_KIND_LABELS = {"text": "記述", "single": "単一選択", "multi": "複数選択", "checkbox": "チェックボックス"}

# The page's words for each refusal of register(): what happened and what the person can do next.
REFUSALS = {
    "already_registered": "このイベントには既にお申し込みいただいています。お申し込みの状況は「申し込み状況」のページでご確認いただけます。",
    "registration_not_open": "申込受付はまだ始まっていません。受付開始の日時以降にお申し込みください。",
    "registration_closed": "申込受付は締め切りました。",
    "event_started": "開始時刻を過ぎたため、お申し込みを受け付けていません。",
    "event_closed": "このイベントは終了しました。",
    "event_cancelled": "このイベントは中止になりました。",
    "event_not_published": "このイベントはまだ公開されていません。",
    "event_not_found": "そのイベントは見つかりません。",
    "account_disabled": "このアカウントは現在ご利用いただけません。こども家庭支援課までお問い合わせください。",
    "guardian_missing": "18歳未満の方は、保護者の方のメールアドレスのご登録が必要です。お手数ですが、こども家庭支援課までご連絡ください。",
    "capacity_exceeded": "満席のため席を確保できませんでした。恐れ入りますが、もう一度お試しください。",
    "busy": "混み合っています。少し待ってからもう一度お試しください。",
    "invalid_answers": "回答の形式が正しくありません。もう一度入力してください。",
    "unknown_question": "質問の内容が変わった可能性があります。ページを再読み込みしてから、もう一度入力してください。",
}

LABELS = {
    "status_labels": STATUS_LABELS, "event_status_labels": EVENT_STATUS_LABELS, "audience_labels": AUDIENCE_LABELS,
    "kind_labels": KIND_LABELS, "allocation_labels": ALLOCATION_LABELS, "question_kind_labels": QUESTION_KIND_LABELS,
    "rule_labels": RULE_LABELS, "ward_tie_labels": WARD_TIE_LABELS, "priority_label": priority_label,
    "google_calendar_url": lambda event: google_calendar_url(event),
}


def localized(event: dict[str, Any], locale: str) -> dict[str, Any]:
    """The event with display_* fields in the reader's language (Japanese when no English was written)."""
    english = locale == "en"
    return {
        **event,
        "display_title": (event.get("title_en") if english else "") or event["title"],
        "display_venue": (event.get("venue_en") if english else "") or event.get("venue") or "",
        "display_description": (event.get("description_en") if english else "") or event.get("description") or "",
        "display_access": (event.get("access_en") if english else "") or event.get("access") or "",
        "when": timefmt.event_when(event, locale),
    }


def google_calendar_url(event: dict[str, Any]) -> str:
    """「Googleカレンダーに追加」: Google's documented template link (the .ics file serves every other calendar)."""
    stamp = "%Y%m%dT%H%M%SZ"
    dates = f"{event['starts_at'].astimezone(UTC).strftime(stamp)}/{event['ends_at'].astimezone(UTC).strftime(stamp)}"
    query = urlencode({"action": "TEMPLATE", "text": event["display_title"], "dates": dates,
                       "location": event.get("display_venue") or "", "ctz": "Asia/Tokyo",
                       "details": f"{config().base_url}/events/{event['id']}"})
    return f"https://calendar.google.com/calendar/render?{query}"


def safe_next(value: str, fallback: str) -> str:
    """Only a path on this site (no scheme, no //host) may be a redirect target."""
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else fallback


def attachment(ascii_name: str, display_name: str) -> str:
    """Content-Disposition with an ASCII fallback and the Japanese name per RFC 6266 / 5987."""
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(display_name, safe='')}"
