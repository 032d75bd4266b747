"""Table rotation for exchange sessions (pure core).

An exchange session runs several rounds of small-table talks among nursery and
school staff. `plan_rotation` seats everyone for every round so that

- no two people of the same facility ever share a table (hard rule),
- table sizes differ by at most one in every round (hard rule),
- no two people share a table twice while that is possible; beyond that, repeats
  are few and spread (a pair meeting three times costs more than two pairs twice),
- optionally, pairs that met in earlier sessions (`prior_meetings`) are avoided
  with a lower priority than repeats within this session.

Method: an algebraic construction over the finite field GF(q) when the number of
tables q is a prime power (people laid out as rows x q columns, one facility packed
per row so colleagues never meet; round r seats {(i, j + r*i)} at table j) or, for a
few classic shapes where that falls short (5x3, 6x3, 7x3, 6x4, 7x4, 8x4 tables x seats), a
stored design that reaches the bound (cyclic over Z_m, or for 8x4, the social golfer 8-4-10, a
signed lift of the affine space AG(4, 2)), or, when tables + 1 is a prime power, the lines of
the affine plane over GF(tables + 1) with one symbol left out (tables + 2 - seats rounds, each
facility packed into a class of lines that never meet); then a conflict-directed tabu search
(swaps of two people of one round, as in Dotú & Van Hentenryck) that grows the
repeat-free prefix one round at a time (each new round seeded greedily, then all
rounds searched together) and finally spreads unavoidable repeats over the remaining
rounds. Facilities with as many members as there are tables sit one per table in every
round; the search leaves them pinned in a Latin square (member i of the first at table
i, member j of the next at table j + r in round r) and moves only the others.

Reproducibility: the result is a function of the inputs and `seed` as long as the
search ends by its step budget (`max_steps`); if `time_limit` cuts it first,
`RotationPlan.search_steps` records the steps each stage took, and passing them back
as `replay_steps` reproduces the same plan on any machine.

Re-planning live: rounds already held are passed as `fixed_rounds` and returned
verbatim; only the remaining rounds are solved, and pairs who met in the fixed
rounds count as already met. Ids in fixed rounds that are not among the
participants (people who left) are kept as they were and otherwise ignored.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

__all__ = [
    "Participant",
    "RotationError",
    "RotationPlan",
    "count_repeats",
    "plan_rotation",
    "rotation_bound",
    "table_sizes",
]

Round = tuple[tuple[int, ...], ...]


class RotationError(ValueError):
    """The input cannot be seated under the rules (message says why, with numbers)."""


@dataclass(frozen=True)
class Participant:
    id: int
    facility_id: int


@dataclass(frozen=True)
class RotationPlan:
    rounds: tuple[Round, ...]  # rounds[r][t] = participant ids at table t (fixed rounds first, verbatim)
    seed: int
    repeat_pairs: int  # sum over pairs of (meetings - 1) where a pair met more than once
    same_facility_pairs: int  # pairs of colleagues seated together (0 whenever feasible)
    bound: int  # upper bound on rounds in which nobody meets anyone twice
    clash_free_rounds: int  # leading rounds (fixed ones included) without any repeat
    method: str  # e.g. "gf(7) construction", "gf(8) construction + local search", "local search"
    search_steps: tuple[int, ...] = ()  # swaps tried per search stage; pass as replay_steps to reproduce


def table_sizes(people: int, tables: int) -> tuple[int, ...]:
    """Sizes of `tables` tables seating `people`, differing by at most one (larger first)."""
    if tables <= 0:
        return ()
    base, extra = divmod(people, tables)
    return tuple(base + 1 if t < extra else base for t in range(tables))


def rotation_bound(people: int, largest_facility: int, smallest_table: int, *, facility_sizes: Sequence[int] = (),
                   sizes: Sequence[int] = ()) -> int:
    """Most rounds possible without anyone meeting anyone twice.

    Person bound: someone of the largest facility can meet only `people - largest_facility`
    others and meets at least `smallest_table - 1` per round, so at most
    floor((people - largest_facility) / (smallest_table - 1)) rounds.
    If `facility_sizes` and `sizes` (one round's table sizes) are given, the pair bound
    (distinct cross-facility pairs / pairs seated per round) is applied as well.
    With tables of one the person bound says nothing; -1 then means "no finite bound".
    """
    bounds: list[int] = []
    if smallest_table >= 2:
        bounds.append(max(0, people - largest_facility) // (smallest_table - 1))
    if sizes:
        per_round = sum(s * (s - 1) // 2 for s in sizes)
        if per_round > 0:
            fac = facility_sizes or [1] * people
            pairs = people * (people - 1) // 2 - sum(f * (f - 1) // 2 for f in fac)
            bounds.append(max(0, pairs) // per_round)
    return min(bounds) if bounds else -1


def count_repeats(rounds: Iterable[Iterable[Iterable[int]]]) -> tuple[int, int]:
    """(repeat_pairs, clash_free_rounds) of a seating: extra meetings, and leading rounds with none."""
    met: dict[tuple[int, int], int] = {}
    repeats = 0
    clash_free = 0
    clean = True
    for round_ in rounds:
        round_repeats = 0
        for table in round_:
            ids = sorted(table)
            for i, x in enumerate(ids):
                for y in ids[i + 1:]:
                    seen = met.get((x, y), 0)
                    if seen:
                        round_repeats += 1
                    met[(x, y)] = seen + 1
        repeats += round_repeats
        if clean and round_repeats == 0:
            clash_free += 1
        else:
            clean = False
    return repeats, clash_free


def _same_facility_pairs(rounds: Iterable[Round], facility_of: dict[int, int]) -> int:
    count = 0
    for round_ in rounds:
        for table in round_:
            known = [facility_of[x] for x in table if x in facility_of]
            count += sum(n * (n - 1) // 2 for n in (known.count(f) for f in set(known)))
    return count


# ---------------------------------------------------------------- finite fields


def _prime_power(q: int) -> tuple[int, int] | None:
    if q < 2:
        return None
    for p in range(2, q + 1):
        if q % p == 0:
            m, rest = 0, q
            while rest % p == 0:
                rest //= p
                m += 1
            return (p, m) if rest == 1 else None
    return None


def _field_tables(q: int) -> tuple[list[list[int]], list[list[int]]] | None:
    """Addition and multiplication tables of GF(q), elements 0..q-1 as base-p digit vectors."""
    pm = _prime_power(q)
    if pm is None:
        return None
    p, m = pm

    def digits(x: int) -> list[int]:
        return [(x // p**i) % p for i in range(m)]

    def number(ds: Sequence[int]) -> int:
        return sum(d * p**i for i, d in enumerate(ds))

    add = [[number([(a + b) % p for a, b in zip(digits(x), digits(y), strict=True)]) for y in range(q)]
           for x in range(q)]
    # Brute-force a monic modulus of degree m with no zero divisors: then the quotient ring is a field.
    for tail in range(p**m):
        modulus = digits(tail) + [1]

        def mul(x: int, y: int, modulus: list[int] = modulus) -> int:
            prod = [0] * (2 * m - 1)
            for i, a in enumerate(digits(x)):
                for j, b in enumerate(digits(y)):
                    prod[i + j] = (prod[i + j] + a * b) % p
            for deg in range(2 * m - 2, m - 1, -1):
                c = prod[deg]
                if c:
                    for k in range(m + 1):
                        prod[deg - m + k] = (prod[deg - m + k] - c * modulus[k]) % p
            return number(prod[:m])

        table = [[mul(x, y) for y in range(q)] for x in range(q)]
        if all(table[x][y] for x in range(1, q) for y in range(1, q)):
            return add, table
    return None


def _construction(fac: np.ndarray, tables: int) -> list[np.ndarray]:
    """Repeat-free rounds from GF(q), q = number of tables; each is an array person -> table.

    Rows of q places hold whole facilities where possible (row-mates never meet in these
    rounds); rounds seating colleagues together (from facilities split over rows) are dropped.
    """
    n = len(fac)
    q = tables
    rows = -(-n // q) if q else 0
    if q < 2 or rows < 2 or rows > q:
        return []
    field = _field_tables(q)
    if field is None:
        return []
    add, mul = field
    ghosts = rows * q - n
    capacity = [q] * rows
    capacity[-1] -= ghosts  # ghost places sit at the end of the last row: one per table at most
    by_facility: dict[int, list[int]] = {}
    for person, f in enumerate(fac.tolist()):
        by_facility.setdefault(f, []).append(person)
    grid: list[list[int]] = [[] for _ in range(rows)]
    spill: list[int] = []
    for members in sorted(by_facility.values(), key=lambda ms: (-len(ms), ms[0])):
        fits = [r for r in range(rows) if capacity[r] - len(grid[r]) >= len(members)]
        if fits:
            grid[min(fits, key=lambda r: capacity[r] - len(grid[r]))].extend(members)
        else:
            spill.extend(members)
    for person in spill:
        r = max(range(rows), key=lambda r: capacity[r] - len(grid[r]))
        grid[r].append(person)
    result: list[np.ndarray] = []
    for r in range(q):
        seat = np.empty(n, dtype=np.int64)
        for i, row in enumerate(grid):
            for c, person in enumerate(row):
                # person (i, c) sits at table j with c = j + r*i, i.e. j = c - r*i
                shift = mul[r][i]
                j = next(j for j in range(q) if add[j][shift] == c)
                seat[person] = j
        result.append(seat)
    if ghosts == 0 and q % rows == 0:
        # Row-mates have not met yet: split each row into q/rows tables of `rows`.
        seat = np.empty(n, dtype=np.int64)
        per_row = q // rows
        for i, row in enumerate(grid):
            for c, person in enumerate(row):
                seat[person] = i * per_row + c // rows
        result.append(seat)
    clean = []
    for seat in result:
        together = seat[:, None] == seat[None, :]
        colleagues = fac[:, None] == fac[None, :]
        np.fill_diagonal(together, False)
        if not np.any(together & colleagues):
            clean.append(seat)
    return clean


def _line_construction(fac: np.ndarray, tables: int) -> list[np.ndarray]:
    """Repeat-free rounds from the lines of the affine plane over GF(q), q = tables + 1.

    With k = ceil(n / tables) seats, rounds are the points x = 0 .. R-1 of GF(q), R = tables + 2 - k,
    and table y - 1 in round x is the point (x, y) for y != 0 (the symbol 0 is left out). A person
    is a line y = f(x) that misses (x, 0) in every round: a constant y = a != 0, or a line through
    (x0, 0) for one of the k - 1 points x0 >= R. Two lines share at most one point, so nobody
    meets twice; every point lies on 1 + (q - R) = k such lines, so tables are full. The lines
    fall into k classes of `tables` lines that never meet in the rounds (the constants, and each
    pencil through (x0, 0)): facilities are packed into these classes (first fit, largest first),
    so colleagues never meet; the tables * k - n unused lines lie in one class, so each round has
    them at distinct tables and table sizes differ by at most one.
    """
    n = len(fac)
    q = tables + 1
    if tables < 2 or n <= tables:
        return []
    k = -(-n // tables)
    rounds = tables + 2 - k
    field = _field_tables(q)
    if field is None or rounds < 2:
        return []
    add, mul = field
    neg = [next(y for y in range(q) if add[x][y] == 0) for x in range(q)]
    # classes[c][i]: the line as its value at each round; class 0 = constants, class j = pencil at x0.
    classes = [[[a] * rounds for a in range(1, q)]]
    for x0 in range(rounds, q):
        classes.append([[mul[b][add[x][neg[x0]]] for x in range(rounds)] for b in range(1, q)])
    unused = tables * k - n
    by_facility: dict[int, list[int]] = {}
    for person, f in enumerate(fac.tolist()):
        by_facility.setdefault(f, []).append(person)
    groups = sorted(by_facility.values(), key=lambda ms: (-len(ms), ms[0]))
    for short in (len(classes) - 1, 0):  # which class keeps the unused lines
        room = [tables - (unused if c == short else 0) for c in range(len(classes))]
        packing: list[list[int]] = [[] for _ in classes]
        for members in groups:
            c = next((c for c in range(len(classes)) if room[c] >= len(members)), None)
            if c is None:
                break
            packing[c].extend(members)
            room[c] -= len(members)
        else:
            break
    else:
        return []
    seat = np.empty((rounds, n), dtype=np.int64)
    for c, members in enumerate(packing):
        for person, line in zip(members, classes[c], strict=False):
            seat[:, person] = np.array(line) - 1
    return [seat[r].copy() for r in range(rounds)]


# ---------------------------------------------------------------- stored designs


@dataclass(frozen=True)
class _CyclicDesign:
    """A repeat-free schedule kept as base rounds over Z_m x levels (+ fixed points), developed mod m.

    Point (x, level) is person level*m + x; fixed point i is person levels*m + i. `blocks` holds one
    or more base rounds, one after the other; round s of a base round seats each of its blocks
    shifted by s (fixed points stay), and since no difference between two levels (or within one)
    occurs twice, nobody meets anyone twice. Each `orbits` entry adds one round
    {(x + a[level], level)} for x in Z_m. The base rounds were found offline (backtracking and
    CP-SAT over distinct differences); `_design_rounds` rebuilds the rounds and the tests check them.
    """

    m: int
    levels: int
    fixed: int
    blocks: tuple[tuple[tuple[int, int], ...], ...]  # (x, level); level -1 = fixed point x
    orbits: tuple[tuple[int, ...], ...] = ()
    kind: ClassVar[str] = "cyclic"


@dataclass(frozen=True)
class _AffineLift:
    """A repeat-free schedule for 2^(k+1) people as a signed lift of the affine space AG(k, 2).

    Person s + e*2^k is the bit vector s of GF(2)^k with a sign e in {0, 1}. Round r takes the
    cosets s + W of the subspace W spanned by `spans[r]`: each coset seats its members with
    signs e_r(s) = bit s of `signs[r]` at one table and with the opposite signs at another. So
    (s, a) and (t, b) meet in round r iff s, t share a coset there and a + b = e_r(s) + e_r(t).
    Every nonzero vector lies in exactly two of the subspaces (s and t share a coset in exactly
    two rounds), and the signs make the two relations e_r(s) + e_r(t) differ: each of the four
    pairs {(s, a), (t, b)} meets once; only s and s + 2^k never meet.

    Found offline by a search run on this machine: backtracking over choices of 2-dim subspaces
    (of the 35 in GF(2)^4) covering every direction twice, and for each choice Gaussian
    elimination over GF(2) of the 120 sign equations e_r1(s) + e_r1(t) + e_r2(s) + e_r2(t) = 1
    (the very first choice was consistent, 0.04 s); table pairs flipped so the first member of
    each coset has sign 0. `_design_rounds` rebuilds the rounds and the tests check them.
    """

    k: int
    spans: tuple[tuple[int, ...], ...]  # per round: generators of W, as bit vectors
    signs: tuple[int, ...]  # per round: bit s = sign of superpoint s
    kind: ClassVar[str] = "affine"


# (tables, table size) -> design, each at the person bound: a cyclic one has m * base rounds +
# len(orbits) rounds, an affine lift one per subspace.
_DESIGNS: dict[tuple[int, int], _CyclicDesign | _AffineLift] = {
    (5, 3): _CyclicDesign(  # Kirkman's schoolgirls, 7 rounds
        7, 2, 1, (((1, 0), (2, 0), (2, 1)), ((3, 1), (6, 1), (5, 1)), ((5, 0), (0, 0), (4, 1)),
                  ((3, 0), (6, 0), (1, 1)), ((0, 1), (4, 0), (0, -1)))),
    (7, 3): _CyclicDesign(  # Kirkman triple system on 21 points, 10 rounds
        7, 3, 0, (((1, 0), (0, 0), (5, 0)), ((2, 0), (6, 1), (4, 2)), ((3, 0), (1, 1), (1, 2)),
                  ((6, 2), (6, 0), (0, 1)), ((2, 2), (3, 2), (0, 2)), ((4, 0), (5, 2), (4, 1)),
                  ((3, 1), (2, 1), (5, 1))),
        ((0, 2, 4), (0, 6, 3), (0, 3, 6))),
    (6, 4): _CyclicDesign(  # 24 people in tables of 4, 7 rounds
        7, 3, 3, (((3, 1), (6, 1), (5, 1), (1, 0)), ((0, -1), (4, 1), (1, 2), (4, 0)),
                  ((0, 2), (3, 2), (2, 1), (2, 2)), ((6, 0), (2, -1), (0, 1), (6, 2)),
                  ((0, 0), (2, 0), (3, 0), (5, 2)), ((1, -1), (5, 0), (4, 2), (1, 1)))),
    (6, 3): _CyclicDesign(  # 18 people in threes, 8 rounds: two base rounds over Z_4
        4, 4, 2, (((3, 1), (2, 2), (0, -1)), ((1, 0), (0, 3), (1, -1)), ((0, 0), (2, 1), (3, 2)),
                  ((2, 0), (3, 0), (0, 2)), ((1, 2), (2, 3), (3, 3)), ((0, 1), (1, 1), (1, 3)),
                  ((0, 0), (2, 3), (0, -1)), ((0, 1), (2, 2), (1, -1)), ((3, 0), (3, 1), (3, 2)),
                  ((0, 2), (1, 2), (0, 3)), ((1, 0), (2, 1), (1, 3)), ((2, 0), (1, 1), (3, 3)))),
    (7, 4): _CyclicDesign(  # resolvable 2-(28, 4, 1) design, 9 rounds
        7, 4, 0, (((6, 3), (1, 3), (1, 2), (0, 2)), ((1, 0), (6, 1), (3, 1), (2, 0)),
                  ((3, 2), (0, 0), (5, 2), (3, 0)), ((5, 1), (2, 3), (5, 3), (4, 1)),
                  ((1, 1), (5, 0), (4, 2), (0, 3)), ((6, 0), (4, 0), (3, 3), (4, 3)),
                  ((0, 1), (2, 2), (2, 1), (6, 2))),
        ((0, 6, 4, 1), (0, 0, 1, 3))),
    (8, 4): _AffineLift(  # social golfer 8-4-10: 32 people in tables of 4, 10 rounds
        4, ((1, 2), (1, 4), (2, 8), (4, 8), (7, 9), (7, 10), (6, 9), (3, 12), (5, 11), (6, 11)),
        (0, 43690, 52428, 4080, 27328, 49200, 62800, 13260, 38400, 14752)),
}


def _design_rounds(design: _CyclicDesign | _AffineLift) -> list[list[list[int]]]:
    """Every round of `design` as tables of person numbers."""
    if isinstance(design, _AffineLift):
        half = 1 << design.k
        lifted = []
        for span, signs in zip(design.spans, design.signs, strict=True):
            subspace = [0]
            for g in span:
                subspace += [v ^ g for v in subspace]
            cosets = sorted({tuple(sorted(s ^ w for w in subspace)) for s in range(half)})
            tables = [[s + half * (signs >> s & 1) for s in c] for c in cosets]
            lifted.append(tables + [[(x + half) % (2 * half) for x in t] for t in tables])
        return lifted
    m, levels = design.m, design.levels

    def person(x: int, level: int, shift: int) -> int:
        return levels * m + x if level < 0 else level * m + (x + shift) % m

    tables = (levels * m + design.fixed) // len(design.blocks[0])
    bases = [design.blocks[i:i + tables] for i in range(0, len(design.blocks), tables)]
    rounds = [[[person(x, level, s) for x, level in block] for block in base] for base in bases for s in range(m)]
    rounds += [[[level * m + (x + a[level]) % m for level in range(levels)] for x in range(m)]
               for a in design.orbits]
    return rounds


def _known_design(fac: np.ndarray, tables: int) -> list[np.ndarray]:
    """Rounds of a stored design for exactly `tables` full tables, minus rounds seating colleagues.

    Pairs of colleagues are first placed on pairs of design points that never meet (the affine
    lift has 16 such pairs on 32 points), so two-person facilities lose no round.
    """
    n = len(fac)
    if tables < 1 or n % tables:
        return []
    design = _DESIGNS.get((tables, n // tables))
    if design is None:
        return []
    rounds = _design_rounds(design)
    met = {(x, y) for round_ in rounds for table in round_ for x in table for y in table}
    unmet = [(x, y) for x in range(n) for y in range(x + 1, n) if (x, y) not in met]
    person_at = np.full(n, -1, dtype=np.int64)  # design point -> person
    by_facility: dict[int, list[int]] = {}
    for person, f in enumerate(fac.tolist()):
        by_facility.setdefault(f, []).append(person)
    for members in by_facility.values():
        if len(members) == 2:
            free = next(((x, y) for x, y in unmet if person_at[x] < 0 and person_at[y] < 0), None)
            if free is not None:
                person_at[list(free)] = members
    placed = set(person_at[person_at >= 0].tolist())
    rest = iter(p for p in range(n) if p not in placed)
    for point in np.flatnonzero(person_at < 0).tolist():
        person_at[point] = next(rest)
    result = []
    for round_ in rounds:
        seated = [person_at[table] for table in round_]
        seat = np.empty(n, dtype=np.int64)
        for t, table in enumerate(seated):
            seat[table] = t
        if all(len(set(fac[table].tolist())) == len(table) for table in seated):
            result.append(seat)
    return result


# ---------------------------------------------------------------- local search


class _Board:
    """Seats of the rounds being planned plus meeting counts, with O(table) swap updates."""

    def __init__(self, fac: np.ndarray, sizes: tuple[int, ...], frozen_meetings: np.ndarray,
                 prior: np.ndarray, weight: int) -> None:
        self.n = len(fac)
        self.fac = fac
        self.facilities = int(fac.max()) + 1 if self.n else 0
        self.tables = len(sizes)
        self.weight = weight
        self.prior = prior.astype(np.int64)
        self.frozen = frozen_meetings.copy()
        self.seats: list[np.ndarray] = []
        self.pinned: list[np.ndarray] = []  # per round: people the search must not move (anchors)
        self.rebuild()

    def rebuild(self) -> None:
        self.pinned = self.pinned[:len(self.seats)]  # seats are only ever cut from the end
        self.meet = self.frozen.copy()
        self.members: list[list[list[int]]] = []
        self.onehot: list[np.ndarray] = []
        self.fac_count: list[np.ndarray] = []
        self.sizes: list[np.ndarray] = []  # per round: a construction with ghosts puts the small tables anywhere
        for seat in self.seats:
            self._index_round(seat)

    def _index_round(self, seat: np.ndarray) -> None:
        members: list[list[int]] = [[] for _ in range(self.tables)]
        for person, table in enumerate(seat.tolist()):
            members[table].append(person)
        onehot = np.zeros((self.n, self.tables), dtype=np.float64)
        onehot[np.arange(self.n), seat] = 1.0
        fac_count = np.zeros((self.tables, self.facilities), dtype=np.int64)
        np.add.at(fac_count, (seat, self.fac), 1)
        self.members.append(members)
        self.onehot.append(onehot)
        self.fac_count.append(fac_count)
        self.sizes.append(np.bincount(seat, minlength=self.tables).astype(np.float64))
        together = seat[:, None] == seat[None, :]
        np.fill_diagonal(together, False)
        self.meet += together

    def add_round(self, seat: np.ndarray, pinned: np.ndarray | None = None) -> None:
        self.seats.append(seat.copy())
        self.pinned.append(np.zeros(self.n, dtype=bool) if pinned is None else pinned.copy())
        self._index_round(self.seats[-1])

    def cost(self) -> int:
        m = np.triu(self.meet, 1)
        return int(self.weight * (m * (m - 1) // 2).sum() + (self.prior * m).sum())

    def repeats(self) -> int:
        m = np.triu(self.meet, 1)
        return int((m * (m - 1) // 2).sum())

    def swap(self, w: int, p: int, q: int) -> None:
        seat = self.seats[w]
        a, b = int(seat[p]), int(seat[q])
        members = self.members[w]
        rest_a = [x for x in members[a] if x != p]
        rest_b = [x for x in members[b] if x != q]
        # The four pair groups are disjoint, so one fancy-indexed update per direction is exact.
        rows = [p] * (len(rest_a) + len(rest_b)) + [q] * (len(rest_a) + len(rest_b))
        cols = rest_a + rest_b + rest_b + rest_a
        change = [-1] * len(rest_a) + [1] * len(rest_b) + [-1] * len(rest_b) + [1] * len(rest_a)
        self.meet[rows, cols] += change
        self.meet[cols, rows] += change
        members[a].remove(p)
        members[b].remove(q)
        members[a].append(q)
        members[b].append(p)
        seat[p], seat[q] = b, a
        oh = self.onehot[w]
        oh[p, a] = oh[q, b] = 0.0
        oh[p, b] = oh[q, a] = 1.0
        fc = self.fac_count[w]
        fc[a, self.fac[p]] -= 1
        fc[b, self.fac[q]] -= 1
        fc[a, self.fac[q]] += 1
        fc[b, self.fac[p]] += 1

    def legal_swaps(self, w: int, p: int) -> np.ndarray:
        seat = self.seats[w]
        a = seat[p]
        fc = self.fac_count[w]
        fp = self.fac[p]
        same = (self.fac == fp).astype(np.int64)
        if self.pinned[w][p]:
            return np.empty(0, dtype=np.int64)
        return np.flatnonzero((seat != a) & (fc[seat, fp] - same == 0) & (fc[a, self.fac] - same == 0)
                              & ~self.pinned[w])


def _tabu_search(board: _Board, rng: random.Random, step_limit: int, deadline: float,
                 stop_at_zero_repeats: bool, patience: int | None) -> int:
    """Conflict-directed tabu search over all rounds of `board`; leaves the best seating found. Returns steps.

    Each step evaluates every swap, in every round, of a person sitting with someone they
    already met (or met in an earlier session) and applies the best one that is not tabu.
    """
    if not board.seats or board.n < 2:
        return 0
    n, rounds, weight = board.n, len(board.seats), board.weight
    cost = board.cost()
    best_cost = cost
    best_seats = [s.copy() for s in board.seats]
    tabu = np.zeros((rounds, n, board.tables), dtype=np.int64)
    stall_limit = 100 + 2 * n
    last_gain = 0
    restarts_without_gain = 0
    steps = 0
    fac = board.fac
    same_fac = (fac[:, None] == fac[None, :]).astype(np.int64)
    prior_bad = board.prior > 0
    while steps < step_limit:
        if best_cost // weight == 0 and (stop_at_zero_repeats or best_cost == 0):
            break
        if time.perf_counter() > deadline:
            break
        steps += 1
        meet = board.meet
        costly = ((meet >= 2) | prior_bad) & ((meet - board.frozen) > 0)
        affinity = (weight * meet + board.prior).astype(np.float64)
        best_delta = math.inf
        moves: list[tuple[int, int, int]] = []
        for w in range(rounds):
            seat = board.seats[w]
            together = seat[:, None] == seat[None, :]
            pinned = board.pinned[w]
            hot = np.flatnonzero((costly & together).any(axis=1) & ~pinned)
            if len(hot) == 0:
                continue
            by_table = affinity @ board.onehot[w]  # by_table[x, t]: affinity of x to table t's people
            own = by_table[np.arange(n), seat]
            spread = by_table[:, seat]  # spread[x, y] = affinity of x to y's table
            size_term = weight * board.sizes[w][seat]
            delta = (spread[hot] + spread[:, hot].T - own[hot, None] - own[None, :] - 2.0 * affinity[hot]
                     + size_term[hot, None] + size_term[None, :] - 2.0 * weight)
            fc = board.fac_count[w]
            sf = same_fac[hot]
            ok = ((~together[hot]) & (fc[seat][:, fac[hot]].T - sf == 0) & (fc[seat[hot]][:, fac] - sf == 0)
                  & ~pinned[None, :])
            tabu_w = tabu[w]
            free = (tabu_w[hot][:, seat] <= steps) & (tabu_w[:, seat[hot]].T <= steps)
            allowed = ok & (free | (cost + delta < best_cost))
            if not allowed.any():
                continue
            d = np.where(allowed, delta, math.inf)
            low = d.min()
            if low < best_delta:
                best_delta = low
                moves = []
            if low == best_delta:
                moves.extend((w, int(hot[i]), int(j)) for i, j in zip(*np.nonzero(d == low), strict=True))
        if not moves:
            if not costly.any():
                break  # nothing in the planned rounds can get cheaper
            last_gain = -stall_limit  # every move is tabu or illegal: shake now
        else:
            w, p, q = moves[rng.randrange(len(moves))]
            seat = board.seats[w]
            a, b = int(seat[p]), int(seat[q])
            board.swap(w, p, q)
            cost += int(round(best_delta))
            tenure = 3 + rng.randrange(board.tables + 6)
            tabu[w, p, a] = steps + tenure
            tabu[w, q, b] = steps + tenure
        if cost < best_cost:
            best_cost = cost
            best_seats = [s.copy() for s in board.seats]
            last_gain = steps
            restarts_without_gain = 0
        elif steps - last_gain > stall_limit:
            restarts_without_gain += 1
            if patience is not None and restarts_without_gain > patience:
                break
            # Stuck: restart from the best seating, shaken by a few random legal swaps.
            board.seats = [s.copy() for s in best_seats]
            board.rebuild()
            for _ in range(max(2, n // 8)):
                w2 = rng.randrange(rounds)
                p2 = rng.randrange(n)
                legal = board.legal_swaps(w2, p2)
                if len(legal):
                    board.swap(w2, p2, int(legal[rng.randrange(len(legal))]))
            cost = board.cost()
            tabu[:] = 0
            last_gain = steps
    board.seats = best_seats
    board.rebuild()
    return steps


def _anchors(board: _Board) -> np.ndarray:
    """Seats (-1 = free) for members of facilities as large as the number of tables, for a new round.

    Such a facility has one member at every table in every round, so the search could only fix
    a clash between two of them by moving whole tables. Instead the first one stays put (member
    i at table i) and each further one is shifted cyclically (member j at table j + s) with the
    first shift s that repeats no meeting among anchors: round r gets shift r, a Latin square.
    """
    fac, n, tables = board.fac, board.n, board.tables
    seat = np.full(n, -1, dtype=np.int64)
    if tables < 2 or n == 0:
        return seat
    sizes = np.bincount(fac)
    full = [f for f in range(len(sizes)) if sizes[f] == tables]
    if len(full) < 2:  # one full facility alone is just a relabelling of tables
        return seat
    at_table: list[list[int]] = [[] for _ in range(tables)]
    for f in full:
        members = np.flatnonzero(fac == f).tolist()
        for s in range(tables):
            if all(board.meet[x, y] == 0 for j, x in enumerate(members) for y in at_table[(j + s) % tables]):
                for j, x in enumerate(members):
                    seat[x] = (j + s) % tables
                    at_table[(j + s) % tables].append(x)
                break
    return seat


def _greedy_round(board: _Board, rng: random.Random, preset: np.ndarray | None = None) -> np.ndarray:
    """A new round seated person by person at the open table where they know the fewest people.

    Only a starting point for the search (a myopic greedy alone is weak); colleagues are kept
    apart, and if the greedy paints itself into a corner the facility-safe deal is used instead.
    People already seated in `preset` (>= 0) keep their tables.
    """
    fac, n, tables = board.fac, board.n, board.tables
    capacity = list(table_sizes(n, tables))
    # Big facilities first: they have the fewest legal tables.
    sizes = np.bincount(fac)
    order = sorted(range(n), key=lambda x: (-sizes[fac[x]], rng.random()))
    seat = np.full(n, -1, dtype=np.int64)
    known = np.zeros((n, tables), dtype=np.float64)  # known[x, t]: people at t whom x already met
    has_facility = np.zeros((tables, int(fac.max()) + 1), dtype=bool)
    weight = board.weight
    if preset is not None:
        for x in np.flatnonzero(preset >= 0).tolist():
            t = int(preset[x])
            seat[x] = t
            capacity[t] -= 1
            has_facility[t, fac[x]] = True
            known[:, t] += weight * board.meet[:, x] + board.prior[:, x]
        order = [x for x in order if seat[x] < 0]
    for x in order:
        open_ = [t for t in range(tables) if capacity[t] > 0 and not has_facility[t, fac[x]]]
        if not open_:
            return _deal(fac, tables, rng)
        scores = [(known[x, t], -capacity[t], rng.random(), t) for t in open_]
        t = min(scores)[3]
        seat[x] = t
        capacity[t] -= 1
        has_facility[t, fac[x]] = True
        known[:, t] += weight * board.meet[:, x] + board.prior[:, x]
    return seat


def _deal(fac: np.ndarray, tables: int, rng: random.Random) -> np.ndarray:
    """A random seating that keeps the facility rule: colleagues dealt to consecutive tables."""
    by_facility: dict[int, list[int]] = {}
    for person, f in enumerate(fac.tolist()):
        by_facility.setdefault(f, []).append(person)
    groups = list(by_facility.values())
    rng.shuffle(groups)
    order: list[int] = []
    for members in groups:
        members = members[:]
        rng.shuffle(members)
        order.extend(members)
    seat = np.empty(len(fac), dtype=np.int64)
    for i, person in enumerate(order):
        seat[person] = i % tables
    return seat


# ---------------------------------------------------------------- the planner


def _check_input(participants: Sequence[Participant], rounds: int, table_size: int | None,
                 tables: int | None, fixed_rounds: Sequence[Sequence[Sequence[int]]]) -> int:
    ids = [p.id for p in participants]
    if len(set(ids)) != len(ids):
        raise RotationError("participant ids must be unique")
    if rounds < 0:
        raise RotationError(f"rounds must be >= 0, got {rounds}")
    if len(fixed_rounds) > rounds:
        raise RotationError(f"{len(fixed_rounds)} fixed rounds but only {rounds} rounds in the session")
    if (table_size is None) == (tables is None):
        raise RotationError("give exactly one of table_size or tables")
    if table_size is not None and table_size < 1:
        raise RotationError(f"table_size must be >= 1, got {table_size}")
    if tables is not None and tables < 1:
        raise RotationError(f"tables must be >= 1, got {tables}")
    for r, round_ in enumerate(fixed_rounds):
        seated = [x for table in round_ for x in table]
        if len(seated) != len(set(seated)):
            raise RotationError(f"fixed round {r} seats someone twice")
    n = len(participants)
    count = -(-n // table_size) if table_size is not None else min(tables or 1, max(n, 1))
    return max(count, 1)


def plan_rotation(
    participants: Sequence[Participant],
    rounds: int,
    *,
    table_size: int | None = None,
    tables: int | None = None,
    seed: int = 0,
    fixed_rounds: Sequence[Sequence[Sequence[int]]] = (),
    prior_meetings: Iterable[tuple[int, int]] = (),
    time_limit: float = 1.0,
    max_steps: int = 200_000,
    replay_steps: Sequence[int] | None = None,
) -> RotationPlan:
    """Seat `participants` at tables for `rounds` rounds (the first ones being `fixed_rounds`).

    Give exactly one of `table_size` (tables = ceil(N / table_size)) or `tables`
    (capped at N). Raises RotationError when the input cannot be seated: a facility with
    more people than there are tables (colleagues would have to share one), duplicate ids,
    more fixed rounds than rounds, or a fixed round seating someone twice.
    """
    table_count = _check_input(participants, rounds, table_size, tables, fixed_rounds)
    people = sorted(participants, key=lambda p: p.id)
    n = len(people)
    index = {p.id: i for i, p in enumerate(people)}
    facility_of = {p.id: p.facility_id for p in people}
    facility_index: dict[int, int] = {}
    fac = np.array([facility_index.setdefault(p.facility_id, len(facility_index)) for p in people], dtype=np.int64)
    facility_sizes = np.bincount(fac).tolist() if n else []
    largest = max(facility_sizes, default=0)
    if largest > table_count:
        big = max(facility_index, key=lambda f: facility_sizes[facility_index[f]])
        raise RotationError(
            f"facility {big} has {largest} people but there are only {table_count} tables: "
            f"two colleagues would have to share a table; use at least {largest} tables "
            f"(table_size <= {max(1, n // largest)}) or split the session")
    sizes = table_sizes(n, table_count)
    bound = rotation_bound(n, largest, min(sizes, default=0), facility_sizes=facility_sizes, sizes=sizes)
    fixed: tuple[Round, ...] = tuple(tuple(tuple(int(x) for x in table) for table in r) for r in fixed_rounds)
    remaining = rounds - len(fixed)

    frozen = np.zeros((n, n), dtype=np.int64)
    for round_ in fixed:
        for table in round_:
            idx = np.array([index[x] for x in table if x in index], dtype=np.int64)
            if len(idx) > 1:
                frozen[np.ix_(idx, idx)] += 1
    np.fill_diagonal(frozen, 0)
    prior = np.zeros((n, n), dtype=np.int64)
    for x, y in prior_meetings:
        if x in index and y in index and x != y:
            prior[index[x], index[y]] = prior[index[y], index[x]] = 1
    per_round = sum(s * (s - 1) // 2 for s in sizes)
    weight = rounds * per_round + 1  # one repeat outweighs every prior-session meeting together

    rng = random.Random(seed)
    start = time.perf_counter()
    planned: list[np.ndarray] = []
    steps_used: list[int] = []
    method = "local search"
    if remaining > 0 and n > 0:
        budgets = list(replay_steps) if replay_steps is not None else None
        base = _construction(fac, table_count)
        target = remaining if bound < 0 else min(remaining, bound)
        base_name = f"gf({table_count}) construction"
        if len(base) < target:
            design = _known_design(fac, table_count)
            if len(design) > len(base):
                kind = _DESIGNS[table_count, n // table_count].kind
                base, base_name = design, f"{kind} design {table_count}x{n // table_count}"
        if len(base) < target:
            lines = _line_construction(fac, table_count)
            if len(lines) > len(base):
                base, base_name = lines, f"gf({table_count + 1}) line construction"
        board = _Board(fac, sizes, frozen, prior, weight)
        for seat in base[:target]:
            board.add_round(seat)
        phase_a_deadline = start + 0.8 * time_limit
        phase_a_steps = int(0.8 * max_steps)

        def run(search_board: _Board, limit: int, deadline: float, stop_at_zero_repeats: bool,
                patience: int | None) -> None:
            if budgets is not None:
                limit = budgets.pop(0) if budgets else 0
            steps_used.append(_tabu_search(search_board, rng, limit, deadline, stop_at_zero_repeats, patience))

        if board.repeats() > 0:  # construction rounds clash with the fixed rounds
            run(board, phase_a_steps, phase_a_deadline, True, None)
        # Grow the repeat-free prefix one round at a time, searching over all its rounds.
        clean = [s.copy() for s in board.seats] if board.repeats() == 0 else []
        while len(clean) == len(board.seats) < target:
            anchors = _anchors(board)
            board.add_round(_greedy_round(board, rng, anchors), pinned=anchors >= 0)
            run(board, max(0, phase_a_steps - sum(steps_used)), phase_a_deadline, True, None)
            if board.repeats() == 0:
                clean = [s.copy() for s in board.seats]
        if len(clean) < len(board.seats):
            board.seats = clean
            board.rebuild()
        if prior.any() and board.seats:
            # Among repeat-free seatings, prefer pairs who never met in earlier sessions.
            run(board, max(0, phase_a_steps - sum(steps_used)), start + 0.9 * time_limit, False, 3)
        planned = [s.copy() for s in board.seats]
        if len(planned) < remaining:
            # Past the repeat-free prefix: keep it, seat the rest with as few and as spread repeats as possible.
            tail = _Board(fac, sizes, board.meet.copy(), prior, weight)
            for _ in range(remaining - len(planned)):
                tail.add_round(_greedy_round(tail, rng))
            run(tail, max(0, max_steps - sum(steps_used)), start + 0.9 * time_limit, False, 5)
            planned.extend(s.copy() for s in tail.seats)
        searched = any(steps_used)
        if base and len(base) >= len(planned) and not searched:
            method = base_name
        elif base:
            method = f"{base_name} + local search"
    elif remaining > 0:
        method = "empty"

    new_rounds: list[Round] = []
    for seat in planned:
        round_: list[list[int]] = [[] for _ in range(table_count)]
        for i, t in enumerate(seat.tolist()):
            round_[t].append(people[i].id)
        new_rounds.append(tuple(tuple(sorted(t)) for t in round_))
    while len(new_rounds) < remaining:
        new_rounds.append(tuple(() for _ in range(table_count)))
    all_rounds = fixed + tuple(new_rounds)
    repeats, clash_free = count_repeats(all_rounds)
    return RotationPlan(
        rounds=all_rounds,
        seed=seed,
        repeat_pairs=repeats,
        same_facility_pairs=_same_facility_pairs(all_rounds, facility_of),
        bound=bound,
        clash_free_rounds=clash_free,
        method=method,
        search_steps=tuple(steps_used),
    )
