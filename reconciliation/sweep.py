"""The sweep: merge every registry's sorted block stream and check them in one pass.

Per unit class, blocks arrive in start order from ``heapq.merge``; the *open set* is a heap of the
blocks seen so far ordered by end. A new block first closes every open block that ends before it
starts; every block still open then contains the new block's start, so each is an overlap (and
nothing else is). Cost O(n log n + k) for n blocks and k overlapping pairs (log of the open set,
which is one or two blocks on a sound federation); memory is the open set plus the issuance
ranges that reach past the current serial, never the whole input.

The same pass checks issuance coverage (check 2), adds up the conservation figures (check 3),
names every issued serial no block covers (check 3, by range: a gap is seen when the open set
empties before the next block's start, so the per-block cost is one comparison) and each
registry's totals (check 4). Ages of transfers in transit are only looked up at the end,
once the streams' trailers (totals, unsettled transfers) have been read.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .model import (
    ALLOWED_PAIRS,
    DEFAULT_SETTLEMENT_LIMIT_S,
    ESCROWED,
    HELD,
    INCOMING,
    RETIRED,
    STATES,
    SURRENDERED,
    TRANSFER_STATES,
    AllowedPair,
    Block,
    ClassKey,
    ClassSummary,
    Discrepancy,
    InTransit,
    IssuanceRange,
    Kind,
    MalformedSnapshot,
    ReconciliationResult,
    RegistrySnapshot,
    TotalsKey,
    UnsettledTransfer,
    piece_order,
)
from .transfer_logs import check_transfer_logs

_STATE_SET = frozenset(STATES)


def allowed_pair(a: Block, b: Block) -> AllowedPair | None:
    """The row of :data:`ALLOWED_PAIRS` that lets ``a`` and ``b`` share serials, if any."""
    states = {a.state, b.state}
    for pair in ALLOWED_PAIRS:
        if states != pair.states or (len(pair.states) == 2 and a.state == b.state):
            continue
        if pair.same_transfer_id and (a.transfer_id is None or a.transfer_id != b.transfer_id):
            continue
        if pair.different_registries and a.registry == b.registry:
            continue
        return pair
    return None


def _union_length(ranges: list[tuple[int, int]]) -> int:
    total, last = 0, -1
    for a, z in sorted(ranges):
        if z <= last:
            continue
        total += z - max(a, last + 1) + 1
        last = z
    return total


def _minus(start: int, end: int, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [start, end] no range covers."""
    out: list[tuple[int, int]] = []
    pos = start
    for a, z in sorted(ranges):
        if a > pos:
            out.append((pos, min(a - 1, end)))
        pos = max(pos, z + 1)
        if pos > end:
            break
    if pos <= end:
        out.append((pos, end))
    return out


def _checked_issuances(registry: str, ranges: Iterable[IssuanceRange]) -> Iterator[IssuanceRange]:
    for r in ranges:
        if r.issuer != registry:
            raise MalformedSnapshot(registry, f"reports an issuance of {r.issuer}: {r}")
        if not 0 <= r.start <= r.end:
            raise MalformedSnapshot(registry, f"issuance range is empty or negative: {r}")
        yield r


