"""The sweep against the brute-force per-serial oracle on small random federations."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reconciliation_support import snapshots

from regfed.reconciliation import (
    STATES,
    Block,
    ClassKey,
    IssuanceRange,
    Kind,
    UnsettledTransfer,
    reconcile,
)
from regfed.reconciliation.oracle import brute_force

pytestmark = pytest.mark.unit

REGISTRIES = ("NJ", "NY", "PA")
CLASSES: tuple[ClassKey, ...] = (
    ("PA", "ARP", "allowance", 2020),
    ("PA", "ARP", "allowance", 2021),
    ("NY", "RGGI", "allowance", 2020),
)
SERIALS = 24


@st.composite
def blocks(draw: st.DrawFn) -> Block:
    cls = draw(st.sampled_from(CLASSES))
    start = draw(st.integers(0, SERIALS - 1))
    end = draw(st.integers(start, min(SERIALS - 1, start + 8)))
    state = draw(st.sampled_from(STATES))
    tid = draw(st.sampled_from(("t1", "t2"))) if state in ("escrowed", "incoming") else None
    return Block(*cls, start, end, draw(st.sampled_from(REGISTRIES)), state, tid)


@st.composite
def issuances(draw: st.DrawFn) -> IssuanceRange:
    cls = draw(st.sampled_from(CLASSES))
    start = draw(st.integers(0, SERIALS - 1))
    return IssuanceRange(*cls, start, draw(st.integers(start, SERIALS - 1)))


@settings(max_examples=400, deadline=None)
@given(st.lists(blocks(), max_size=14), st.lists(issuances(), max_size=5))
def test_sweep_agrees_with_the_per_serial_oracle(
    found: list[Block], issued: list[IssuanceRange]
) -> None:
    unsettled = {r: [UnsettledTransfer("t1", "source", "accepted", "NY", 1.0)] for r in REGISTRIES}
    result = reconcile(snapshots(found, issued, registries=REGISTRIES, unsettled=unsettled))
    oracle = brute_force(found, issued)

    # Check 1: the same (serial -> the two places) facts, disallowed and allowed.
    pairs: Counter[tuple[ClassKey, int, Block, Block, bool]] = Counter()
    for d in result.discrepancies:
        if d.kind in (Kind.SERIAL_IN_TWO_PLACES, Kind.SERIAL_TWICE_IN_REGISTRY):
            assert d.start is not None and d.end is not None
            first, second = d.pieces
            for serial in range(d.start, d.end + 1):
                pairs[(d.unit_class, serial, first, second, False)] += 1
    transit: Counter[tuple[ClassKey, int, str, str | None, str]] = Counter()
    for t in result.in_transit:
        if t.escrowed_at_source:
            for serial in range(t.start, t.end + 1):
                transit[(t[3:7], serial, t.transfer_id, t.source, t.destination)] += 1
    assert pairs == Counter({k: v for k, v in oracle.pairs.items() if not k[4]})
    expected_transit: Counter[tuple[ClassKey, int, str, str | None, str]] = Counter()
    for (cls, serial, a, b, allowed), count in oracle.pairs.items():
        if allowed:
            esc, inc = (a, b) if a.state == "escrowed" else (b, a)
            assert inc.transfer_id is not None
            expected_transit[(cls, serial, inc.transfer_id, esc.registry, inc.registry)] += count
    assert transit == expected_transit

    # Check 2: the same uncovered serials, block by block.
    uncovered: Counter[tuple[Block, int]] = Counter()
    for d in result.discrepancies:
        if d.kind == Kind.UNIT_WITHOUT_ISSUER:
            assert d.start is not None and d.end is not None
            for serial in range(d.start, d.end + 1):
                uncovered[(d.pieces[0], serial)] += 1
    assert uncovered == oracle.uncovered

    # Check 3: the same conservation figures, class by class, and the same verdicts.
    assert {k: s.to_dict() for k, s in result.summary.items()} == {
        k: s.to_dict() for k, s in oracle.summary.items()
    }
    assert {d.unit_class for d in result.discrepancies if d.kind == Kind.SUPPLY_NOT_CONSERVED} == {
        k for k, s in oracle.summary.items() if not s.conserved
    }
    # Check 3 by serial: the same issued serials held nowhere, in maximal ranges.
    gaps = sorted(
        (d.unit_class, d.start, d.end)
        for d in result.discrepancies
        if d.kind == Kind.UNITS_HELD_NOWHERE
    )
    nowhere: set[tuple[ClassKey, int]] = set()
    reported = 0
    for cls, start, end in gaps:
        assert start is not None and end is not None
        nowhere.update((cls, serial) for serial in range(start, end + 1))
        reported += end - start + 1
    assert reported == len(nowhere)  # no serial reported twice
    assert nowhere == oracle.nowhere
    for cls, start, end in gaps:
        assert start is not None and end is not None
        assert (cls, start - 1) not in nowhere and (cls, end + 1) not in nowhere  # maximal
    for d in result.discrepancies:
        if d.kind == Kind.UNITS_HELD_NOWHERE:
            assert d.registries == (d.issuer,)
            assert dict(d.details) == {"quantity": (d.end or 0) - (d.start or 0) + 1}

    # Check 4 with the blocks' own totals: never a mismatch.
    assert not [d for d in result.discrepancies if d.kind == Kind.TOTALS_MISMATCH]
