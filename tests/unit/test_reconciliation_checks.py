"""Checks 2-4 of reconciliation (issuer coverage, conservation, totals), malformed streams,
determinism, and that the core stays free of I/O libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from reconciliation_support import PA20, PA21, blk, iss, of, run, snapshots

from regfed.reconciliation import (
    Block,
    IssuanceRange,
    Kind,
    MalformedSnapshot,
    RegistrySnapshot,
    reconcile,
)
from regfed.reconciliation.bench import benchmark, generate, score
from regfed.reconciliation.bench import snapshots as bench_snapshots

pytestmark = pytest.mark.unit

NO_ISSUER = Kind.UNIT_WITHOUT_ISSUER
NOWHERE = Kind.UNITS_HELD_NOWHERE


def gaps(
    blocks: list[Block], issuances: list[IssuanceRange]
) -> list[tuple[int | None, int | None]]:
    return [(d.start, d.end) for d in of(run(blocks, issuances), NO_ISSUER)]


def test_units_inside_the_issuance_are_covered() -> None:
    assert gaps([blk("NY", 0, 9), blk("PA", 10, 19)], [iss(0, 19)]) == []


def test_adjacent_issuances_cover_a_block_spanning_both() -> None:
    assert gaps([blk("NY", 0, 19)], [iss(0, 9), iss(10, 19)]) == []


def test_uncovered_sub_ranges_are_reported_exactly() -> None:
    assert gaps([blk("NY", 0, 29)], [iss(5, 9), iss(15, 19)]) == [(0, 4), (10, 14), (20, 29)]
    assert gaps([blk("NY", 3, 12)], [iss(0, 9)]) == [(10, 12)]
    assert gaps([blk("NY", 0, 9)], [iss(20, 29)]) == [(0, 9)]


def test_issuances_of_another_vintage_cover_nothing() -> None:
    assert gaps([blk("NY", 0, 9, cls=PA21)], [iss(0, 9, cls=PA20)]) == [(0, 9)]


def test_an_uncovered_block_names_its_registry_and_transfer() -> None:
    [d] = of(run([blk("NY", 0, 9, "incoming", "t9")], [iss(0, 4)]), NO_ISSUER)
    assert (d.registries, d.start, d.end, d.transfer_ids) == (("NY",), 5, 9, ("t9",))
    assert d.pieces == (blk("NY", 0, 9, "incoming", "t9"),)


def test_an_issuance_reported_by_another_registry_is_refused() -> None:
    snaps = [RegistrySnapshot("NY", iter([]), iter([iss(0, 9)]))]
    with pytest.raises(MalformedSnapshot, match="issuance of PA"):
        reconcile(snaps)


def test_conservation_counts_each_state_and_transfers_once() -> None:
    result = run(
        [
            blk("PA", 0, 9),
            blk("PA", 10, 19, "escrowed", "t1"),
            blk("NY", 10, 19, "incoming", "t1"),
            blk("PA", 20, 24, "escrowed", "t2"),  # not yet pinned by its destination
            blk("NJ", 25, 29, "incoming", "t3"),  # already debited at its source
            blk("PA", 30, 31, "surrendered"),
            blk("NJ", 32, 34, "retired"),
        ],
        [iss(0, 34)],
    )
    assert result.clean
    assert result.summary[PA20].to_dict() == {
        "issued": 35,
        "held": 10,
        "escrowed": 5,
        "in_transit": 15,
        "surrendered": 2,
        "retired": 3,
    }


def test_missing_units_break_conservation() -> None:
    result = run([blk("PA", 0, 9)], [iss(0, 19)])
    [d] = of(result, Kind.SUPPLY_NOT_CONSERVED)
    assert dict(d.details)["issued"] == 20
    assert dict(d.details)["accounted"] == 10
    [gap] = of(result, NOWHERE)
    assert (gap.start, gap.end, gap.registries, dict(gap.details)) == (
        10,
        19,
        ("PA",),
        {"quantity": 10},
    )


def test_a_class_issued_but_held_nowhere_is_reported() -> None:
    result = run([blk("PA", 0, 9)], [iss(0, 9), iss(0, 4, cls=PA21), iss(7, 8, cls=PA21)])
    [d] = of(result, Kind.SUPPLY_NOT_CONSERVED)
    assert d.unit_class == PA21
    assert [(g.unit_class, g.start, g.end) for g in of(result, NOWHERE)] == [
        (PA21, 0, 4),
        (PA21, 7, 8),
    ]
    assert list(result.summary) == [PA20, PA21]


def nowhere(
    blocks: list[Block], issuances: list[IssuanceRange]
) -> list[tuple[int | None, int | None]]:
    return [(d.start, d.end) for d in of(run(blocks, issuances), NOWHERE)]


def test_serials_held_nowhere_are_named_by_maximal_range() -> None:
    # Before the first block, between blocks, after the last; issuances merge when adjacent.
    blocks = [blk("PA", 5, 9), blk("NY", 12, 14), blk("NJ", 15, 15, "retired")]
    assert nowhere(blocks, [iss(0, 9), iss(10, 19), iss(30, 31)]) == [
        (0, 4),
        (10, 11),
        (16, 19),
        (30, 31),
    ]
    # Only issued serials: a gap between blocks outside every issuance is not missing.
    assert nowhere([blk("PA", 0, 4), blk("PA", 20, 24)], [iss(0, 4), iss(20, 24)]) == []
    # Overlapping blocks cover as their union; a block past the issuance hides nothing.
    blocks = [blk("PA", 0, 9), blk("NY", 3, 5), blk("NJ", 12, 40)]
    assert nowhere(blocks, [iss(0, 19)]) == [(10, 11)]
    # Every state counts as held somewhere, escrowed and incoming included.
    blocks = [blk("PA", 0, 4, "escrowed", "t1"), blk("NY", 5, 9, "incoming", "t2")]
    assert nowhere(blocks, [iss(0, 9)]) == []


def test_issuing_twice_is_not_a_gap() -> None:
    result = run([blk("PA", 0, 9)], [iss(0, 9), iss(5, 9)])
    assert of(result, NOWHERE) == []


def test_issuing_twice_inflates_supply() -> None:
    result = run([blk("PA", 0, 9)], [iss(0, 9), iss(5, 9)])
    assert [d.kind for d in result.discrepancies] == [Kind.SUPPLY_NOT_CONSERVED]


def test_totals_must_match_the_blocks() -> None:
    blocks = [blk("PA", 0, 9), blk("NY", 10, 19), blk("NY", 20, 24, "retired")]
    totals = {
        "PA": {(*PA20, "held"): 10},
        "NY": {(*PA20, "held"): 11, (*PA20, "retired"): 5, (*PA20, "surrendered"): 0},
    }
    [d] = run(blocks, [iss(0, 24)], totals=totals).discrepancies
    assert d.kind == Kind.TOTALS_MISMATCH
    assert d.registries == ("NY",)
    assert dict(d.details) == {"state": "held", "reported": 11, "computed": 10}
    totals["PA"] = {}
    [missing] = of(run(blocks, [iss(0, 24)], totals=totals), Kind.TOTALS_MISMATCH)[:1]
    assert missing.registries == ("NY",)
    assert len(of(run(blocks, [iss(0, 24)], totals=totals), Kind.TOTALS_MISMATCH)) == 2


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ([blk("PA", 5, 9), blk("PA", 0, 4)], "not sorted"),
        ([blk("PA", 0, 4, cls=PA21), blk("PA", 0, 4, cls=PA20)], "not sorted"),
        ([blk("PA", 9, 5)], "empty"),
        ([blk("PA", 0, 4, "lost")], "unknown block state"),
        ([blk("PA", 0, 4, "escrowed")], "without a transfer id"),
    ],
)
def test_a_stream_breaking_its_contract_stops_the_run(blocks: list[Block], message: str) -> None:
    snap = RegistrySnapshot("PA", iter(blocks), iter([iss(0, 9)]))
    with pytest.raises(MalformedSnapshot, match=message):
        reconcile([snap])


def test_unsorted_issuances_stop_the_run() -> None:
    snap = RegistrySnapshot("PA", iter([blk("PA", 0, 9)]), iter([iss(5, 9), iss(0, 4)]))
    with pytest.raises(MalformedSnapshot, match="issuances not sorted"):
        reconcile([snap])


def test_a_registry_reported_twice_stops_the_run() -> None:
    with pytest.raises(MalformedSnapshot, match="twice"):
        reconcile([RegistrySnapshot("PA", []), RegistrySnapshot("PA", [])])


def test_results_do_not_depend_on_the_order_of_registries() -> None:
    blocks = [
        blk("PA", 0, 9),
        blk("NY", 5, 14),
        blk("NJ", 8, 20, "escrowed", "t1"),
        blk("PA", 8, 20, "incoming", "t1"),
        blk("NY", 0, 3, cls=PA21),
    ]
    forward = reconcile(snapshots(blocks, [iss(0, 15)])).to_dict()
    backward = reconcile(list(reversed(snapshots(blocks, [iss(0, 15)])))).to_dict()
    assert forward == backward
    json.dumps(forward)  # JSON as it is


def test_discrepancies_beyond_the_limit_are_counted_not_kept() -> None:
    blocks = [blk(r, 0, 9) for r in ("PA", "NY", "NJ", "MD")]
    result = reconcile(snapshots(blocks), max_discrepancies=2)
    assert len(result.discrepancies) == 2
    assert result.truncated and not result.clean
    assert result.counts["discrepancies_found"] == 7  # 6 pairs + supply


def test_the_core_imports_no_io_library() -> None:
    code = (
        "import sys, regfed.reconciliation, regfed.reconciliation.bench, "
        "regfed.reconciliation.oracle, regfed.reconciliation.views, regfed.epa\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'grpc')]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_benchmark_finds_every_injected_overlap_and_nothing_else() -> None:
    for materialize in (True, False):
        figures = benchmark(5_000, registries=4, overlaps=40, seed=7, materialize=materialize)
        assert figures["overlaps_injected"] == 40
        assert figures["overlaps_found"] == 40
        assert figures["false_positives"] == 0
        assert figures["blocks"] > 5_000
    assert benchmark(3_000, registries=3, overlaps=0)["false_positives"] == 0


def test_the_generator_stays_sound_with_larger_classes_and_rarer_transfers() -> None:
    """The shape `regfed bench reconcile` asks for at large sizes: other codes, 2000 blocks a
    class, a transfer every 400 blocks; still every injection found and nothing else."""
    n = 12_000
    spec = generate(
        n, 5, 30, seed=3, codes=["RA", "RB", "RC", "RD", "RE"], blocks_per_class=2000,
        transit_every=400,
    )  # fmt: skip
    assert len(spec.classes) == 6 and {b.registry for b in spec.injected} <= set(spec.registries)
    result = reconcile(bench_snapshots(spec, n, materialize=True))
    scored = score(result.discrepancies, spec.injected)
    assert (scored.found, scored.false_positives, scored.missed) == (30, 0, ())
    assert result.in_transit and not result.truncated
    with pytest.raises(ValueError, match="multiple of 50"):
        generate(n, 5, 30, transit_every=120)


def test_an_injection_counts_as_found_only_when_its_serials_are_all_named() -> None:
    spec = generate(5_000, 4, 8, seed=1)
    result = reconcile(bench_snapshots(spec, 5_000, materialize=True))
    overlaps = [d for d in result.discrepancies if d.kind == Kind.SERIAL_IN_TWO_PLACES]
    supply = [d for d in result.discrepancies if d.kind == Kind.SUPPLY_NOT_CONSERVED]
    assert score(result.discrepancies, spec.injected).found == 8
    # Half of a finding's range names only part of the copy: that copy is missed.
    first = overlaps[0]
    assert first.start is not None and first.end is not None and first.end > first.start
    halved = first._replace(end=first.start)
    partial = score([halved, *overlaps[1:], *supply], spec.injected)
    assert partial.found == 7 and len(partial.missed) == 1
    # A class's supply off by anything but the injected units is a false positive.
    details = dict(supply[0].details)
    wrong = supply[0]._replace(
        details=tuple({**details, "accounted": details["accounted"] + 1}.items())
    )
    assert score([*overlaps, wrong, *supply[1:]], spec.injected).false_positives == 1
    # So is any other finding.
    other = first._replace(kind=Kind.TOTALS_MISMATCH)
    assert score([*overlaps, *supply, other], spec.injected).false_positives == 1
