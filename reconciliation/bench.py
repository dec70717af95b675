"""A pure micro-benchmark of the sweep, for ``regfed bench reconcile`` to call.

:func:`generate` makes a sound federation of ``n_blocks`` blocks over ``registries`` registries
(every class's serials cut into equal blocks dealt round-robin, the same serials reused by every
vintage, some surrendered or retired, some escrowed and pinned in transit, some pinned after the
source's debit) and injects ``overlaps`` held blocks in a third registry, in mixed shapes:
identical to a block, contained in one, straddling two (partial), and copying the last block of a
class next to the first of the following class (across a class boundary). :func:`benchmark`
reconciles it and scores the findings against the injections.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .model import (
    ESCROWED,
    HELD,
    INCOMING,
    RETIRED,
    SURRENDERED,
    Block,
    ClassKey,
    Discrepancy,
    IssuanceRange,
    Kind,
    RegistrySnapshot,
    TotalsKey,
    UnsettledTransfer,
)
from .sweep import reconcile

SHAPES = ("identical", "contained", "partial", "class-boundary")
BLOCKS_PER_CLASS = 1000
IN_TRANSIT_EVERY = 200  # block i with i % 200 == 21 is escrowed and pinned at the next registry
DEBITED_EVERY = 200  # block i with i % 200 == 121 is incoming, its source already debited


@dataclass
class BenchInput:
    registries: list[str]
    classes: list[ClassKey]
    width: dict[ClassKey, int]
    injected: list[Block]
    totals: dict[str, dict[TotalsKey, int]] = field(default_factory=dict)
    unsettled: dict[str, list[UnsettledTransfer]] = field(default_factory=dict)

    def owner(self, class_index: int, i: int) -> int:
        return (i + class_index) % len(self.registries)


def _state(i: int) -> str:
    if i % 50 == 7:
        return SURRENDERED
    if i % 50 == 13:
        return RETIRED
    if i % IN_TRANSIT_EVERY == 21:
        return ESCROWED
    if i % DEBITED_EVERY == 121:
        return INCOMING
    return HELD


def generate(n_blocks: int, registries: int = 10, overlaps: int = 100, seed: int = 0) -> BenchInput:
    """The shape of the federation; blocks are made lazily by :func:`snapshots`."""
    if registries < 3:
        raise ValueError("injections need a third registry: use at least 3")
    codes = [f"R{r:02d}" for r in range(registries)]
    n_classes = max(1, -(-n_blocks // BLOCKS_PER_CLASS))
    classes: list[ClassKey] = sorted(
        (
            codes[c % registries],
            ("ARP", "RGGI", "CSAPR")[c // registries % 3],
            "allowance",
            1995 + c // (3 * registries),
        )
        for c in range(n_classes)
    )
    width = {k: 10 + c % 7 for c, k in enumerate(classes)}
    spec = BenchInput(codes, classes, width, [])
    rng = random.Random(seed)
    last = n_blocks - (n_classes - 1) * BLOCKS_PER_CLASS  # blocks in the last class
    used: set[tuple[int, int]] = set()
    k = 0
    while len(spec.injected) < overlaps and k < 100 * overlaps:
        shape = SHAPES[k % len(SHAPES)]
        k += 1
        c = (
            rng.randrange(max(1, n_classes - 1))
            if shape == "class-boundary"
            else rng.randrange(n_classes)
        )
        size = BLOCKS_PER_CLASS if c < n_classes - 1 else last
        i = size - 1 if shape == "class-boundary" else rng.randrange(max(1, size - 1))
        if (c, i) in used:
            continue
        used.add((c, i))
        key, w = classes[c], width[classes[c]]
        start = i * w
        span = {
            "identical": (start, start + w - 1),
            "contained": (start + 1, start + w - 2),
            "partial": (start + w // 2, start + w + w // 2 - 1),
            "class-boundary": (start, start + w - 1),
        }[shape]
        if shape == "partial" and i + 1 >= size:
            span = (start + w // 2, start + w - 1)
        registry = codes[(spec.owner(c, i) + 2) % registries]
        spec.injected.append(Block(*key, *span, registry, HELD))
    spec.injected.sort()
    for code in codes:
        spec.totals[code] = {}
        spec.unsettled[code] = []
    for c in range(len(classes)):
        size = BLOCKS_PER_CLASS if c < n_classes - 1 else last
        for i in range(21, size - 1, IN_TRANSIT_EVERY):
            tid = f"T{c}-{i}"
            src, dst = codes[spec.owner(c, i)], codes[spec.owner(c, i + 1)]
            spec.unsettled[src].append(UnsettledTransfer(tid, "source", "accepted", dst, 30.0))
            spec.unsettled[dst].append(UnsettledTransfer(tid, "destination", "accepted", src, 29))
        for i in range(121, size, DEBITED_EVERY):
            tid = f"T{c}-{i}"
            src, dst = codes[spec.owner(c, i - 1)], codes[spec.owner(c, i)]
            spec.unsettled[src].append(UnsettledTransfer(tid, "source", "completed", dst, 40.0))
            spec.unsettled[dst].append(UnsettledTransfer(tid, "destination", "accepted", src, 39))
    return spec


def _blocks(spec: BenchInput, r: int, n_blocks: int) -> Iterator[Block]:
    """Registry ``r``'s blocks in stream order; adds them to its totals as it goes."""
    code = spec.registries[r]
    n = len(spec.registries)
    totals = spec.totals[code]
    injected = [b for b in spec.injected if b.registry == code]
    j = 0
    remaining = n_blocks
    for c, key in enumerate(spec.classes):
        size = min(BLOCKS_PER_CLASS, remaining)
        remaining -= size
        issuer, program, unit_type, vintage = key
        w = spec.width[key]
        counts = dict.fromkeys((HELD, ESCROWED, INCOMING, SURRENDERED, RETIRED), 0)
        for i in range((r - c) % n, size, n):
            start = i * w
            pinned = i % IN_TRANSIT_EVERY == 22  # the previous block is in transit to us
            while j < len(injected) and injected[j] < (*key, start - w if pinned else start):
                yield injected[j]
                counts[HELD] += injected[j].quantity
                j += 1
            if pinned:
                counts[INCOMING] += w
                yield Block(
                    issuer,
                    program,
                    unit_type,
                    vintage,
                    start - w,
                    start - 1,
                    code,
                    INCOMING,
                    f"T{c}-{i - 1}",
                )
            while j < len(injected) and injected[j] < (*key, start):
                yield injected[j]
                counts[HELD] += injected[j].quantity
                j += 1
            state = _state(i)
            counts[state] += w
            yield Block(
                issuer,
                program,
                unit_type,
                vintage,
                start,
                start + w - 1,
                code,
                state,
                f"T{c}-{i}" if state in (ESCROWED, INCOMING) else None,
            )
        while j < len(injected) and injected[j][:4] == key:
            yield injected[j]
            counts[HELD] += injected[j].quantity
            j += 1
        for state, qty in counts.items():
            if qty:
                totals[(*key, state)] = qty
    yield from injected[j:]


