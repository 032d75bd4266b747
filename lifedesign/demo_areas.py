"""Each area adds its own demo data through its DEMO loader (lifedesign/areas/<area>)."""

from __future__ import annotations

from collections.abc import Callable


async def load_area_demos(progress: Callable[[str], None]) -> dict[str, int]:
    from lifedesign import areas

    totals: dict[str, int] = {}
    for area in areas.load():
        if area.DEMO is not None:
            totals.update(await area.DEMO(progress))
    return totals
