"""Answering a survey on site: one survey-level link (printed, or as a QR code) instead of the personal ones.

The link is the same for everyone (`links.onsite_token`, per survey), so it must not make an answer anyone's:

- **Named surveys**: the link leads a logged-in participant of one of the survey's begun events to their own
  personal request (made then, without mail, when they were not asked yet); from there it is the personal flow.
- **Anonymous surveys**: opening the link issues a one-time answer *slot*: a random nonce the browser keeps in a
  signed cookie; nothing is stored when it is issued. Sending the answer stores it as every anonymous answer is
  stored (events.feedback.answering: random key, no time, no event of fewer than 5 people asked, the PostgreSQL
  reshuffle in the same transaction) and, beside it, only the digest of the slot's nonce (`OnsiteSlotUsed`: no
  time, no person, no answer key), so a slot answers once. A browser that answered keeps a cookie saying so and
  is given no new slot for that survey. That limit is per browser: the link is open to whoever is in the room,
  so it stops a double answer, not a determined one (someone who also answers by their mail link counts twice).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from events.core.tables import Person
from events.db import for_update, is_sqlite, raw, utcnow, write_transaction
from events.errors import Conflict, Forbidden, NotFound
from events.feedback import links, sending
from events.feedback.answering import (
    SurveyForm,
    _localized_questions,
    _reshuffle,
    _store_anonymous,
    parse_answers,
)
from events.feedback.surveys import get_survey, is_open
from events.feedback.tables import FeedbackRequest, OnsiteSlotUsed

MAX_SLOT_COOKIE = 200


def onsite_path(survey_id: int) -> str:
    return f"/feedback/open/{survey_id}/{links.onsite_token(survey_id)}"


async def survey_of_link(survey_id: int, token: str) -> dict[str, Any]:
    """The survey an on-site link names (NotFound for a wrong or made-up link)."""
    if not token or len(token) > 100 or not links.same(token, links.onsite_token(survey_id)):
        raise NotFound("このアンケートのリンクは見つかりません。", code="feedback_link_unknown")
    return await get_survey(survey_id)


def new_slot(survey_id: int) -> str:
    """An answer slot for one browser: "<nonce>.<signature>", kept in its cookie only."""
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{links.slot_signature(survey_id, nonce)}"


def slot_nonce(survey_id: int, slot: str) -> str | None:
    """The slot's nonce when the cookie is one we issued for this survey, else None."""
    nonce, _, signature = (slot or "")[:MAX_SLOT_COOKIE].partition(".")
    if not nonce or not signature or not links.same(signature, links.slot_signature(survey_id, nonce)):
        return None
    return nonce


async def slot_used(survey_id: int, nonce: str) -> bool:
    return await OnsiteSlotUsed.exists().where(
        (OnsiteSlotUsed.survey == survey_id) & (OnsiteSlotUsed.slot_hash == links.token_hash(f"{survey_id}:{nonce}")))


async def open_form(survey_id: int, *, locale: str = "ja") -> SurveyForm:
    """The answering page of an anonymous survey on site (no request, no stored answers to show)."""
    survey = await get_survey(survey_id)
    english = locale == "en"
    event_title = ""
    if survey["event"] is not None:
        event_title = survey.get("event_title") or ""
    return SurveyForm(
        survey_id=survey["id"], title=survey["title_en"] if english and survey["title_en"] else survey["title"],
        intro=survey["intro_en"] if english and survey["intro_en"] else survey["intro"], anonymous=True,
        open=is_open(survey), closes_at=survey["closes_at"], event_title=event_title, locale=locale,
        questions=_localized_questions(survey["questions"], english),
    )


async def submit_anonymous(survey_id: int, slot: str, form: Mapping[str, Sequence[str]]) -> None:
    """Store an on-site answer of an anonymous survey; the slot is used up in the same transaction."""
    nonce = slot_nonce(survey_id, slot)
    if nonce is None:
        raise NotFound("このページの有効時間が過ぎました。QRコードまたはリンクからもう一度開いてください。",
                       code="feedback_slot_unknown")
    async with write_transaction():
        survey = await get_survey(survey_id)
        if not survey["anonymous"]:
            raise NotFound("このアンケートのリンクは見つかりません。", code="feedback_link_unknown")
        if not is_sqlite():  # one reshuffle at a time per survey (events.feedback.answering)
            await raw(f"SELECT id FROM survey WHERE id = {{}}{for_update()}", survey_id)
        if not is_open(survey):
            raise Conflict("このアンケートの回答受付は終了しました。", code="survey_closed", status=410)
        slot_hash = links.token_hash(f"{survey_id}:{nonce}")
        used = await OnsiteSlotUsed.insert(OnsiteSlotUsed(survey=survey_id, slot_hash=slot_hash)).on_conflict(
            action="DO NOTHING").returning(OnsiteSlotUsed.id)
        if not used:
            raise Conflict("このアンケートには回答済みです。無記名のため、送信した回答は変更できません。",
                           code="feedback_already_answered")
        answers = parse_answers(survey["questions"], form)
        await _store_anonymous(survey_id, survey["event"], answers)
        if not is_sqlite():
            await _reshuffle(survey_id)


async def participant_link(survey_id: int, person_id: int) -> str:
    """Named surveys: the personal link token of a logged-in participant (their request made now, without mail,
    when one of the survey's begun events is theirs); Forbidden for anyone else."""
    now = utcnow()
    async with write_transaction():
        survey = await sending.open_survey(survey_id, now)
        if survey["anonymous"]:
            raise NotFound("このアンケートのリンクは見つかりません。", code="feedback_link_unknown")
        for _attempt in range(2):  # a concurrent request (the worker's mail) may have been made meanwhile
            request = await FeedbackRequest.select(FeedbackRequest.nonce).where(
                (FeedbackRequest.survey == survey_id) & (FeedbackRequest.person == person_id)).first()
            if request is not None:
                return links.link_token(request["nonce"])
            for event in await sending.started_events(survey, now):
                if person_id in await sending.recipients_of(event, survey["audience"]):
                    person = await Person.select(Person.id, Person.email, Person.name, Person.locale).where(
                        Person.id == person_id).first()
                    token = await sending.ask(survey, event, person, now, mail=False)
                    if token is not None:
                        return token
                    break
            else:
                break
    raise Forbidden("このアンケートは、対象のイベントに参加された方が回答できます。", code="survey_not_for_you")


async def onsite_answers(survey_id: int) -> int:
    """How many answers came on site (anonymous surveys)."""
    return await OnsiteSlotUsed.count().where(OnsiteSlotUsed.survey == survey_id)
