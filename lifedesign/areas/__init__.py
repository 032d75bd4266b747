"""The areas of the service, installed explicitly. Each `lifedesign/areas/<area>/__init__.py` exports:

- ROUTES:   Litestar route handlers (pages and JSON API),
- COMMANDS: functions `add(subparsers)` that register CLI sub-commands,
- JOBS:     async functions the worker runs every pass (idempotent, cheap when nothing is due),
- DEMO:     an async `load(progress) -> dict[str, int]` for `lifedesign demo`, or None.

Importing an area installs it: it calls its domain's `events.<area>.install()` (the kernel's signals and
providers, events.signals) and adds its nav entries. INSTALLED is the one list; nothing is found by name.
"""

from __future__ import annotations

from lifedesign.areas import exchanges, feedback, invites, seminars, visits

INSTALLED = [seminars, invites, visits, exchanges, feedback]
