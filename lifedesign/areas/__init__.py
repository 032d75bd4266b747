"""The areas of the service. Each `lifedesign/areas/<area>/__init__.py` exports:

- ROUTES:   Litestar route handlers (pages and JSON API),
- COMMANDS: functions `add(subparsers)` that register CLI sub-commands,
- JOBS:     async functions the worker runs every pass (idempotent, cheap when nothing is due),
- DEMO:     an async `load(progress) -> dict[str, int]` for `lifedesign demo`, or None.

Importing an area also wires its domain hooks (events.hooks) and nav entries.
"""

from __future__ import annotations

import importlib
from types import ModuleType

NAMES = ("seminars", "invites", "visits", "exchanges", "feedback")


def load() -> list[ModuleType]:
    return [importlib.import_module(f"lifedesign.areas.{name}") for name in NAMES]