class _Run:
    def __init__(self, limit_s: float, max_discrepancies: int) -> None:
        self.limit_s = limit_s
        self.max_discrepancies = max_discrepancies
        self.discrepancies: list[Discrepancy] = []
        self.found = 0
        self.by_kind: dict[str, int] = {}
        self.in_transit: list[InTransit] = []
        self.summary: dict[ClassKey, ClassSummary] = {}
        self.totals: dict[str, dict[TotalsKey, int]] = {}
        self.blocks = 0
        self.issuances = 0
        self.overlaps = 0
        self.allowed_overlaps = 0
        self.max_open = 0
        # The current class.
        self.cls: ClassKey = ("", "", "", 0)
        self.state_totals: dict[tuple[str, str], int] = {}
        self.paired_escrow = 0

    # -- findings ------------------------------------------------------------------------------

    def emit(self, d: Discrepancy) -> None:
        self.found += 1
        self.by_kind[d.kind] = self.by_kind.get(d.kind, 0) + 1
        if len(self.discrepancies) < self.max_discrepancies:
            self.discrepancies.append(d)

    def overlap(self, new: list[Any], open_set: list[list[Any]]) -> None:
        b: Block = new[2]
        for ent in open_set:
            a: Block = ent[2]
            start, end = b.start, min(a.end, b.end)
            self.overlaps += 1
            if allowed_pair(a, b) is not None:
                self.allowed_overlaps += 1
                esc, inc = (ent, new) if a.state == ESCROWED else (new, ent)
                if esc[3] is None:
                    esc[3] = []
                esc[3].append((start, end))
                inc[3].append((start, end))
                self._in_transit(inc[2], start, end, source=esc[2].registry, escrowed=True)
                continue
            first, second = sorted((a, b), key=piece_order)
            kind = (
                Kind.SERIAL_TWICE_IN_REGISTRY
                if a.registry == b.registry
                else Kind.SERIAL_IN_TWO_PLACES
            )
            self.emit(
                Discrepancy(
                    kind,
                    tuple(sorted({a.registry, b.registry})),
                    *self.cls,
                    start,
                    end,
                    (first, second),
                    tuple(sorted({t for t in (a.transfer_id, b.transfer_id) if t is not None})),
                )
            )

    def _in_transit(
        self, inc: Block, start: int, end: int, *, source: str | None, escrowed: bool
    ) -> None:
        assert inc.transfer_id is not None
        self.in_transit.append(
            InTransit(
                inc.transfer_id,
                source,
                inc.registry,
                *self.cls,
                start,
                end,
                escrowed,
                None,
            )
        )

    def close(self, ent: list[Any]) -> None:
        """An open block whose in-transit bookkeeping needs finishing (its list is set)."""
        b: Block = ent[2]
        if b.state == ESCROWED:
            self.paired_escrow += _union_length(ent[3])
        else:  # incoming: what its source no longer escrows was debited there, still in transit
            for start, end in _minus(b.start, b.end, ent[3]):
                self._in_transit(b, start, end, source=None, escrowed=False)

    def check_block(self, b: Block) -> None:
        """The rare path of a block that is not plainly held: validate it."""
        if b.state not in _STATE_SET:
            raise MalformedSnapshot(b.registry, f"unknown block state {b.state!r}: {b}")
        if b.state in TRANSFER_STATES and not b.transfer_id:
            raise MalformedSnapshot(b.registry, f"{b.state} block without a transfer id: {b}")

    def uncovered(self, b: Block, pieces: deque[list[int]]) -> None:
        gaps: list[tuple[int, int]] = []
        pos, end = b.start, b.end
        for a, z in pieces:
            if a > end:
                break
            if a > pos:
                gaps.append((pos, a - 1))
            pos = max(pos, z + 1)
            if pos > end:
                break
        if pos <= end:
            gaps.append((pos, end))
        for start, stop in gaps:
            self.emit(
                Discrepancy(
                    Kind.UNIT_WITHOUT_ISSUER,
                    (b.registry,),
                    *self.cls,
                    start,
                    stop,
                    (b,),
                    (b.transfer_id,) if b.transfer_id else (),
                )
            )

    def held_nowhere(self, start: int, end: int) -> None:
        """Issued serials of the current class that no registry reports (a maximal range)."""
        self.emit(
            Discrepancy(
                Kind.UNITS_HELD_NOWHERE,
                (self.cls[0],),
                *self.cls,
                start,
                end,
                details=(("quantity", end - start + 1),),
            )
        )

    def finish_class(self, issued: int) -> None:
        """Conservation and totals of the current class (every open block already closed)."""
        s = ClassSummary(issued=issued)
        registries = {self.cls[0]}
        totals = self.totals
        for (registry, state), qty in self.state_totals.items():
            if state == HELD:
                s.held += qty
            elif state == ESCROWED:
                s.escrowed += qty
            elif state == INCOMING:
                s.in_transit += qty
            elif state == SURRENDERED:
                s.surrendered += qty
            elif state == RETIRED:
                s.retired += qty
            registries.add(registry)
            totals.setdefault(registry, {})[(*self.cls, state)] = qty
        s.escrowed -= self.paired_escrow
        self.summary[self.cls] = s
        if not s.conserved:
            self.emit(
                Discrepancy(
                    Kind.SUPPLY_NOT_CONSERVED,
                    tuple(sorted(registries)),
                    *self.cls,
                    None,
                    None,
                    details=(("accounted", s.accounted), *s.to_dict().items()),
                )
            )
        self.state_totals.clear()  # the sweep holds this dict: clear it, never replace it
        self.paired_escrow = 0


def _class_of(r: IssuanceRange | Block) -> ClassKey:
    return (r.issuer, r.program, r.unit_type, r.vintage)


