"""Explanations: differences that a transfer settling between two registries' reads accounts for.

Registries are read at slightly different moments, so a transfer can settle between two reads:
its units then look held twice (the source read before they left, the destination after they
arrived) or held nowhere (the source read after its debit, the destination before its pin).
After the run each registry's journal after its snapshot position is fetched: a
:class:`JournalWindow` of moves and of that registry's current transfer records. :func:`explain`
moves a discrepancy to ``explained`` only by a transfer id that both sides' current records
show (naming each other) and whose moves, replayed from what the snapshots showed, resolve it.
It never compares two nodes' clocks: only each registry's own order of its own journal.

The rules (docs/reconciliation.md has them as a table):

* ``SERIAL_IN_TWO_PLACES`` between A and B on serials X of class c: for every serial of X some
  transfer T, recorded by A and B as a transfer between them (one source, one destination,
  each naming the other), whose moves in the source's and the destination's windows, replayed
  from the two blocks' states, are protocol moves of that side, continue from the state read,
  and leave the serial in exactly one of the two registries (or escrowed for T at the source
  and pinned for T at the destination). The destination's block, if incoming, is pinned for T.
  Neither registry may hold any serial of X twice, and T may move X in no third registry.
* ``UNITS_HELD_NOWHERE`` X: the same, from nothing at either side, with T's source and
  destination taken from the records (the gap's issuer need not be either).
* ``TRANSFER_LOGS_DISAGREE`` for T: T moved in its source's or destination's window, both
  current records exist, satisfy check 5, and continue the records read (same side, peer and
  quantity; a final status unchanged, an accepted one only completed or cancelled since; a
  settled record still settled).
* ``SUPPLY_NOT_CONSERVED`` of a class: no serial discrepancy of the class is left, at least one
  was explained, and accounted − issued equals the explained overlaps' quantity minus the
  explained held-nowhere quantity (so every serial was in at most two places, none issued twice).
* Anything else (``TOTALS_MISMATCH``, ``UNIT_WITHOUT_ISSUER``, ``SERIAL_TWICE_IN_REGISTRY``,
  ``IN_TRANSIT_TOO_LONG``) is never explained, and nothing is explained in a truncated result
  (the discrepancies it dropped could contradict what it kept).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .model import (
    ESCROWED,
    HELD,
    INCOMING,
    TRANSFER_STATES,
    Block,
    ClassKey,
    Discrepancy,
    JournalMove,
    JournalWindow,
    Kind,
    ReconciliationResult,
    TransferRecord,
)
from .transfer_logs import (
    ACCEPTED,
    CANCELLED,
    COMPLETED,
    DESTINATION,
    FINAL_STATUSES,
    SOURCE,
    disagreement,
    parties,
)

#: A serial's place in one registry: (state, the transfer it is escrowed/pinned for), or None.
Place = tuple[str, str | None] | None

#: The moves each side of a transfer makes to its serials, as (from_state, to_state).
SOURCE_MOVES = frozenset({(HELD, ESCROWED), (ESCROWED, None), (ESCROWED, HELD)})
DESTINATION_MOVES = frozenset({(None, INCOMING), (INCOMING, HELD), (INCOMING, None)})

#: Kinds whose findings are serial ranges that SUPPLY_NOT_CONSERVED depends on.
_SERIAL_KINDS = frozenset(
    {
        Kind.SERIAL_IN_TWO_PLACES,
        Kind.SERIAL_TWICE_IN_REGISTRY,
        Kind.UNIT_WITHOUT_ISSUER,
        Kind.UNITS_HELD_NOWHERE,
    }
)


class _Broken:
    """A replay that does not continue from what the snapshot showed."""


_BROKEN = _Broken()


def _class_of(m: JournalMove) -> ClassKey:
    return (m.issuer, m.program, m.unit_type, m.vintage)


class _Index:
    """The windows' moves by (registry, class) in start order and by transfer; their records."""

    def __init__(self, windows: Mapping[str, JournalWindow]) -> None:
        self.records: dict[str, Mapping[str, TransferRecord]] = {}
        places: dict[tuple[str, ClassKey], list[JournalMove]] = defaultdict(list)
        self.by_transfer: dict[str, dict[str, list[JournalMove]]] = defaultdict(dict)
        for registry, window in windows.items():
            # Evidence from a window is that registry's own: anything else in it is ignored.
            self.records[registry] = window.records
            for m in window.moves:
                if m.registry == registry == window.registry:
                    places[(registry, _class_of(m))].append(m)
                    self.by_transfer[m.transfer_id].setdefault(registry, []).append(m)
        self.places: dict[tuple[str, ClassKey], tuple[list[int], list[JournalMove], int]] = {}
        for key, moves in places.items():
            moves.sort(key=lambda m: (m.start, m.seq))
            longest = max(m.end - m.start for m in moves)
            self.places[key] = ([m.start for m in moves], moves, longest)
        for per_registry in self.by_transfer.values():
            for moves in per_registry.values():
                moves.sort(key=lambda m: m.seq)

    def record(self, registry: str, transfer_id: str) -> TransferRecord | None:
        r = self.records.get(registry, {}).get(transfer_id)
        if r is None or r.registry != registry or r.transfer_id != transfer_id:
            return None
        return r

    def touching(self, registry: str, cls: ClassKey, start: int, end: int) -> Iterator[JournalMove]:
        """Moves in ``registry``'s window of class ``cls`` that touch [start, end]."""
        entry = self.places.get((registry, cls))
        if entry is None:
            return
        starts, moves, longest = entry
        lo = bisect.bisect_left(starts, start - longest)
        hi = bisect.bisect_right(starts, end)
        for m in moves[lo:hi]:
            if m.end >= start:
                yield m

    def moved(self, transfer_id: str, registry: str) -> list[JournalMove]:
        return self.by_transfer.get(transfer_id, {}).get(registry, [])


