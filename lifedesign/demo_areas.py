"""Each area adds its own demo data here (events, visit rounds, exchange sessions, surveys)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

AREA_DEMOS: list[Callable[[Callable[[str], None]], Awaitable[dict[str, int]]]] = []


async def load_area_demos(progress: Callable[[str], None]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for loader in AREA_DEMOS:
        totals.update(await loader(progress))
    return totals
