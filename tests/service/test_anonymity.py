"""The attack on anonymous surveys, run for real: with a copy of the database and the app's logs, try to link
every anonymous answer to a person. None links. Negative control, in the test: the old scheme (answer key
HMAC(link token, survey), the answer written in its request's transaction, in arrival order) links them all.

What the attacker holds:
- the logs: an access log of every request with its full path and query (no redaction at all: the worst case),
  and every record any Python logger wrote while the people answered;
- a copy of the database: every row of every table (SQLite: a backup of the file, rowid included;
  PostgreSQL: every row with its system columns xmin and ctid, more than a dump would give).
Each answer carries a free text only its author wrote, so the test knows whose it is; the attacker does not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from events.db import for_update, is_sqlite, raw, write_transaction
from events.errors import Conflict
from events.feedback import answering, links, sending, surveys
from events.feedback.tables import FeedbackRequest
from events.tokens import digest
from tests.conftest import csrf_from, make_person
from tests.service.test_feedback_service import make_event, register, tokens_by_recipient

PEOPLE = 8  # a random order equals arrival order with probability 1/8! (1 in 40,320)
TOKEN_IN_PATH = re.compile(r"/feedback/([A-Za-z0-9_-]{20,})")


class AccessLog:
    """ASGI wrapper writing one line per request, as a web server's access log does: time, client, method, full
    path with query, status. Nothing redacted."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lines: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = [0]

        async def sending_(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        await self.app(scope, receive, sending_)
        query = scope.get("query_string", b"").decode()
        client = scope.get("client") or ("-", 0)
        self.lines.append(f'{time.time():.6f} {client[0]} "{scope["method"]} {scope["path"]}'
                          f'{"?" + query if query else ""} HTTP/1.1" {status[0]}')


class Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()} {record.args!r}")


# ---------------------------------------------------------------- people answer, through the pages


def _form(html: str, text: str) -> dict[str, Any]:
    data: dict[str, Any] = {"_csrf": csrf_from(html)}
    for name in dict.fromkeys(re.findall(r'<input type="radio" name="(q\d+)"', html)):
        data[name] = "2"
    for name in dict.fromkeys(re.findall(r'<input type="checkbox" name="(q\d+)"', html)):
        data[name] = ["0"]
    for name in re.findall(r'<textarea id="[^"]+" name="(q\d+)"', html):
        data[name] = text
    return data


async def _people_answer(shared_app, series: str) -> tuple[int, dict[str, str], AccessLog, Everything]:
    """PEOPLE students at one event answer an anonymous survey, each by the link in their mail; returns the
    survey, whose text is whose (the truth), and the logs."""
    from litestar.testing import AsyncTestClient

    event = await make_event(series=series)
    for i in range(PEOPLE):
        await register(event, await make_person("student", f"{series}-{i}@example.jp", name=f"学生 {series}{i}"),
                       "confirmed")
    survey_id = await surveys.create_survey(audience="seminar_student", template="seminar_student", series=series,
                                            anonymous=True)
    await sending.send_feedback_requests()
    tokens = {address: token for address, token in (await tokens_by_recipient()).items() if address.startswith(series)}
    access, everything = AccessLog(shared_app), Everything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(everything)
    root.setLevel(logging.DEBUG)
    truth = {}
    try:
        for address in sorted(tokens):  # one after the other: the log holds the order of answering
            async with AsyncTestClient(app=access, base_url="http://127.0.0.1:8000") as browser:
                page = await browser.get(f"/feedback/{tokens[address]}")
                text = f"自由記述 {address}"
                sent = await browser.post("/feedback", data=_form(page.text, text))
                assert sent.status_code == 200, sent.text
                truth[text] = address
    finally:
        root.removeHandler(everything)
        root.setLevel(old_level)
    return survey_id, truth, access, everything


# ---------------------------------------------------------------- the copy of the database