def _pair(
    idx: _Index, transfer_id: str, a: str, b: str
) -> tuple[TransferRecord, TransferRecord] | None:
    """(source record, destination record) if ``a``'s and ``b``'s current records both show
    the transfer as one between them (one side each, each naming the other)."""
    ra, rb = idx.record(a, transfer_id), idx.record(b, transfer_id)
    if ra is None or rb is None or a == b:
        return None
    if {ra.side, rb.side} != {SOURCE, DESTINATION} or ra.peer != b or rb.peer != a:
        return None
    return (ra, rb) if ra.side == SOURCE else (rb, ra)


def _replay(
    place: Place, moves: Sequence[JournalMove], allowed: frozenset[tuple[str | None, str | None]]
) -> Place | _Broken:
    """Apply one side's moves of a transfer (in its journal order) to a serial's place."""
    for m in moves:
        if (m.from_state, m.to_state) not in allowed:
            return _BROKEN
        state = place[0] if place is not None else None
        if state != m.from_state:
            return _BROKEN
        if place is not None and state in TRANSFER_STATES and place[1] != m.transfer_id:
            return _BROKEN
        if m.to_state is None:
            place = None
        else:
            place = (m.to_state, m.transfer_id if m.to_state in TRANSFER_STATES else None)
    return place


def _resolved(
    idx: _Index,
    transfer_id: str,
    cls: ClassKey,
    start: int,
    end: int,
    source: str,
    destination: str,
    at_source: Place,
    at_destination: Place,
) -> list[tuple[int, int]]:
    """The sub-ranges of [start, end] that the transfer's moves resolve, from the places read.

    Resolved: the serial ends in exactly one of the two registries, or escrowed for the
    transfer at the source and pinned for it at the destination (in transit)."""
    ms = [
        m
        for m in idx.moved(transfer_id, source)
        if _class_of(m) == cls and m.start <= end and m.end >= start
    ]
    md = [
        m
        for m in idx.moved(transfer_id, destination)
        if _class_of(m) == cls and m.start <= end and m.end >= start
    ]
    if not ms and not md:
        return []
    cuts = {start, end + 1}
    for m in itertools.chain(ms, md):
        cuts.add(max(m.start, start))
        cuts.add(min(m.end, end) + 1)
    out: list[tuple[int, int]] = []
    in_transit = ((ESCROWED, transfer_id), (INCOMING, transfer_id))
    for a, z1 in itertools.pairwise(sorted(cuts)):
        z = z1 - 1
        fs = _replay(at_source, [m for m in ms if m.start <= a and z <= m.end], SOURCE_MOVES)
        fd = _replay(
            at_destination, [m for m in md if m.start <= a and z <= m.end], DESTINATION_MOVES
        )
        if isinstance(fs, _Broken) or isinstance(fd, _Broken):
            continue
        if (fs is None) != (fd is None) or (fs, fd) == in_transit:
            if out and out[-1][1] + 1 == a:
                out[-1] = (out[-1][0], z)
            else:
                out.append((a, z))
    return out


