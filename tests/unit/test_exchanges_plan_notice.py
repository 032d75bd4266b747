"""What the coordinator is told after planning the tables: no repeats; repeats because the bound itself is the
limit (no plan could do better); or repeats below the bound, said honestly as "not found, not shown impossible"."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from events.exchanges.sessions import PlanSummary
from lifedesign.areas.exchanges.pages import _plan_notice

PLANNED = PlanSummary(session_id=1, plan_version=1, seed=0, people=58, tables=10, rounds=7, fixed_rounds=0, bound=7,
                      clash_free_rounds=7, repeat_pairs=0, same_facility_pairs=0, prior_pairs=0, method="", seconds=0.1)


def _told(summary: PlanSummary, locale: str = "ja") -> str:
    return _plan_notice(SimpleNamespace(state=SimpleNamespace(locale=locale)), summary)  # type: ignore[arg-type]


def test_no_repeats_says_so():
    assert "同じ方と2度同じテーブルになることはありません" in _told(PLANNED)


def test_repeats_past_the_bound_are_said_to_be_unavoidable():
    told = _told(replace(PLANNED, rounds=9, clash_free_rounds=7, repeat_pairs=30))
    assert "初対面どうしで組めるのは7ラウンドまでです" in told and "30組" in told
    assert "見つかりませんでした" not in told  # control: nothing was left unfound


@pytest.mark.parametrize("locale, words", [("ja", ("6ラウンド目まで", "9組", "7ラウンドまで", "見つかりませんでした",
                                                  "できないと確かめられたわけでもありません")),
                                           ("en", ("up to round 6", "9 pair(s)", "up to 7 rounds", "no such seating"))])
def test_repeats_below_the_bound_are_not_called_unavoidable(locale, words):
    told = _told(replace(PLANNED, clash_free_rounds=6, repeat_pairs=9), locale)
    assert all(word in told for word in words), told
    assert "組めるのは" not in told and "at most" not in told  # control: the bound is not claimed as the limit
