"""Server-rendered, accessible SVG bar charts for survey summaries.

One horizontal bar per option, the label above it and the count printed beside it, so no meaning is
carried by colour or length alone. ``<title>`` and ``<desc>`` (the full data as text) are referenced by
``aria-labelledby``/``aria-describedby``. Output is deterministic: same input, same bytes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from xml.sax.saxutils import escape

FONT_SIZE = 14
LABEL_LINE = 18  # height of the label line above each bar
BAR_HEIGHT = 16
ROW_GAP = 10
PADDING = 4
COUNT_GAP = 6  # space between a bar's end and its printed count
BAR_FILL = "#1f5fa8"  # 6.7:1 against white, above the 3:1 needed for graphics
TEXT_FILL = "#1a1a1a"
FONT_FAMILY = "system-ui, 'Hiragino Sans', 'Noto Sans JP', 'Yu Gothic', sans-serif"
ELLIPSIS = "…"

_CHART_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# Characters XML 1.0 cannot carry at all; user-typed labels may contain them.
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def bar_chart(
    title: str,
    counts: Sequence[tuple[str, int]],
    *,
    width: int = 480,
    description: str | None = None,
    chart_id: str | None = None,
) -> str:
    """An ``<svg role="img">`` horizontal bar chart of ``counts`` (label, count), scaled to the largest count.

    ``description`` overrides the generated ``<desc>`` ("label: count" for every bar). ``chart_id``
    prefixes the element ids; by default it is derived from the content, so two different charts on one
    page get different ids.
    """
    if width < 100:
        raise ValueError(f"width must be at least 100, got {width}")
    if any(count < 0 for _, count in counts):
        raise ValueError("counts must not be negative")
    if chart_id is None:
        chart_id = _content_id(title, counts)
    elif not _CHART_ID.fullmatch(chart_id):
        raise ValueError(f"chart_id must be a letter followed by letters, digits, '-' or '_': {chart_id!r}")
    if description is None:
        description = ", ".join(f"{_one_line(label)}: {count}" for label, count in counts) or title

    largest = max((count for _, count in counts), default=0)
    count_space = COUNT_GAP + _text_width(str(largest))
    bar_area = max(width - 2 * PADDING - count_space, 1.0)
    row_height = LABEL_LINE + BAR_HEIGHT + ROW_GAP
    height = 2 * PADDING + max(len(counts), 1) * row_height - ROW_GAP

    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" aria-labelledby="{chart_id}-title"'
        f' aria-describedby="{chart_id}-desc" font-family="{FONT_FAMILY}" font-size="{FONT_SIZE}">',
        f'<title id="{chart_id}-title">{_text(title)}</title>',
        f'<desc id="{chart_id}-desc">{_text(description)}</desc>',
    ]
    for index, (label, count) in enumerate(counts):
        top = PADDING + index * row_height
        bar_top = top + LABEL_LINE
        bar_width = bar_area * count / largest if largest else 0.0
        visible_label = _fit(_one_line(label), width - 2 * PADDING)
        lines += [
            f'<g class="bar" data-count="{count}">',
            f'<text class="bar-label" x="{PADDING}" y="{_num(top + FONT_SIZE)}" fill="{TEXT_FILL}">'
            f"{_text(visible_label)}</text>",
            f'<rect x="{PADDING}" y="{bar_top}" width="{_num(bar_width)}" height="{BAR_HEIGHT}"'
            f' fill="{BAR_FILL}"/>',
            f'<text class="bar-count" x="{_num(PADDING + bar_width + COUNT_GAP)}"'
            f' y="{_num(bar_top + BAR_HEIGHT - 3)}" fill="{TEXT_FILL}">{count}</text>',
            "</g>",
        ]
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def _content_id(title: str, counts: Sequence[tuple[str, int]]) -> str:
    digest = hashlib.sha256(repr((title, [(label, count) for label, count in counts])).encode())
    return "chart-" + digest.hexdigest()[:12]


def _text(value: str) -> str:
    """Escape for element text and double-quoted attributes, dropping characters XML cannot hold."""
    return escape(_NOT_XML_CHAR.sub("", value), {'"': "&quot;"})


def _one_line(label: str) -> str:
    return " ".join(label.split())


def _char_width(char: str) -> float:
    # Wide (CJK, fullwidth) characters take about one em; others about 0.6 em in a sans-serif face.
    return 1.0 if unicodedata.east_asian_width(char) in ("W", "F") else 0.6


def _text_width(text: str) -> float:
    return FONT_SIZE * sum(_char_width(char) for char in text)


def _fit(label: str, available: float) -> str:
    """Shorten a label with an ellipsis so it fits the chart; the full label stays in ``<desc>``."""
    if _text_width(label) <= available:
        return label
    budget = available - _text_width(ELLIPSIS)
    used = 0.0
    kept = []
    for char in label:
        used += FONT_SIZE * _char_width(char)
        if used > budget:
            break
        kept.append(char)
    return "".join(kept) + ELLIPSIS


def _num(value: float) -> str:
    """Coordinates with at most two decimals and no trailing zeros, identical on every platform."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"