async def _database_copy(tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    tables = ["feedback_answer", "feedback_request", "person", "outbox_message", "audit_entry"]
    if is_sqlite():
        from lifedesign.settings import get_settings

        source = sqlite3.connect(get_settings().database_url.split("sqlite:///", 1)[1])
        copy = sqlite3.connect(tmp_path / "copy.sqlite3")
        source.backup(copy)
        source.close()
        copy.row_factory = sqlite3.Row
        dump = {t: [dict(r) for r in copy.execute(f"SELECT rowid AS _rowid, * FROM {t}")] for t in tables}
        copy.close()
        return dump
    return {t: await raw(f"SELECT xmin::text AS _xmin, ctid::text AS _ctid, * FROM {t}") for t in tables}


# ---------------------------------------------------------------- the attacker


def _as_text(value: Any) -> str:
    return bytes(value).decode("utf-8", "replace") if isinstance(value, (bytes, bytearray, memoryview)) else str(value)


def _answer_text(answer: dict[str, Any]) -> str:
    values = json.loads(answer["answers"]) if isinstance(answer["answers"], str) else answer["answers"]
    return next(v for v in values.values() if isinstance(v, str) and v.startswith("自由記述"))


def _ctid(value: str) -> tuple[int, int]:
    page, item = value.strip("()").split(",")
    return int(page), int(item)


def attack(dump: dict[str, list[dict[str, Any]]], log_lines: list[str], survey_id: int) -> dict[str, dict[str, str]]:
    """Every way we know to pin an answer on a person; returns, per method, answer text → the address it names."""
    people = {p["id"]: p["email"] for p in dump["person"]}
    requests = [r for r in dump["feedback_request"] if r["survey"] == survey_id]
    by_hash = {r["token_hash"]: r for r in requests}
    answers = [a for a in dump["feedback_answer"] if a["survey"] == survey_id]
    # Tokens: from the logs, and from any mail left in the database.
    found = set()
    for line in log_lines + [_as_text(m["message"]) for m in dump["outbox_message"]]:
        found |= set(TOKEN_IN_PATH.findall(line))
    owner = {t: people[by_hash[digest(t)]["person"]] for t in found if digest(t) in by_hash}
    linked: dict[str, dict[str, str]] = {m: {} for m in ("derived key", "shared value", "same xmin", "order")}

    # 1. A key derived from the link: the old HMAC(token, survey), plain hashes.
    for token, address in owner.items():
        derived = {token, digest(token), hashlib.sha256(f"{token}{survey_id}".encode()).hexdigest(),
                   hmac.new(token.encode(), f"feedback-answer:{survey_id}".encode(), hashlib.sha256).hexdigest()}
        for answer in answers:
            if {str(v) for k, v in answer.items() if k != "answers"} & derived:
                linked["derived key"][_answer_text(answer)] = address
    # 2. A value the answer shares with a request or a person (ids, times, hashes …; not survey, event, xmin).
    for answer in answers:
        if answer["person"] is not None:
            linked["shared value"][_answer_text(answer)] = people[answer["person"]]
            continue
        mine = {str(v) for k, v in answer.items() if k not in ("survey", "event", "answers", "_xmin", "_ctid",
                                                                "_rowid") and v not in (None, "")}
        for request in requests:
            theirs = {str(v) for k, v in request.items() if k not in ("survey", "event", "_xmin", "_ctid", "_rowid")}
            if mine & theirs:
                linked["shared value"][_answer_text(answer)] = people[request["person"]]
    # 3. PostgreSQL: the id of the writing transaction, when one answer and one request share it.
    if answers and "_xmin" in answers[0]:
        for answer in answers:
            same = [r for r in requests if r["_xmin"] == answer["_xmin"]]
            same_answers = [a for a in answers if a["_xmin"] == answer["_xmin"]]
            if len(same) == 1 and len(same_answers) == 1:
                linked["same xmin"][_answer_text(answer)] = people[same[0]["person"]]
    # 4. Order: the log says who answered when (each link opened, then one POST); storage may keep arrival order.
    arrival, last_token = [], None
    for line in log_lines:
        tokens = TOKEN_IN_PATH.findall(line)
        if tokens:
            last_token = tokens[0]
        elif '"POST /feedback' in line and line.endswith(" 200") and last_token in owner:
            arrival.append(owner[last_token])
            last_token = None
    if "_rowid" in (answers[0] if answers else {}):
        stored = sorted(answers, key=lambda a: a["_rowid"])
    else:
        stored = sorted(answers, key=lambda a: (int(a["_xmin"]), _ctid(a["_ctid"])))
    if len(arrival) == len(stored):
        linked["order"] = {_answer_text(a): address for a, address in zip(stored, arrival, strict=True)}
    return linked


def correct(linked: dict[str, dict[str, str]], truth: dict[str, str]) -> dict[str, int]:
    return {method: sum(1 for text, address in guesses.items() if truth.get(text) == address)
            for method, guesses in linked.items()}


# ---------------------------------------------------------------- the old scheme, for the negative control


def _old_submit(original: Callable) -> Callable:
    """submit_answers as it was: key = HMAC(link token, survey), the answer and its request in one transaction,
    rows in arrival order (no reshuffle)."""

    async def submit(token: str, form) -> bool:
        async with write_transaction():
            request = await answering._request_by_token(token)
            await raw(f"SELECT id FROM feedback_request WHERE id = {{}}{for_update()}", request["id"])
            survey = await surveys.get_survey(request["survey"])
            answers = answering.parse_answers(survey["questions"], form)
            key = hmac.new(token.encode(), f"feedback-answer:{survey['id']}".encode(), hashlib.sha256).hexdigest()
            await raw("INSERT INTO feedback_answer (id, survey, event, person, answers, updated_at) "
                      "VALUES ({}, {}, {}, NULL, {}, NULL)", key, survey["id"], request["event"],
                      json.dumps(answers, ensure_ascii=False))
            await FeedbackRequest.update({FeedbackRequest.answered: True}).where(FeedbackRequest.id == request["id"])
        return True

    return submit


# ---------------------------------------------------------------- the tests


async def test_no_anonymous_answer_links_to_a_person_from_a_database_copy_and_the_logs(db, shared_app, tmp_path,
                                                                                        monkeypatch):
    links.configure_secret("anonymity-test-secret-" + "s" * 40)
    before = {r["id"]: r for r in await raw("SELECT * FROM feedback_request")}
    survey_id, truth, access, everything = await _people_answer(shared_app, "anon")
    logs = access.lines + everything.lines
    # The logs did see the links (the attacker has the tokens: nothing is hidden from the attack)…
    assert sum(bool(TOKEN_IN_PATH.search(line)) for line in access.lines) == PEOPLE
    # … and only the first request of each browser: the page itself is token-free.
    assert all(TOKEN_IN_PATH.search(line) is None for line in access.lines if '"POST' in line)
    dump = await _database_copy(tmp_path)
    # The request only learns "answered": compared with before, no other column of any request changed.
    for row in await raw("SELECT * FROM feedback_request WHERE survey = {}", survey_id):
        old = before.get(row["id"])
        assert old is None or {k for k in row if row[k] != old[k]} <= {"answered"}
    assert all(r["answered"] for r in await raw("SELECT answered FROM feedback_request WHERE survey = {}", survey_id))

    found = correct(attack(dump, logs, survey_id), truth)
    assert found["derived key"] == found["shared value"] == found["same xmin"] == 0, found
    assert found["order"] < PEOPLE, found  # a random order: right only by chance, never the arrival order

    # Negative control: the same people, the same logs and the same attack against the old scheme link everyone.
    monkeypatch.setattr(answering, "submit_answers", _old_submit(answering.submit_answers))
    old_survey, old_truth, old_access, old_everything = await _people_answer(shared_app, "old")
    (tmp_path / "old").mkdir()
    old_dump = await _database_copy(tmp_path / "old")
    old_found = attack(old_dump, old_access.lines + old_everything.lines, old_survey)
    assert correct(old_found, old_truth)["derived key"] == PEOPLE
    if not is_sqlite():
        assert correct(old_found, old_truth)["same xmin"] == PEOPLE
        assert correct(old_found, old_truth)["order"] == PEOPLE


async def test_an_anonymous_answer_cannot_be_read_back_or_replaced_by_its_link(db, shared_app):
    """What the link still does (it finds its request): it cannot fetch or overwrite the answer — an attacker
    holding a logged link learns nothing of what was answered."""
    links.configure_secret("anonymity-test-secret-" + "s" * 40)
    survey_id, truth, access, _ = await _people_answer(shared_app, "back")
    token = TOKEN_IN_PATH.search(access.lines[0]).group(1)
    form = await answering.open_form(token)
    assert form.answered and form.answers == {}
    with pytest.raises(Conflict) as refused:
        await answering.submit_answers(token, {f"q{q['id']}": ["0"] for q in form.questions})
    assert refused.value.code == "feedback_already_answered"
    texts = [_answer_text(a) for a in await raw("SELECT answers FROM feedback_answer WHERE survey = {}", survey_id)]
    assert sorted(texts) == sorted(truth)
