"""The results rule over HTTP: page, event filter, print, series view, API and exports agree, for both kinds."""

from __future__ import annotations

import csv
import io

from events.core.tables import AuditEntry
from events.feedback import results
from tests.conftest import login, make_person
from tests.service.test_feedback_results import SERIES, series_survey


async def _as_coordinator(client) -> int:
    person = await make_person("coordinator", "coord@example.jp")
    await login(client, "coord@example.jp")
    return person


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


async def test_two_events_from_the_report_over_http(client, db):
    survey_id, events = await series_survey({"A": (6, 6), "B": (5, 2)})
    await _as_coordinator(client)
    base = f"/coordinator/feedback/{survey_id}"

    page = (await client.get(f"{base}/results")).text
    assert "回答 8人" in page and "<svg" in page  # the total is shown …
    assert "非表示（ほかの回との差し引きを防ぐため）" in page and "非表示（回答が少ないため）" in page  # … A and B are not
    assert "回答者が特定されないよう、回答が5人未満の回や質問の集計は表示せず、出力もしません。" in page
    assert "<details" in page and "<summary>詳細</summary>" in page
    for name, notice in [("A", "ほかの回の結果と差し引きすると"), ("B", "この回は回答が少ないため")]:
        filtered = await client.get(f"{base}/results?event={events[name]}")
        assert filtered.status_code == 200 and notice in filtered.text
        assert "<svg" not in filtered.text and "の感想" not in filtered.text
        assert "表示していない結果の回答は出力できません。" in filtered.text and "answers.csv" not in filtered.text
        printed = (await client.get(f"{base}/print?event={events[name]}")).text
        assert notice in printed and "の感想" not in printed
        api = (await client.get(f"/api/v1/feedback/surveys/{survey_id}/results?event={events[name]}")).json()
        assert api["suppressed"] is True and api["withheld"] in ("complementary", "small_group")
        assert all(q["suppressed"] and q["counts"] == [] and q["texts"] == [] for q in api["questions"])
        refused = await client.get(f"{base}/answers.csv?event={events[name]}")
        assert refused.status_code == 409 and "の感想" not in refused.text

    api = (await client.get(f"/api/v1/feedback/surveys/{survey_id}/results")).json()
    assert api["suppressed"] is False and api["min_group"] == 5 and api["responded"] == 8
    first = api["questions"][0]
    assert sum(n for _, n in first["counts"]) == first["respondents"] == 8
    series = (await client.get(f"/coordinator/feedback/series?series={SERIES}")).text
    assert "8人" in series and "非表示" not in series
    # The export of the whole survey lists all 8 answers, none of them under its event's name.
    rows = _csv(await client.get(f"{base}/answers.csv"))
    assert len(rows) == 9 and {row[1] for row in rows[1:]} == {results.WITHHELD_EVENT}
    assert not any("講座A" in row[1] or "講座B" in row[1] for row in rows)


async def test_named_survey_over_http_shows_exports_and_audits(client, db):
    survey_id, events = await series_survey({"A": (3, 3), "B": (2, 2)}, anonymous=False)
    coordinator = await _as_coordinator(client)
    base = f"/coordinator/feedback/{survey_id}"
    page = (await client.get(f"{base}/results?event={events['B']}")).text
    assert "区の職員がお名前とともに回答を確認することをお知らせしています" in page
    assert "<svg" in page and "Bの感想0" in page and "Bの感想1" in page and "非表示" not in page
    rows = _csv(await client.get(f"{base}/answers.csv?event={events['B']}"))
    assert rows[0][2] == "氏名" and len(rows) == 3 and sorted(row[-1] for row in rows[1:]) == ["Bの感想0", "Bの感想1"]
    api = (await client.get(f"/api/v1/feedback/surveys/{survey_id}/results?event={events['B']}")).json()
    assert api["suppressed"] is False and api["min_group"] is None
    assert sorted(api["questions"][-1]["texts"]) == ["Bの感想0", "Bの感想1"]
    entries = await AuditEntry.select(AuditEntry.action, AuditEntry.actor).where(
        AuditEntry.subject_type == "survey").order_by(AuditEntry.id)
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("staff_viewed_feedback", coordinator), ("staff_exported_feedback", coordinator),
        ("staff_viewed_feedback", coordinator)]