def reconcile(
    snapshots: Sequence[RegistrySnapshot],
    *,
    settlement_limit_s: float = DEFAULT_SETTLEMENT_LIMIT_S,
    max_discrepancies: int = 100_000,
) -> ReconciliationResult:
    """Check every registry's snapshot against the others (checks 1-5 of issue 5).

    Streams are consumed once, lazily: the blocks and issuances in one merged pass, then the
    transfer records (check 5), then the trailers (totals, unsettled transfers). A stream that
    breaks its contract raises :class:`MalformedSnapshot`. At most ``max_discrepancies`` are
    kept (``truncated`` says when more were found; ``counts`` has them all). Differences that a
    transfer settling between two reads explains are moved aside by
    :func:`regfed.reconciliation.explain.explain`, given the registries' journal windows.
    """
    codes = [s.registry for s in snapshots]
    if len(set(codes)) != len(codes):
        raise MalformedSnapshot(None, f"registries reported twice: {sorted(codes)}")
    run = _Run(settlement_limit_s, max_discrepancies)
    blocks: Iterator[Block] = heapq.merge(*(s.blocks for s in snapshots))
    issuances: Iterator[IssuanceRange] = heapq.merge(
        *(_checked_issuances(s.registry, s.issuances) for s in snapshots)
    )
    _sweep(run, blocks, issuances)
    records, transfers = check_transfer_logs(run.emit, snapshots)
    _check_totals(run, snapshots)
    _age_in_transit(run, snapshots)

    kept = run.discrepancies
    kept.sort(key=Discrepancy.sort_key)
    run.in_transit.sort(key=InTransit.sort_key)
    counts = {
        "registries": len(snapshots),
        "blocks": run.blocks,
        "issuances": run.issuances,
        "classes": len(run.summary),
        "overlaps": run.overlaps,
        "allowed_overlaps": run.allowed_overlaps,
        "in_transit": len(run.in_transit),
        "transfer_records": records,
        "transfers": transfers,
        "discrepancies_found": run.found,
        "max_open_blocks": run.max_open,
        **{f"discrepancies.{k}": v for k, v in sorted(run.by_kind.items())},
    }
    return ReconciliationResult(
        discrepancies=kept,
        in_transit=run.in_transit,
        summary=run.summary,
        counts=counts,
        truncated=run.found > len(run.discrepancies),
    )


def _sweep(run: _Run, blocks: Iterator[Block], issuances: Iterator[IssuanceRange]) -> None:
    heappush, heappop = heapq.heappush, heapq.heappop
    open_set: list[list[Any]] = []
    pieces: deque[list[int]] = deque()  # union of the class's issuance ranges from here on
    nxt: IssuanceRange | None = next(issuances, None)
    nxt_here = False  # nxt belongs to the current class
    nxt_start = 0
    cov_a, cov_z = 0, -1  # the issuance piece the last block lay in
    issued = 0
    ci, cp, ct, cv = "", "", "", -1
    cls: ClassKey | None = None
    prev_start = -1
    prev_issuance: tuple[ClassKey, int] | None = None
    n = 0
    state_totals = run.state_totals

    def advance() -> None:
        nonlocal nxt, nxt_here, nxt_start, prev_issuance
        assert nxt is not None
        key = (_class_of(nxt), nxt.start)
        if prev_issuance is not None and key < prev_issuance:
            raise MalformedSnapshot(nxt.issuer, f"issuances not sorted at {nxt}")
        prev_issuance = key
        run.issuances += 1
        nxt = next(issuances, None)
        nxt_here = nxt is not None and _class_of(nxt) == cls
        nxt_start = nxt.start if nxt is not None else 0

    def pull(upto: int) -> int:
        """Take the class's issuances starting at or before ``upto`` into ``pieces``."""
        added = 0
        while nxt_here and nxt_start <= upto:
            assert nxt is not None
            a, z = nxt.start, nxt.end
            added += z - a + 1
            if pieces and a <= pieces[-1][1] + 1:
                pieces[-1][1] = max(pieces[-1][1], z)
            else:
                pieces.append([a, z])
            advance()
        return added

    def nowhere(start: int, end: int) -> None:
        """No block covers [start, end]: report the issued serials in it, by maximal range.
        (Pieces are merged when adjacent, so a gap between two blocks meets each at most
        once; pieces wholly before the gap were already checked.)"""
        nonlocal issued
        issued += pull(end)
        while pieces and pieces[0][1] < start:
            pieces.popleft()
        for a, z in pieces:
            if a > end:
                break
            run.held_nowhere(max(a, start), min(z, end))

    def end_class() -> None:
        nonlocal issued
        reach = -1
        while open_set:
            ent = heappop(open_set)
            reach = ent[0]  # popped by end: the last one reaches furthest
            if ent[3] is not None:
                run.close(ent)
        nowhere(reach + 1, 2**63)
        run.finish_class(issued)
        issued = 0
        pieces.clear()

    def begin_class(new: ClassKey | None) -> None:
        """Classes issued but holding no block anywhere come before ``new``."""
        nonlocal cls, nxt_here, issued
        while nxt is not None and (new is None or _class_of(nxt) < new):
            cls = run.cls = _class_of(nxt)
            nxt_here = True
            issued = 0
            nowhere(0, 2**63)
            run.finish_class(issued)
            issued = 0
            pieces.clear()
        if new is not None:
            cls = run.cls = new
            nxt_here = nxt is not None and _class_of(nxt) == new

    for seq, b in enumerate(blocks):
        issuer, program, unit_type, vintage, s, e, registry, state, _tid = b
        if vintage != cv or issuer != ci or program != cp or unit_type != ct:
            new = (issuer, program, unit_type, vintage)
            if cls is not None:
                if new < cls:
                    raise MalformedSnapshot(registry, f"blocks not sorted at {b}")
                end_class()
            begin_class(new)
            ci, cp, ct, cv = new
            prev_start = -1
            cov_a, cov_z = 0, -1
        elif s < prev_start:
            raise MalformedSnapshot(registry, f"blocks not sorted at {b}")
        prev_start = s
        if e < s or s < 0:
            raise MalformedSnapshot(registry, f"block range is empty or negative: {b}")
        n += 1
        k = (registry, state)
        state_totals[k] = state_totals.get(k, 0) + e - s + 1

        # Check 1: the open set.
        if state == HELD:
            ent: list[Any] = [e, seq, b, None]
        else:
            run.check_block(b)
            ent = [e, seq, b, [] if state == INCOMING else None]
        if open_set:
            while open_set and open_set[0][0] < s:
                done = heappop(open_set)
                if done[3] is not None:
                    run.close(done)
            if open_set:
                run.overlap(ent, open_set)
                heappush(open_set, ent)
                run.max_open = max(run.max_open, len(open_set))
            else:
                # Every block seen so far has closed; the last one closed reached furthest.
                if done[0] + 1 < s:
                    nowhere(done[0] + 1, s - 1)
                open_set.append(ent)
        else:  # the first block of its class
            if s > 0:
                nowhere(0, s - 1)
            open_set.append(ent)

        # Check 2: inside the issuer's ranges.
        if not (cov_a <= s and e <= cov_z):
            issued += pull(e)
            while pieces and pieces[0][1] < s:
                pieces.popleft()
            if pieces and pieces[0][0] <= s and e <= pieces[0][1]:
                cov_a, cov_z = pieces[0]
            else:
                run.uncovered(b, pieces)

    if cls is not None:
        end_class()
    begin_class(None)
    run.blocks = n
    run.max_open = max(run.max_open, 1 if n else 0)


