"""Journal movements and the replay that rebuilds holdings from them.

The journal records movements (which serials went from where to where), never balances. Replay
applies every movement in order to an empty ledger and must arrive at exactly the stored
holdings; any difference means the journal and the holdings disagree.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from .holdings import BlockState
from .serials import SerialRange, UnitBlock, UnitClass, merge_adjacent


@dataclass(frozen=True, slots=True)
class Place:
    """Where serials sit: an account, a state, and who they are attributed to once final."""

    account_id: int
    state: BlockState
    attributed_account_id: int | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"account_id": self.account_id, "state": self.state.value}
        if self.attributed_account_id is not None:
            out["attributed_account_id"] = self.attributed_account_id
        return out


@dataclass(frozen=True, slots=True)
class Movement:
    """Serials moved from one place to another.

    ``origin`` is None when serials enter this registry (issuance, or an interstate transfer's
    incoming pin); ``destination`` is None when they leave it (a debit at the commit point, or an
    unpin when a transfer is voided).
    """

    block: UnitBlock
    origin: Place | None
    destination: Place | None

    def to_dict(self) -> dict[str, object]:
        return {
            **self.block.to_dict(),
            "from": self.origin.to_dict() if self.origin else None,
            "to": self.destination.to_dict() if self.destination else None,
        }


LedgerKey = tuple[Place, UnitClass]


class ReplayError(Exception):
    pass


class _RangeSet:
    """Disjoint ranges kept sorted by start; removal must hit a range that contains it."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, r: SerialRange) -> None:
        i = bisect.bisect_left(self.starts, r.start)
        if (i > 0 and self.ends[i - 1] >= r.start) or (
            i < len(self.starts) and self.starts[i] <= r.end
        ):
            raise ReplayError(f"serials {r} would be held twice")
        self.starts.insert(i, r.start)
        self.ends.insert(i, r.end)

    def remove(self, r: SerialRange) -> None:
        i = bisect.bisect_right(self.starts, r.start) - 1
        if i < 0 or self.ends[i] < r.end:
            raise ReplayError(f"serials {r} moved from a place that did not hold them")
        start, end = self.starts[i], self.ends[i]
        del self.starts[i], self.ends[i]
        for piece in SerialRange(start, end).minus(r):
            self.add(piece)

    def ranges(self) -> list[SerialRange]:
        return [SerialRange(s, e) for s, e in zip(self.starts, self.ends, strict=True)]


def replay(movements: Iterable[Movement]) -> dict[LedgerKey, list[SerialRange]]:
    """Apply movements in order; return each place's serials in canonical (merged) form."""
    ledger: dict[LedgerKey, _RangeSet] = {}
    # Every serial anywhere in the registry, per class: no movement may put it in two places.
    everywhere: dict[UnitClass, _RangeSet] = {}
    for m in movements:
        uc = m.block.unit_class
        if m.origin is not None:
            source = ledger.get((m.origin, uc))
            if source is None:
                raise ReplayError(f"{m.block} moved from {m.origin} which never held it")
            source.remove(m.block.serials)
            everywhere[uc].remove(m.block.serials)
        if m.destination is None:
            continue  # left the registry
        everywhere.setdefault(uc, _RangeSet()).add(m.block.serials)
        ledger.setdefault((m.destination, uc), _RangeSet()).add(m.block.serials)
    return {key: merge_adjacent(rs.ranges()) for key, rs in ledger.items() if rs.starts}


def canonical(blocks: Iterable[tuple[Place, UnitBlock]]) -> dict[LedgerKey, list[SerialRange]]:
    """Stored holdings in the same canonical form as :func:`replay`."""
    grouped: dict[LedgerKey, list[SerialRange]] = {}
    for place, block in blocks:
        grouped.setdefault((place, block.unit_class), []).append(block.serials)
    return {key: merge_adjacent(ranges) for key, ranges in grouped.items()}
