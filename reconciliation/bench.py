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
from collections.abc import Iterable, Iterator
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
#: Block i with i % 200 == 21 is escrowed and pinned at the next registry; with i % 200 == 121
#: it is incoming, its source already debited (``generate(transit_every=...)`` changes 200).
IN_TRANSIT_EVERY = 200


@dataclass
class BenchInput:
    registries: list[str]
    classes: list[ClassKey]
    width: dict[ClassKey, int]
    injected: list[Block]
    totals: dict[str, dict[TotalsKey, int]] = field(default_factory=dict)
    unsettled: dict[str, list[UnsettledTransfer]] = field(default_factory=dict)
    blocks_per_class: int = BLOCKS_PER_CLASS
    #: Block i of a class is escrowed when i % transit_every == 21 (and pinned as incoming at
    #: the next registry), incoming with its source debited when i % transit_every == 21 + half.
    transit_every: int = IN_TRANSIT_EVERY

    def owner(self, class_index: int, i: int) -> int:
        return (i + class_index) % len(self.registries)

    def size(self, n_blocks: int, class_index: int) -> int:
        """How many blocks class ``class_index`` has (the last class takes the remainder)."""
        return min(self.blocks_per_class, n_blocks - class_index * self.blocks_per_class)

    def lot(self, transfer_id: str) -> tuple[ClassKey, int, int]:
        """(class, start, end) of the serials transfer ``T<class>-<block>`` moves."""
        c, i = (int(x) for x in transfer_id[1:].split("-"))
        key = self.classes[c]
        w = self.width[key]
        return key, i * w, i * w + w - 1


def _state(i: int, every: int = IN_TRANSIT_EVERY) -> str:
    if i % 50 == 7:
        return SURRENDERED
    if i % 50 == 13:
        return RETIRED
    if i % every == 21:
        return ESCROWED
    if i % every == 21 + every // 2:
        return INCOMING
    return HELD


def generate(
    n_blocks: int,
    registries: int = 10,
    overlaps: int = 100,
    seed: int = 0,
    *,
    codes: list[str] | None = None,
    blocks_per_class: int = BLOCKS_PER_CLASS,
    transit_every: int = IN_TRANSIT_EVERY,
) -> BenchInput:
    """The shape of the federation; blocks are made lazily by :func:`snapshots`.

    ``codes`` names the registries (default ``R00``, ``R01``...); ``blocks_per_class`` and
    ``transit_every`` (a multiple of 50, so that transfers never fall on a surrendered or
    retired block) set how many unit classes and transfers in flight there are."""
    if registries < 3:
        raise ValueError("injections need a third registry: use at least 3")
    if transit_every % 50 or transit_every <= 0:
        raise ValueError(f"transit_every must be a positive multiple of 50, not {transit_every}")
    codes = list(codes) if codes is not None else [f"R{r:02d}" for r in range(registries)]
    if len(codes) != registries or len(set(codes)) != registries:
        raise ValueError(f"{registries} distinct registry codes are needed, got {codes}")
    n_classes = max(1, -(-n_blocks // blocks_per_class))
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
    spec = BenchInput(codes, classes, width, [], blocks_per_class=blocks_per_class)
    spec.transit_every = transit_every
    rng = random.Random(seed)
    last = n_blocks - (n_classes - 1) * blocks_per_class  # blocks in the last class
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
        size = blocks_per_class if c < n_classes - 1 else last
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
    every = transit_every
    for c in range(len(classes)):
        size = blocks_per_class if c < n_classes - 1 else last
        # Escrowed at the source (proposed: the destination's accept is on its way), pinned
        # at the destination.
        for i in range(21, size - 1, every):
            tid = f"T{c}-{i}"
            src, dst = codes[spec.owner(c, i)], codes[spec.owner(c, i + 1)]
            spec.unsettled[src].append(UnsettledTransfer(tid, "source", "proposed", dst, 30.0))
            spec.unsettled[dst].append(UnsettledTransfer(tid, "destination", "accepted", src, 29))
        for i in range(21 + every // 2, size, every):
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
    every = spec.transit_every
    for c, key in enumerate(spec.classes):
        size = spec.size(n_blocks, c)
        issuer, program, unit_type, vintage = key
        w = spec.width[key]
        counts = dict.fromkeys((HELD, ESCROWED, INCOMING, SURRENDERED, RETIRED), 0)
        for i in range((r - c) % n, size, n):
            start = i * w
            pinned = i % every == 22  # the previous block is in transit to us
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
            state = _state(i, every)
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
    for c, key in enumerate(spec.classes):
        size = spec.size(n_blocks, c)
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


def _matches(d: Discrepancy, injected: set[Block], excess: dict[ClassKey, int]) -> bool:
    """Whether ``d`` is a direct consequence of the injections: an overlap one of whose
    blocks is an injected copy, or a class's supply exceeding its issuance by exactly the
    units injected into it (each copy is one more place for serials issued once)."""
    if d.kind in (Kind.SERIAL_IN_TWO_PLACES, Kind.SERIAL_TWICE_IN_REGISTRY):
        return any(p in injected for p in d.pieces)
    if d.kind == Kind.SUPPLY_NOT_CONSERVED and d.unit_class in excess:
        details = dict(d.details)
        return bool(details.get("accounted", 0) - details.get("issued", 0) == excess[d.unit_class])
    return False


@dataclass(frozen=True)
class Score:
    #: Injected blocks every serial of which a SERIAL_IN_TWO_PLACES finding names.
    found: int
    #: Findings that are no direct consequence of an injection (:func:`_matches`).
    false_positives: int
    #: Injected blocks not (wholly) found.
    missed: tuple[Block, ...]
    #: The false positives themselves (the first 20).
    unexplained: tuple[Discrepancy, ...]


def score(discrepancies: Iterable[Discrepancy], injected: Iterable[Block]) -> Score:
    """Score findings against the injections. An injected block counts as found when the
    SERIAL_IN_TWO_PLACES findings that name it (as one of their two blocks) cover all of its
    serials: each of them is in its original place too, so nothing less is a full report."""
    injected = set(injected)
    excess: dict[ClassKey, int] = {}
    for b in injected:
        excess[b[:4]] = excess.get(b[:4], 0) + b.quantity
    named: dict[Block, list[tuple[int, int]]] = {}
    false_positives: list[Discrepancy] = []
    for d in discrepancies:
        if not _matches(d, injected, excess):
            false_positives.append(d)
        elif d.kind == Kind.SERIAL_IN_TWO_PLACES and d.start is not None and d.end is not None:
            for p in d.pieces:
                if p in injected:
                    named.setdefault(p, []).append((d.start, d.end))
    missed = []
    for b in sorted(injected):
        reach = b.start - 1
        for a, z in sorted(named.get(b, [])):
            if a > reach + 1:
                break
            reach = max(reach, z)
        if reach < b.end:
            missed.append(b)
    return Score(
        len(injected) - len(missed),
        len(false_positives),
        tuple(missed),
        tuple(false_positives[:20]),
    )


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
    scored = score(result.discrepancies, spec.injected)
    return {
        "blocks": result.counts["blocks"],
        "registries": registries,
        "seconds": round(seconds, 3),
        "setup_seconds": round(setup, 3),
        "blocks_per_s": round(result.counts["blocks"] / seconds) if seconds else 0,
        "overlaps_injected": len(spec.injected),
        "overlaps_found": scored.found,
        "false_positives": scored.false_positives + int(result.truncated),
        "in_transit": len(result.in_transit),
        "max_open_blocks": result.counts["max_open_blocks"],
        "materialized": int(materialize),
    }
