"""Hand-made snapshots for the reconciliation core's tests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from regfed.reconciliation import (
    Block,
    ClassKey,
    Discrepancy,
    IssuanceRange,
    ReconciliationResult,
    RegistrySnapshot,
    TotalsKey,
    TransferRecord,
    UnsettledTransfer,
    reconcile,
)

PA20: ClassKey = ("PA", "ARP", "allowance", 2020)
PA21: ClassKey = ("PA", "ARP", "allowance", 2021)


def blk(
    registry: str,
    start: int,
    end: int,
    state: str = "held",
    tid: str | None = None,
    cls: ClassKey = PA20,
) -> Block:
    return Block(*cls, start, end, registry, state, tid)


def iss(start: int, end: int, cls: ClassKey = PA20) -> IssuanceRange:
    return IssuanceRange(*cls, start, end)


def totals_of(blocks: Iterable[Block]) -> dict[str, dict[TotalsKey, int]]:
    out: dict[str, dict[TotalsKey, int]] = defaultdict(dict)
    for b in blocks:
        key = (b.issuer, b.program, b.unit_type, b.vintage, b.state)
        out[b.registry][key] = out[b.registry].get(key, 0) + b.quantity
    return out


def snapshots(
    blocks: Sequence[Block],
    issuances: Sequence[IssuanceRange] | None = None,
    *,
    registries: Iterable[str] = (),
    totals: Mapping[str, Mapping[TotalsKey, int]] | None = None,
    unsettled: Mapping[str, Sequence[UnsettledTransfer]] | None = None,
    transfers: Iterable[TransferRecord] = (),
) -> list[RegistrySnapshot]:
    """One snapshot per registry named; issuances default to one range per class spanning its
    blocks, totals to the blocks' own; each registry streams its own transfer records."""
    transfers = list(transfers)
    if issuances is None:
        spans: dict[ClassKey, tuple[int, int]] = {}
        for b in blocks:
            key = (b.issuer, b.program, b.unit_type, b.vintage)
            lo, hi = spans.get(key, (b.start, b.end))
            spans[key] = (min(lo, b.start), max(hi, b.end))
        issuances = [IssuanceRange(*k, lo, hi) for k, (lo, hi) in spans.items()]
    codes = set(registries) | {b.registry for b in blocks} | {r.issuer for r in issuances}
    codes |= {t.registry for t in transfers}
    computed = totals_of(blocks)
    return [
        RegistrySnapshot(
            code,
            iter(sorted(b for b in blocks if b.registry == code)),
            iter(sorted(r for r in issuances if r.issuer == code)),
            (totals if totals is not None else computed).get(code, {}),
            (unsettled or {}).get(code, ()),
            iter(sorted(t for t in transfers if t.registry == code)),
        )
        for code in sorted(codes)
    ]


def run(
    blocks: Sequence[Block],
    issuances: Sequence[IssuanceRange] | None = None,
    *,
    settlement_limit_s: float = 24 * 3600.0,
    totals: Mapping[str, Mapping[TotalsKey, int]] | None = None,
    unsettled: Mapping[str, Sequence[UnsettledTransfer]] | None = None,
    transfers: Iterable[TransferRecord] = (),
) -> ReconciliationResult:
    return reconcile(
        snapshots(blocks, issuances, totals=totals, unsettled=unsettled, transfers=transfers),
        settlement_limit_s=settlement_limit_s,
    )


def of(result: ReconciliationResult, kind: str) -> list[Discrepancy]:
    return [d for d in result.discrepancies if d.kind == kind]


def overlaps(result: ReconciliationResult) -> list[tuple[int | None, int | None, tuple[str, ...]]]:
    """(start, end, the two pieces' registries) of every serial-in-two-places finding."""
    return [
        (d.start, d.end, tuple(p.registry for p in d.pieces))
        for d in result.discrepancies
        if d.kind in ("SERIAL_IN_TWO_PLACES", "SERIAL_TWICE_IN_REGISTRY")
    ]


def rec(
    tid: str,
    registry: str,
    side: str,
    peer: str,
    status: str,
    settled: bool | None = None,
    quantity: int = 10,
) -> TransferRecord:
    """A transfer record; settled defaults to what the protocol does (a destination once final,
    a source once rejected)."""
    if settled is None:
        final = status in ("completed", "rejected", "terminated", "cancelled")
        settled = final if side == "destination" else status == "rejected"
    return TransferRecord(tid, registry, side, peer, status, settled, quantity)
