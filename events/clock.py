"""The one clock of the domain: every service asks `now()`, so a test moves time instead of back-dating rows.

`travel(to)` (a context manager for tests and benchmarks) fixes the clock at a moment, or shifts it by a
timedelta; inside, `advance(delta)` moves it on. Outside a travel the clock is the real UTC time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_offset: list[timedelta] = []
_fixed: list[datetime] = []


def now() -> datetime:
    if _fixed:
        return _fixed[-1]
    moment = datetime.now(UTC)
    return moment + _offset[-1] if _offset else moment


@contextmanager
def travel(to: datetime | timedelta) -> Iterator[None]:
    """Fix the clock at `to` (an aware datetime), or run it `to` (a timedelta) ahead of real time."""
    if isinstance(to, datetime):
        if to.tzinfo is None:
            raise ValueError("travel() needs an aware datetime")
        _fixed.append(to.astimezone(UTC))
        try:
            yield
        finally:
            _fixed.pop()
    else:
        _offset.append(to)
        try:
            yield
        finally:
            _offset.pop()


def advance(delta: timedelta) -> None:
    """Move a travelling clock on (fixed: to a new moment; shifted: by a larger offset)."""
    if _fixed:
        _fixed[-1] = _fixed[-1] + delta
    elif _offset:
        _offset[-1] = _offset[-1] + delta
    else:
        raise RuntimeError("advance() outside travel()")