def _only_between(
    idx: _Index, transfer_id: str, cls: ClassKey, start: int, end: int, allowed: tuple[str, str]
) -> bool:
    """The transfer moves these serials in no registry but its two."""
    for registry, moves in idx.by_transfer.get(transfer_id, {}).items():
        if registry in allowed:
            continue
        if any(_class_of(m) == cls and m.start <= end and m.end >= start for m in moves):
            return False
    return True


def _covers(parts: Sequence[tuple[int, int]], start: int, end: int) -> bool:
    pos = start
    for a, z in sorted(parts):
        if a > pos:
            return False
        pos = max(pos, z + 1)
        if pos > end:
            return True
    return pos > end


def _place(b: Block) -> Place:
    return (b.state, b.transfer_id if b.state in TRANSFER_STATES else None)


#: (transfer id, source, destination, resolved sub-ranges)
_Part = tuple[str, str, str, list[tuple[int, int]]]


def _naming(parts: Sequence[_Part]) -> str:
    if len(parts) == 1:
        tid, src, dst, _ = parts[0]
        return f"transfer {tid} ({src} to {dst})"
    shown = []
    for tid, src, dst, ranges in parts:
        spans = ", ".join(f"{a}-{z}" if a != z else f"{a}" for a, z in ranges)
        shown.append(f"{tid} ({src} to {dst}: {spans})")
    return "transfers " + ", ".join(shown)


