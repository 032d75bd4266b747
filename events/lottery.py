"""Lottery (抽選) draw for seminars with allocation=lottery: a pure, re-runnable function.

The draw order is sorted by (priority descending, sha256(f"{seed}:{application_id}")), so anyone holding
the recorded seed and the applications can repeat the draw on any Python version or platform and get
the same winners and waitlist. Python's ``random`` is deliberately not used: its algorithms are not
promised to stay the same across versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

# Recorded next to each draw, so a future change of the algorithm can keep verifying old draws.
ALGORITHM = "sha256-priority-v1"

# 16 bytes = 128 bits: a seed nobody can guess before it is drawn.
MIN_SEED_ENTROPY_BYTES = 16


@dataclass(frozen=True)
class Application:
    """One application to a lottery event; ``priority`` groups are drawn highest first."""

    id: int
    priority: int = 0


@dataclass(frozen=True)
class DrawResult:
    """The outcome of one draw: winners and waitlist, both in draw order."""

    seed: str
    winners: tuple[int, ...]
    waitlist: tuple[int, ...]


def new_seed(entropy: bytes) -> str:
    """Hex seed from caller-supplied entropy (pass ``os.urandom(16)``); pure so tests can pin it."""
    if len(entropy) < MIN_SEED_ENTROPY_BYTES:
        raise ValueError(f"seed entropy must be at least {MIN_SEED_ENTROPY_BYTES} bytes, got {len(entropy)}")
    return entropy.hex()


def draw_ticket(seed: str, application_id: int) -> str:
    """The hex ticket that orders one application within its priority group."""
    return hashlib.sha256(f"{seed}:{application_id}".encode()).hexdigest()


def draw_order(applications: Sequence[Application], seed: str) -> tuple[int, ...]:
    """All application ids in draw order: higher priority first, then by ticket."""
    if not seed:
        raise ValueError("seed must be a non-empty string")
    ids = [application.id for application in applications]
    if len(set(ids)) != len(ids):
        raise ValueError("application ids must be unique")
    # The id is a last tie-break only for a sha256 collision, which keeps the order total.
    ordered = sorted(
        applications,
        key=lambda application: (-application.priority, draw_ticket(seed, application.id), application.id),
    )
    return tuple(application.id for application in ordered)


def draw(applications: Sequence[Application], capacity: int, seed: str) -> DrawResult:
    """Draw winners (up to ``capacity``) and the waitlist (the rest, in draw order)."""
    if capacity < 0:
        raise ValueError(f"capacity must not be negative, got {capacity}")
    order = draw_order(applications, seed)
    return DrawResult(seed=seed, winners=order[:capacity], waitlist=order[capacity:])


def verify(applications: Sequence[Application], capacity: int, seed: str, recorded: DrawResult) -> bool:
    """True when re-running the draw reproduces ``recorded`` exactly (seed, winners, waitlist)."""
    if recorded.seed != seed:
        return False
    # Recorded results may come back from storage as lists; compare as tuples.
    reproduced = draw(applications, capacity, seed)
    return reproduced.winners == tuple(recorded.winners) and reproduced.waitlist == tuple(recorded.waitlist)
