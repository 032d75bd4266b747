"""SVG bar charts: well-formed, accessible, proportional, escaped, deterministic."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.svg_charts import bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _bars(root: ET.Element) -> list[tuple[str, float, str, int]]:
    """(visible label, bar width, printed count, data-count) for each bar, top to bottom."""
    bars = []
    for group in root.iter(f"{SVG}g"):
        if group.get("class") != "bar":
            continue
        label = group.find(f"{SVG}text[@class='bar-label']")
        rect = group.find(f"{SVG}rect")
        count = group.find(f"{SVG}text[@class='bar-count']")
        assert label is not None and rect is not None and count is not None
        bars.append(
            (
                label.text or "",
                float(rect.get("width", "nan")),
                count.text or "",
                int(group.get("data-count", "-1")),
            )
        )
    return bars


def test_chart_is_an_accessible_svg_image() -> None:
    root = _parse(bar_chart("満足度", [("満足", 3), ("不満", 1)]))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert title.text == "満足度"
    assert root.get("aria-labelledby") == title.get("id")
    assert root.get("aria-describedby") == desc.get("id")
    assert desc.text == "満足: 3, 不満: 1"
    # The title and desc come first so assistive technology finds them.
    assert [child.tag for child in root][:2] == [f"{SVG}title", f"{SVG}desc"]


def test_every_bar_prints_its_label_and_count() -> None:
    counts = [("とても満足", 12), ("満足", 7), ("ふつう", 0)]
    bars = _bars(_parse(bar_chart("満足度", counts)))
    assert [(label, printed, data) for label, _, printed, data in bars] == [
        ("とても満足", "12", 12),
        ("満足", "7", 7),
        ("ふつう", "0", 0),
    ]


def test_bars_are_proportional_to_counts_and_the_largest_fills_the_area() -> None:
    counts = [("a", 10), ("b", 5), ("c", 1), ("d", 0)]
    root = _parse(bar_chart("t", counts, width=480))
    widths = [width for _, width, _, _ in _bars(root)]
    full = widths[0]
    assert 300 < full < 480
    for (_, count), width in zip(counts, widths, strict=True):
        assert width == pytest.approx(full * count / 10, abs=0.01)


def test_count_text_sits_just_after_its_bar() -> None:
    root = _parse(bar_chart("t", [("a", 4), ("b", 2)]))
    for group in root.iter(f"{SVG}g"):
        rect = group.find(f"{SVG}rect")
        count = group.find(f"{SVG}text[@class='bar-count']")
        assert rect is not None and count is not None
        assert float(count.get("x", "0")) > float(rect.get("x", "0")) + float(rect.get("width", "0"))


def test_labels_and_title_are_escaped() -> None:
    label = "A<b> & \"c\" 'd'"
    svg = bar_chart('<script>alert("x")</script> & 満足', [(label, 2)])
    assert "<script>" not in svg and "<b>" not in svg
    root = _parse(svg)
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == '<script>alert("x")</script> & 満足'
    assert _bars(root)[0][0] == label
    desc = root.find(f"{SVG}desc")
    assert desc is not None and desc.text == f"{label}: 2"


def test_characters_xml_cannot_hold_are_dropped() -> None:
    root = _parse(bar_chart("t\x00", [("ab\x01c\x1f", 1)]))
    assert _bars(root)[0][0] == "abc"


def test_all_zero_data_draws_empty_bars_with_printed_zeros() -> None:
    root = _parse(bar_chart("回答なし", [("はい", 0), ("いいえ", 0)]))
    bars = _bars(root)
    assert [(width, printed) for _, width, printed, _ in bars] == [(0.0, "0"), (0.0, "0")]


def test_no_options_still_gives_a_valid_chart() -> None:
    root = _parse(bar_chart("空", []))
    assert _bars(root) == []
    desc = root.find(f"{SVG}desc")
    assert desc is not None and desc.text == "空"
    assert int(root.get("height", "0")) > 0


def test_long_labels_are_shortened_but_kept_whole_in_desc() -> None:
    label = "とても長い選択肢の説明" * 10
    root = _parse(bar_chart("t", [(label, 1)], width=300))
    visible = _bars(root)[0][0]
    assert visible.endswith("…") and len(visible) < len(label)
    desc = root.find(f"{SVG}desc")
    assert desc is not None and label in (desc.text or "")


def test_output_is_deterministic_and_ids_differ_between_charts() -> None:
    first = bar_chart("満足度", [("満足", 3)])
    assert first == bar_chart("満足度", [("満足", 3)])
    other = bar_chart("満足度", [("満足", 4)])
    first_id = _parse(first).get("aria-labelledby")
    assert first_id != _parse(other).get("aria-labelledby")
    fixed = _parse(bar_chart("t", [("a", 1)], chart_id="q7"))
    assert fixed.get("aria-labelledby") == "q7-title"


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        bar_chart("t", [("a", -1)])
    with pytest.raises(ValueError, match="chart_id"):
        bar_chart("t", [("a", 1)], chart_id='x" onload="alert(1)')
    with pytest.raises(ValueError, match="width"):
        bar_chart("t", [("a", 1)], width=10)


@settings(max_examples=150, deadline=None)
@given(
    st.text(max_size=30),
    st.lists(st.tuples(st.text(max_size=40), st.integers(0, 10_000)), max_size=8),
    st.integers(100, 1200),
)
def test_any_input_gives_well_formed_proportional_svg(
    title: str, counts: list[tuple[str, int]], width: int
) -> None:
    root = _parse(bar_chart(title, counts, width=width))
    bars = _bars(root)
    assert [(printed, data) for _, _, printed, data in bars] == [(str(c), c) for _, c in counts]
    largest = max((c for _, c in counts), default=0)
    for (_, count), (_, bar_width, _, _) in zip(counts, bars, strict=True):
        assert 0 <= bar_width <= width
        if largest:
            full = max(w for _, w, _, _ in bars)
            assert bar_width == pytest.approx(full * count / largest, abs=0.02)
        else:
            assert bar_width == 0