def _issuances(spec: BenchInput, r: int, n_blocks: int) -> Iterator[IssuanceRange]:
    code = spec.registries[r]
    remaining = n_blocks
    for key in spec.classes:
        size = min(BLOCKS_PER_CLASS, remaining)
        remaining -= size
        if key[0] != code:
            continue
        w = spec.width[key]
        quarter = max(1, size // 4)
        for a in range(0, size, quarter):  # a few issuances per class, adjacent
            yield IssuanceRange(*key, a * w, min(size, a + quarter) * w - 1)


def snapshots(spec: BenchInput, n_blocks: int, materialize: bool) -> list[RegistrySnapshot]:
    out = []
    for r, code in enumerate(spec.registries):
        blocks = _blocks(spec, r, n_blocks)
        issuances = _issuances(spec, r, n_blocks)
        out.append(
            RegistrySnapshot(
                code,
                list(blocks) if materialize else blocks,
                list(issuances) if materialize else issuances,
                spec.totals[code],
                spec.unsettled[code],
            )
        )
    return out


def _matches(d: Discrepancy, injected: set[Block], classes: set[ClassKey]) -> bool:
    if d.kind in (Kind.SERIAL_IN_TWO_PLACES, Kind.SERIAL_TWICE_IN_REGISTRY):
        return any(p in injected for p in d.pieces)
    if d.kind == Kind.SUPPLY_NOT_CONSERVED:  # an injected block adds supply to its class
        return d.unit_class in classes
    return False


def benchmark(
    n_blocks: int = 10**6,
    registries: int = 10,
    overlaps: int = 100,
    seed: int = 0,
    materialize: bool = True,
) -> dict[str, float | int]:
    """Generate, reconcile and score. With ``materialize`` the blocks are built into lists
    first (``setup_seconds``) so that ``seconds`` is the sweep alone; without it they are made
    lazily while the sweep runs (memory stays bounded, ``seconds`` includes making them)."""
    t0 = time.perf_counter()
    spec = generate(n_blocks, registries, overlaps, seed)
    snaps = snapshots(spec, n_blocks, materialize)
    setup = time.perf_counter() - t0
    gc.collect()
    t1 = time.perf_counter()
    result = reconcile(snaps)
    seconds = time.perf_counter() - t1
    injected = set(spec.injected)
    classes = {b[:4] for b in spec.injected}
    found = {
        p
        for d in result.discrepancies
        if d.kind in (Kind.SERIAL_IN_TWO_PLACES, Kind.SERIAL_TWICE_IN_REGISTRY)
        for p in d.pieces
        if p in injected
    }
    false_positives = sum(not _matches(d, injected, classes) for d in result.discrepancies)
    return {
        "blocks": result.counts["blocks"],
        "registries": registries,
        "seconds": round(seconds, 3),
        "setup_seconds": round(setup, 3),
        "blocks_per_s": round(result.counts["blocks"] / seconds) if seconds else 0,
        "overlaps_injected": len(spec.injected),
        "overlaps_found": len(found),
        "false_positives": false_positives + int(result.truncated),
        "in_transit": len(result.in_transit),
        "max_open_blocks": result.counts["max_open_blocks"],
        "materialized": int(materialize),
    }
