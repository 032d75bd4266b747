"""Tables of the 'feedback' area: surveys, their questions, the personal requests, and the answers.

Anonymity is a property of the schema, not of the pages: in an anonymous survey nothing stored joins
an answer to a request, a link token or a person. The answer's key is random (not derived from the
link), it carries no time, and the request records only that it was answered — so neither a copy of
the database nor a log holding the link can tell whose answer is whose (events.feedback.answering).
"""

from __future__ import annotations

from piccolo.columns import JSON, Boolean, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from events.core.tables import Person
from events.seminars.tables import Event

AUDIENCES = ("seminar_student", "home_visit_student", "host_family", "exchange_staff")
QUESTION_KINDS = ("scale", "single", "multi", "text")
SURVEY_STATES = ("draft", "open", "closed")


class Survey(Table, tablename="survey"):
    title = Varchar(length=300)
    title_en = Varchar(length=300, default="")
    intro = Text(default="")
    intro_en = Text(default="")
    audience = Varchar(length=32, index=True)
    anonymous = Boolean(default=True)
    # attached to one event, or to every event of a series (Event.series); exactly one of the two
    event = ForeignKey(Event, null=True, on_delete=OnDelete.set_null, index=True)
    series = Varchar(length=200, default="", index=True)
    status = Varchar(length=16, default="open", index=True)
    closes_at = Timestamptz(null=True, default=None)
    reminder_days = Integer(default=3)
    template = Varchar(length=64, default="")
    created_by = ForeignKey(Person, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()


class SurveyQuestion(Table, tablename="survey_question"):
    survey = ForeignKey(Survey, on_delete=OnDelete.cascade, index=True)
    position = Integer(default=0)
    kind = Varchar(length=16)  # scale | single | multi | text
    text = Varchar(length=500)
    text_en = Varchar(length=500, default="")
    options = JSON(default="[]")  # Japanese labels (scale: the 5 labels of 1..5); answers store these
    options_en = JSON(default="[]")
    required = Boolean(default=False)


class FeedbackRequest(Table, tablename="feedback_request"):
    """One per person and survey: who was asked, by which link, and whether they answered (not when, nor what)."""

    survey = ForeignKey(Survey, on_delete=OnDelete.cascade, index=True)
    event = ForeignKey(Event, null=True, on_delete=OnDelete.set_null, index=True)  # the event that prompted it
    person = ForeignKey(Person, on_delete=OnDelete.cascade, index=True)
    token_hash = Varchar(length=64, unique=True)
    nonce = Varchar(length=64)  # with the server's secret key, regenerates the link for the reminder
    locale = Varchar(length=8, default="ja")
    sent_at = Timestamptz()
    reminded_at = Timestamptz(null=True, default=None)
    answered = Boolean(default=False)


class FeedbackAnswer(Table, tablename="feedback_answer"):
    """One respondent's answers. Anonymous surveys: person, updated_at are NULL and event is kept only
    when that event had enough people asked that it cannot single anyone out."""

    id = Varchar(length=64, primary_key=True)  # random: derived from nothing (not the link, not the request)
    survey = ForeignKey(Survey, on_delete=OnDelete.cascade, index=True)
    event = ForeignKey(Event, null=True, on_delete=OnDelete.set_null)
    person = ForeignKey(Person, null=True, on_delete=OnDelete.cascade)  # named surveys only
    answers = JSON(default="{}")  # {question id: int | str | [str, ...]}
    updated_at = Timestamptz(null=True, default=None)  # named surveys only


class OnsiteSlotUsed(Table, tablename="feedback_onsite_slot"):
    """An on-site answer slot of an anonymous survey that has been used (events.feedback.onsite): only the
    digest of the slot's random nonce, kept so a slot answers once. No time, no person, no answer key."""

    survey = ForeignKey(Survey, on_delete=OnDelete.cascade, index=True)
    slot_hash = Varchar(length=64, unique=True)
