"""The straightforward per-serial check: the tests' oracle and the bench's naive baseline.

It expands every block into its serials, so its cost grows with quantities, not with blocks:
use it on small inputs only.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import (
    ESCROWED,
    INCOMING,
    Block,
    ClassKey,
    ClassSummary,
    IssuanceRange,
    piece_order,
)
from .sweep import allowed_pair

#: (class, serial, first block, second block, allowed): the two blocks in a fixed order.
PairFact = tuple[ClassKey, int, Block, Block, bool]


@dataclass
class OracleResult:
    pairs: Counter[PairFact] = field(default_factory=Counter)
    #: (block, serial) for every serial of a block outside its issuer's issuances.
    uncovered: Counter[tuple[Block, int]] = field(default_factory=Counter)
    summary: dict[ClassKey, ClassSummary] = field(default_factory=dict)
    #: (class, serial) for every issued serial that no block of any registry covers.
    nowhere: set[tuple[ClassKey, int]] = field(default_factory=set)


def _key(b: Block) -> ClassKey:
    return (b.issuer, b.program, b.unit_type, b.vintage)


def brute_force(blocks: Iterable[Block], issuances: Iterable[IssuanceRange]) -> OracleResult:
    """Serial by serial: who has it, is every pair of places allowed, is it issued, is an
    issued serial held nowhere, and the conservation figures (an escrowed place also pinned as
    incoming of the same transfer in another registry counts once, as in transit)."""
    out = OracleResult()
    places: dict[tuple[ClassKey, int], list[Block]] = defaultdict(list)
    for b in blocks:
        for serial in range(b.start, b.end + 1):
            places[(_key(b), serial)].append(b)
    issued: dict[ClassKey, set[int]] = defaultdict(set)
    for r in issuances:
        key = (r.issuer, r.program, r.unit_type, r.vintage)
        out.summary.setdefault(key, ClassSummary()).issued += r.end - r.start + 1
        issued[key].update(range(r.start, r.end + 1))
    for (key, serial), here in sorted(places.items()):
        s = out.summary.setdefault(key, ClassSummary())
        for a, b in itertools.combinations(here, 2):
            first, second = sorted((a, b), key=piece_order)
            out.pairs[(key, serial, first, second, allowed_pair(a, b) is not None)] += 1
        for b in here:
            if serial not in issued[key]:
                out.uncovered[(b, serial)] += 1
            if b.state == ESCROWED:
                pinned = any(
                    o.state == INCOMING
                    and o.transfer_id == b.transfer_id
                    and o.registry != b.registry
                    for o in here
                )
                if not pinned:
                    s.escrowed += 1
            elif b.state == INCOMING:
                s.in_transit += 1
            else:
                setattr(s, b.state, getattr(s, b.state) + 1)
    for key, serials in issued.items():
        out.nowhere.update((key, serial) for serial in serials if (key, serial) not in places)
    out.summary = dict(sorted(out.summary.items()))
    return out