def _check_totals(run: _Run, snapshots: Sequence[RegistrySnapshot]) -> None:
    for snap in snapshots:
        computed = run.totals.get(snap.registry, {})
        reported = {k: v for k, v in snap.totals.items() if v}
        for key in sorted(set(computed) | set(reported)):
            mine, theirs = computed.get(key, 0), reported.get(key, 0)
            if mine != theirs:
                issuer, program, unit_type, vintage, state = key
                run.emit(
                    Discrepancy(
                        Kind.TOTALS_MISMATCH,
                        (snap.registry,),
                        issuer,
                        program,
                        unit_type,
                        vintage,
                        None,
                        None,
                        details=(("state", state), ("reported", theirs), ("computed", mine)),
                    )
                )


def _age_in_transit(run: _Run, snapshots: Sequence[RegistrySnapshot]) -> None:
    unsettled: dict[str, dict[str, UnsettledTransfer]] = {
        s.registry: {t.transfer_id: t for t in s.unsettled} for s in snapshots
    }
    aged: list[InTransit] = []
    for t in run.in_transit:
        mine = unsettled.get(t.destination, {}).get(t.transfer_id)
        source = t.source
        if source is None and mine is not None and mine.side == "destination":
            source = mine.peer
        theirs = unsettled.get(source, {}).get(t.transfer_id) if source is not None else None
        # One node's own clock: the source's age if it has one, else the destination's.
        age = theirs.age_seconds if theirs is not None else mine.age_seconds if mine else None
        aged.append(t._replace(source=source, age_seconds=age))
        if age is not None and age > run.limit_s:
            run.emit(
                Discrepancy(
                    Kind.IN_TRANSIT_TOO_LONG,
                    tuple(sorted({r for r in (source, t.destination) if r is not None})),
                    t.issuer,
                    t.program,
                    t.unit_type,
                    t.vintage,
                    t.start,
                    t.end,
                    transfer_ids=(t.transfer_id,),
                    details=(
                        ("age_seconds", age),
                        ("limit_seconds", run.limit_s),
                        ("escrowed_at_source", t.escrowed_at_source),
                    ),
                )
            )
    run.in_transit = aged