class _Explainer:
    def __init__(self, result: ReconciliationResult, windows: Mapping[str, JournalWindow]):
        self.idx = _Index(windows)
        # Serials some registry holds twice: its snapshot cannot vouch for them.
        self.twice: dict[tuple[str, ClassKey], list[tuple[int, int]]] = defaultdict(list)
        for d in result.discrepancies:
            if d.kind == Kind.SERIAL_TWICE_IN_REGISTRY and d.start is not None:
                assert d.end is not None
                self.twice[(d.registries[0], d.unit_class)].append((d.start, d.end))

    def held_twice(self, registry: str, cls: ClassKey, start: int, end: int) -> bool:
        return any(a <= end and start <= z for a, z in self.twice.get((registry, cls), ()))

    def overlap(self, d: Discrepancy) -> tuple[str, tuple[str, ...]] | None:
        assert d.start is not None and d.end is not None and len(d.pieces) == 2
        cls, start, end = d.unit_class, d.start, d.end
        p, q = d.pieces
        a, b = p.registry, q.registry
        if a == b or self.held_twice(a, cls, start, end) or self.held_twice(b, cls, start, end):
            return None
        void = self.void_in_flight(p, q)
        if void is not None:
            return void
        candidates = sorted(
            {m.transfer_id for r in (a, b) for m in self.idx.touching(r, cls, start, end)}
        )
        parts: list[_Part] = []
        for tid in candidates:
            pair = _pair(self.idx, tid, a, b)
            if pair is None or not _only_between(self.idx, tid, cls, start, end, (a, b)):
                continue
            src, dst = pair[0].registry, pair[1].registry
            at_src, at_dst = (p, q) if p.registry == src else (q, p)
            if at_dst.state == INCOMING and at_dst.transfer_id != tid:
                continue
            ranges = _resolved(
                self.idx, tid, cls, start, end, src, dst, _place(at_src), _place(at_dst)
            )
            if ranges:
                parts.append((tid, src, dst, ranges))
        if not _covers([r for part in parts for r in part[3]], start, end):
            return None
        return (
            f"{_naming(parts)} settled between the two registries' reads: "
            "its moves after each read leave these serials in one place",
            tuple(part[0] for part in parts),
        )

    def void_in_flight(self, p: Block, q: Block) -> tuple[str, tuple[str, ...]] | None:
        """A source that voided a transfer releases its escrow at once; the destination unpins
        when the void reaches it. Between the two, one consistent moment shows the serials held
        at the source and still pinned (incoming, never to be credited) at the destination:
        a legitimate state, recognised only while both registries' current records show it:
        cancelled at the source and not yet settled (the destination has not acknowledged the
        void), still accepted at the destination. Once the void arrived, only the window's
        unpin explains the overlap."""
        held, pinned = (p, q) if q.state == INCOMING else (q, p)
        tid = pinned.transfer_id
        if held.state != HELD or pinned.state != INCOMING or tid is None:
            return None
        source = self.idx.record(held.registry, tid)
        destination = self.idx.record(pinned.registry, tid)
        if source is None or destination is None:
            return None
        if (source.side, source.peer, source.status) != ("source", pinned.registry, "cancelled"):
            return None
        if source.settled:
            return None
        if (destination.side, destination.peer, destination.status) != (
            "destination",
            held.registry,
            "accepted",
        ):
            return None
        return (
            f"transfer {tid} was voided by its source {held.registry}, which released the "
            f"serials; the void had not reached {pinned.registry}, which still pinned them "
            "(never to be credited)",
            (tid,),
        )

    def nowhere(self, d: Discrepancy) -> tuple[str, tuple[str, ...]] | None:
        assert d.start is not None and d.end is not None
        cls, start, end = d.unit_class, d.start, d.end
        moved_at: dict[str, set[str]] = defaultdict(set)
        for r in self.idx.records:
            for m in self.idx.touching(r, cls, start, end):
                moved_at[m.transfer_id].add(r)
        parts: list[_Part] = []
        for tid in sorted(moved_at):
            # Its two registries, as the records of a registry it moved in name them.
            pairs = (_pair(self.idx, tid, r, self._peer(r, tid)) for r in sorted(moved_at[tid]))
            pair = next((p for p in pairs if p is not None), None)
            if pair is None:
                continue
            src, dst = pair[0].registry, pair[1].registry
            if not _only_between(self.idx, tid, cls, start, end, (src, dst)):
                continue
            ranges = _resolved(self.idx, tid, cls, start, end, src, dst, None, None)
            if ranges:
                parts.append((tid, src, dst, ranges))
        if not _covers([r for part in parts for r in part[3]], start, end):
            return None
        return (
            f"{_naming(parts)} was under way between the two registries' reads: "
            "gone from one when it was read, not yet arrived at the other",
            tuple(part[0] for part in parts),
        )

    def _peer(self, registry: str, transfer_id: str) -> str:
        mine = self.idx.record(registry, transfer_id)
        return mine.peer if mine is not None else registry  # no pair with itself

    def logs(self, d: Discrepancy) -> tuple[str, tuple[str, ...]] | None:
        details = dict(d.details)
        read_src, read_dst = details.get("source"), details.get("destination")
        if details.get("also") or details.get("rule") == "SIDE_TWICE" or len(d.transfer_ids) != 1:
            return None
        if not _record_or_none(read_src) or not _record_or_none(read_dst):
            return None
        tid = d.transfer_ids[0]
        src, dst = parties(read_src, read_dst)
        if src is None or dst is None:
            return None
        pair = _pair(self.idx, tid, src, dst)
        if pair is None or pair[0].registry != src:
            return None
        now_src, now_dst = pair
        if disagreement(now_src, now_dst) is not None:
            return None
        if not (_continues(read_src, now_src) and _continues(read_dst, now_dst)):
            return None
        if not (self.idx.moved(tid, src) or self.idx.moved(tid, dst)):
            return None
        return (
            f"transfer {tid} progressed between the two registries' reads: now {src} has it "
            f"{now_src.status}, {dst} {now_dst.status}, which agree",
            (tid,),
        )


def _record_or_none(value: Any) -> bool:
    return value is None or isinstance(value, TransferRecord)


def _continues(before: TransferRecord | None, after: TransferRecord) -> bool:
    """``after`` can be the same registry's record of the transfer some time after ``before``."""
    if before is None:
        return True
    same = (before.registry, before.side, before.peer, before.quantity)
    if same != (after.registry, after.side, after.peer, after.quantity):
        return False
    if before.settled and not after.settled:
        return False
    if before.status in FINAL_STATUSES:
        return after.status == before.status
    if before.status == ACCEPTED:
        return after.status in (ACCEPTED, COMPLETED, CANCELLED)
    return True


