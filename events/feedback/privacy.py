"""The feedback area's share of personal-data rights (events.privacy) and retention (events.retention).

Disclosure: the surveys a person was asked (not what anonymous answers said: those are not linkable to
anyone, events.feedback.tables) and their answers to named surveys. Erasure and retention never change a
result: a named answer only loses the link to its person (it stays counted, like an anonymous one), a
request keeps its dates (response rates survive) and its link stops working.
"""

from __future__ import annotations

from typing import Any

from events import privacy, retention
from events.db import raw
from events.feedback.tables import FeedbackAnswer, FeedbackRequest, Survey

TABLES = {
    "feedback_request": "アンケートのご依頼",
    "feedback_answer": "記名式アンケートへの回答",
    "survey": "作成したアンケート",
}


async def export(person_id: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "feedback_request": await FeedbackRequest.select(
            FeedbackRequest.id, FeedbackRequest.survey, FeedbackRequest.survey.title.as_alias("survey_title"),
            FeedbackRequest.survey.anonymous.as_alias("anonymous"), FeedbackRequest.event, FeedbackRequest.sent_at,
            FeedbackRequest.reminded_at, FeedbackRequest.answered,
        ).where(FeedbackRequest.person == person_id).order_by(FeedbackRequest.id),
        "feedback_answer": await FeedbackAnswer.select(
            FeedbackAnswer.id, FeedbackAnswer.survey, FeedbackAnswer.survey.title.as_alias("survey_title"),
            FeedbackAnswer.event, FeedbackAnswer.answers, FeedbackAnswer.updated_at,
        ).where(FeedbackAnswer.person == person_id).output(load_json=True),
        "survey": privacy.tagged(await Survey.select(Survey.id, Survey.title, Survey.created_at).where(
            Survey.created_by == person_id), "created_by"),
    }


async def erase(erasure: privacy.Erasure) -> None:
    await FeedbackAnswer.update({FeedbackAnswer.person: None, FeedbackAnswer.updated_at: None}).where(
        FeedbackAnswer.person == erasure.person_id)
    await raw("UPDATE feedback_request SET token_hash = 'erased:' || id, nonce = '', "
              "reminded_at = COALESCE(reminded_at, {}) WHERE person = {}", erasure.now, erasure.person_id)


def _survey_period(cfg) -> retention.Period:
    return retention.Period(cfg.retention_survey_months, "months")



_CLOSED_BEFORE = "(SELECT id FROM survey WHERE status = 'closed' AND COALESCE(closes_at, created_at) < {})"


def register() -> None:
    privacy.register_part(privacy.Part("feedback", TABLES, export, erase))
    retention.register(retention.table_category(
        "survey_links", "アンケートの回答用リンク", "リンクを無効化", retention.token_period, table="feedback_request",
        condition=f"token_hash NOT LIKE 'purged:%' AND token_hash NOT LIKE 'erased:%' AND survey IN {_CLOSED_BEFORE}",
        args=lambda cutoff: (cutoff,), set_sql="token_hash = 'purged:' || id, nonce = ''",
        from_="アンケートの締め切りから"))
    retention.register(retention.table_category(
        "survey_answers", "記名式アンケートの回答と回答者の結び付き",
        "回答者との結び付きを消去（回答は集計に残ります）", _survey_period, table="feedback_answer",
        condition=f"person IS NOT NULL AND person NOT IN {retention.HELD} AND survey IN {_CLOSED_BEFORE}",
        args=lambda cutoff: (cutoff,), set_sql="person = NULL, updated_at = NULL", start="",
        from_="アンケートの締め切りから"))
