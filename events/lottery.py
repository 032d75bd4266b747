"""Lottery (抽選) draw for events with allocation=lottery: pure, re-runnable, verifiable by anyone.

The current algorithm (ALGORITHM, "ticket-priority-v2") works on public data only:

- When registration opens the service draws a secret seed and publishes its commitment `sha256(seed)`;
  the seed itself is revealed at the draw (`commitment` binds it: `verify` refuses any other seed).
- Each application (a person, or a group applying together) gets a random ticket at application time,
  mailed to the applicant at once, and a priority group (higher first: e.g. ward residents).
- The order is sorted by (priority descending, sha256(f"{seed}:{ticket}"), ticket). Seats go down that order;
  a group wins only if all its members fit into the seats left (then later, smaller entries may still fit);
  everything else forms the waiting list in the same order, groups kept together.

Anyone holding the published tickets, groups, sizes, the seat count and the revealed seed can repeat the
draw on any platform (`scripts/verify_lottery.py` does it with the standard library only). Python's
``random`` is deliberately not used: its algorithms are not promised to stay the same across versions.

The first algorithm ("sha256-priority-v1", application ids instead of tickets, no commitment, no groups) is
kept so draws recorded with it still verify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

# Recorded next to each draw, so a change of the algorithm can keep verifying old draws.
ALGORITHM = "ticket-priority-v2"
ALGORITHM_V1 = "sha256-priority-v1"

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


# ---------------------------------------------------------------- v2: tickets, commitment, groups


@dataclass(frozen=True)
class Entry:
    """One application in the public list: its ticket, priority group and how many seats it needs."""

    ticket: str
    priority: int = 0
    size: int = 1


@dataclass(frozen=True)
class Allocation:
    """Tickets that won (in draw order) and the waiting list (the rest, in draw order)."""

    seed: str
    winners: tuple[str, ...]
    waitlist: tuple[str, ...]


def commitment(seed: str) -> str:
    """What is published before any application: the seed cannot be changed afterwards."""
    return hashlib.sha256(seed.encode()).hexdigest()


def ticket_key(seed: str, ticket: str) -> str:
    return hashlib.sha256(f"{seed}:{ticket}".encode()).hexdigest()


def ticket_order(entries: Sequence[Entry], seed: str) -> tuple[str, ...]:
    """Every ticket in draw order: higher priority first, then by sha256(seed:ticket)."""
    if not seed:
        raise ValueError("seed must be a non-empty string")
    tickets = [entry.ticket for entry in entries]
    if len(set(tickets)) != len(tickets):
        raise ValueError("tickets must be unique")
    ordered = sorted(entries, key=lambda e: (-e.priority, ticket_key(seed, e.ticket), e.ticket))
    return tuple(entry.ticket for entry in ordered)


def allocate(entries: Sequence[Entry], seats: int, seed: str) -> Allocation:
    """Seats down the draw order; a group wins whole or not at all (it then waits, whole, in its place)."""
    if seats < 0:
        raise ValueError(f"seats must not be negative, got {seats}")
    if any(entry.size < 1 for entry in entries):
        raise ValueError("every entry needs at least one seat")
    size = {entry.ticket: entry.size for entry in entries}
    winners: list[str] = []
    waitlist: list[str] = []
    left = seats
    for ticket in ticket_order(entries, seed):
        if size[ticket] <= left:
            winners.append(ticket)
            left -= size[ticket]
        else:
            waitlist.append(ticket)
    return Allocation(seed=seed, winners=tuple(winners), waitlist=tuple(waitlist))


def verify_allocation(entries: Sequence[Entry], seats: int, seed: str, published_commitment: str,
                      recorded: Allocation) -> bool:
    """True when the seed matches the commitment published before the applications, and re-running the
    draw on the public entries reproduces the recorded winners and waiting list exactly."""
    if not published_commitment or commitment(seed) != published_commitment or recorded.seed != seed:
        return False
    again = allocate(entries, seats, seed)
    return again.winners == tuple(recorded.winners) and again.waitlist == tuple(recorded.waitlist)