def explain(
    result: ReconciliationResult, windows: Mapping[str, JournalWindow]
) -> ReconciliationResult:
    """A new result with the discrepancies the journal windows explain moved to ``explained``
    (each with a one-line reason naming the transfer). ``windows`` maps a registry's code to
    its window; the input result is not changed. See the module's rules."""
    explained = list(result.explained)
    kept: list[Discrepancy] = []
    if result.truncated:
        kept = list(result.discrepancies)
    else:
        ex = _Explainer(result, windows)
        supply: list[Discrepancy] = []
        by: dict[int, tuple[str, ...]] = {}  # id of a finding explained here -> its transfers
        for d in result.discrepancies:
            why: tuple[str, tuple[str, ...]] | None = None
            if d.kind == Kind.SERIAL_IN_TWO_PLACES:
                why = ex.overlap(d)
            elif d.kind == Kind.UNITS_HELD_NOWHERE:
                why = ex.nowhere(d)
            elif d.kind == Kind.TRANSFER_LOGS_DISAGREE:
                why = ex.logs(d)
            elif d.kind == Kind.SUPPLY_NOT_CONSERVED:
                supply.append(d)
                continue
            if why is None:
                kept.append(d)
            else:
                explained.append((d, why[0]))
                by[id(d)] = why[1]
        for d in supply:
            reason = _supply(d, kept, explained, by)
            if reason is None:
                kept.append(d)
            else:
                explained.append((d, reason))
    kept.sort(key=Discrepancy.sort_key)
    explained.sort(key=lambda e: e[0].sort_key())
    return ReconciliationResult(
        discrepancies=kept,
        in_transit=list(result.in_transit),
        summary={k: dataclasses.replace(s) for k, s in result.summary.items()},
        counts={**result.counts, "explained": len(explained)},
        truncated=result.truncated,
        explained=explained,
    )


def _supply(
    d: Discrepancy,
    kept: Sequence[Discrepancy],
    explained: Sequence[tuple[Discrepancy, str]],
    by: Mapping[int, tuple[str, ...]],
) -> str | None:
    cls = d.unit_class
    if any(k.unit_class == cls and k.kind in _SERIAL_KINDS for k in kept):
        return None
    twice = missing = 0
    transfers: set[str] = set()
    for e, _ in explained:
        if e.unit_class != cls or e.start is None or e.end is None:
            continue
        if e.kind == Kind.SERIAL_IN_TWO_PLACES:
            twice += e.end - e.start + 1
        elif e.kind == Kind.UNITS_HELD_NOWHERE:
            missing += e.end - e.start + 1
        else:
            continue
        transfers.update(by.get(id(e), ()))
    details = dict(d.details)
    imbalance = details["accounted"] - details["issued"]
    if not (twice or missing) or imbalance != twice - missing:
        return None
    return (
        f"accounted - issued = {imbalance}: {twice} serials read in two places and {missing} "
        f"read nowhere, all explained (transfers {', '.join(sorted(transfers)) or 'above'})"
    )


def records_wanted(
    result: ReconciliationResult, windows: Mapping[str, JournalWindow]
) -> dict[str, set[str]]:
    """Which registries' records of which transfers :func:`explain` would read that the
    windows do not hold yet: ask each registry's journal for them (``transfer_ids``) before
    explaining. Only the transfers that moved over a finding's serials, and those check 5
    names, are asked for."""
    idx = _Index(windows)
    want: dict[str, set[str]] = defaultdict(set)
    for d in result.discrepancies:
        if d.kind == Kind.SERIAL_IN_TWO_PLACES and d.start is not None and d.end is not None:
            here = {p.registry for p in d.pieces}
            for r in here:
                for m in idx.touching(r, d.unit_class, d.start, d.end):
                    for other in here:
                        want[other].add(m.transfer_id)
        elif d.kind == Kind.UNITS_HELD_NOWHERE and d.start is not None and d.end is not None:
            for r in list(idx.records):
                for m in idx.touching(r, d.unit_class, d.start, d.end):
                    want[r].add(m.transfer_id)
                    mine = idx.record(r, m.transfer_id)
                    if mine is not None:
                        want[mine.peer].add(m.transfer_id)
        elif d.kind == Kind.TRANSFER_LOGS_DISAGREE and len(d.transfer_ids) == 1:
            details = dict(d.details)
            read_src, read_dst = details.get("source"), details.get("destination")
            if _record_or_none(read_src) and _record_or_none(read_dst):
                for party in parties(read_src, read_dst):
                    if party is not None:
                        want[party].add(d.transfer_ids[0])
    out: dict[str, set[str]] = {}
    for registry in sorted(want):
        missing = {t for t in want[registry] if idx.record(registry, t) is None}
        if missing:
            out[registry] = missing
    return out
