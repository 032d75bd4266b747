"""Mail templates keep their lines: a sentence that ends in an inline {% if %}…{% endif %} is not glued to the
next line (the mail environment trims the newline after a block tag unless the tag says `+%}`)."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest

from events.mail import render

EVENT = {"title": "ライフデザインセミナー", "when": "2027年1月24日(日) 14:00〜16:00", "venue": "金沢公会堂", "access": "",
         "registration_id": 7, "recipient_name": "鈴木 葵", "event_url": "http://127.0.0.1:8000/events/1",
         "cancel_cutoff_hours": 24, "event_id": 1}


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_a_cancellation_keeps_its_sentence_and_the_event_on_separate_lines(locale):
    for by_coordinator in (False, True):
        _, text, _ = render("seminar_cancelled", locale, {**EVENT, "by_coordinator": by_coordinator, "reason": ""})
        lines = text.splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith(("イベント:", "Event:")))
        assert lines[first - 1].strip() and not lines[first - 1].startswith(("イベント", "Event")), text
        assert sum(1 for line in lines if "イベント:" in line or "Event:" in line) == 1
        assert not any(re.search(r"[。.](イベント|Event):", line) for line in lines), text


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_an_accepted_offer_ends_its_paragraph(locale):
    _, text, _ = render("seminar_offer_accepted", locale, {**EVENT, "needs_consent": False, "has_invite": True})
    assert re.search(r"(添付しました。|attached\.)\n\n", text), text


def test_no_template_ends_a_line_with_a_trimmed_inline_block():
    """The rule behind the two tests above, for every mail: an inline `{% endif %}` / `{% endfor %}` at the end of
    a line with text before it must be written `+%}`, or the line break after it disappears."""
    folder = Path(__file__).resolve().parents[2] / "templates" / "mail"
    glued = []
    for path in glob.glob(str(folder / "*" / "*.txt")):
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            tag = re.search(r"\{%-? (endif|endfor) -?%\}$", line)
            if tag and line.strip() != tag.group(0):
                glued.append(f"{Path(path).relative_to(folder)}:{number}")
    assert glued == []
