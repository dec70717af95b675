"""Check 1 of reconciliation: no serial in two places, except in transit (allowed pairs)."""

from __future__ import annotations

import pytest
from reconciliation_support import PA20, PA21, blk, of, overlaps, run

from regfed.reconciliation import ALLOWED_PAIRS, Kind, UnsettledTransfer, allowed_pair

pytestmark = pytest.mark.unit

TWO = Kind.SERIAL_IN_TWO_PLACES


def test_clean_federation_reports_nothing() -> None:
    result = run(
        [
            blk("PA", 0, 9),
            blk("NY", 10, 19),
            blk("PA", 20, 29, "surrendered"),
            blk("NJ", 30, 39, "retired"),
            blk("PA", 0, 39, cls=PA21),  # the same serials in another vintage
        ]
    )
    assert result.clean
    assert result.discrepancies == []
    assert result.counts["overlaps"] == 0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 9), (3, 5), (3, 5)),  # contained
        ((0, 9), (5, 14), (5, 9)),  # partial
        ((0, 9), (0, 9), (0, 9)),  # identical
        ((0, 9), (9, 20), (9, 9)),  # one serial
        ((5, 14), (0, 5), (5, 5)),  # partial, the other way round
    ],
)
def test_overlap_names_the_shared_serials_and_both_blocks(
    a: tuple[int, int], b: tuple[int, int], expected: tuple[int, int]
) -> None:
    first, second = blk("PA", *a), blk("NY", *b)
    [d] = of(run([first, second]), TWO)
    assert (d.start, d.end) == expected
    assert d.registries == ("NY", "PA")
    assert set(d.pieces) == {first, second}
    assert d.unit_class == PA20
    assert d.to_dict()["pieces"][0]["registry"] == "NY"


def test_adjacent_blocks_do_not_overlap() -> None:
    assert overlaps(run([blk("PA", 0, 9), blk("NY", 10, 19), blk("NJ", 20, 20)])) == []


def test_same_serials_in_another_vintage_are_other_units() -> None:
    result = run([blk("PA", 0, 9, cls=PA20), blk("NY", 0, 9, cls=PA21)])
    assert overlaps(result) == []
    other_program = ("PA", "RGGI", "allowance", 2020)
    assert overlaps(run([blk("PA", 0, 9), blk("NY", 0, 9, cls=other_program)])) == []


def test_overlap_at_the_end_of_one_vintage_does_not_leak_into_the_next() -> None:
    result = run(
        [blk("PA", 0, 99, cls=PA20), blk("NY", 90, 99, cls=PA20), blk("NJ", 0, 5, cls=PA21)]
    )
    assert overlaps(result) == [(90, 99, ("NY", "PA"))]


def test_three_way_overlap_reports_every_pair() -> None:
    result = run([blk("PA", 0, 9), blk("NY", 5, 14), blk("NJ", 8, 20)])
    assert sorted(overlaps(result)) == [
        (5, 9, ("NY", "PA")),
        (8, 9, ("NJ", "PA")),
        (8, 14, ("NJ", "NY")),
    ]


def test_a_long_block_overlaps_every_block_it_spans() -> None:
    result = run([blk("PA", 0, 9), blk("PA", 10, 19), blk("PA", 20, 29), blk("NY", 5, 24)])
    assert sorted(overlaps(result)) == [
        (5, 9, ("NY", "PA")),
        (10, 19, ("NY", "PA")),
        (20, 24, ("NY", "PA")),
    ]


def test_overlap_within_one_registry_is_its_own_kind() -> None:
    result = run([blk("PA", 0, 9), blk("PA", 9, 12)])
    [d] = of(result, Kind.SERIAL_TWICE_IN_REGISTRY)
    assert (d.start, d.end, d.registries) == (9, 9, ("PA",))
    assert of(result, TWO) == []


def test_the_allowed_pairs_are_written_down() -> None:
    [pair] = ALLOWED_PAIRS
    assert pair.states == {"escrowed", "incoming"}
    assert pair.same_transfer_id and pair.different_registries


def test_escrowed_and_incoming_of_one_transfer_are_in_transit() -> None:
    unsettled = {
        "PA": [UnsettledTransfer("t1", "source", "accepted", "NY", 120.0)],
        "NY": [UnsettledTransfer("t1", "destination", "accepted", "PA", 9e9)],
    }
    result = run(
        [blk("PA", 0, 9, "escrowed", "t1"), blk("NY", 0, 9, "incoming", "t1")],
        unsettled=unsettled,
    )
    assert result.clean
    [t] = result.in_transit
    assert (t.transfer_id, t.source, t.destination, t.start, t.end) == ("t1", "PA", "NY", 0, 9)
    assert t.escrowed_at_source
    assert t.age_seconds == 120.0  # the source's own clock, never compared with the other's
    assert result.summary[PA20].in_transit == 10
    assert result.summary[PA20].escrowed == 0


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("PA", "escrowed", "t1"), ("NY", "incoming", "t2")),  # different transfers
        (("PA", "escrowed", "t1"), ("PA", "incoming", "t1")),  # one registry
        (("PA", "escrowed", "t1"), ("NY", "escrowed", "t1")),  # escrowed twice
        (("PA", "incoming", "t1"), ("NY", "incoming", "t1")),  # pinned twice
        (("PA", "held", None), ("NY", "incoming", "t1")),
        (("PA", "escrowed", "t1"), ("NY", "held", None)),
        (("PA", "retired", None), ("NY", "surrendered", None)),
    ],
)
def test_any_other_pair_is_a_discrepancy(
    a: tuple[str, str, str | None], b: tuple[str, str, str | None]
) -> None:
    first, second = blk(a[0], 0, 9, a[1], a[2]), blk(b[0], 5, 9, b[1], b[2])
    assert allowed_pair(first, second) is None
    result = run([first, second])
    [d] = [d for d in result.discrepancies if d.start is not None]
    assert (d.start, d.end) == (5, 9)
    assert d.transfer_ids == tuple(sorted({t for t in (a[2], b[2]) if t}))
    assert result.in_transit == [] or all(not t.escrowed_at_source for t in result.in_transit)


def test_in_transit_too_long_is_a_discrepancy() -> None:
    unsettled = {"PA": [UnsettledTransfer("t1", "source", "accepted", "NY", 90_000.0)]}
    blocks = [blk("PA", 0, 9, "escrowed", "t1"), blk("NY", 0, 9, "incoming", "t1")]
    [d] = run(blocks, unsettled=unsettled).discrepancies
    assert d.kind == Kind.IN_TRANSIT_TOO_LONG
    assert (d.start, d.end, d.registries, d.transfer_ids) == (0, 9, ("NY", "PA"), ("t1",))
    assert dict(d.details)["age_seconds"] == 90_000.0
    assert run(blocks, unsettled=unsettled, settlement_limit_s=100_000).clean


def test_units_debited_at_source_but_not_credited_are_in_transit() -> None:
    unsettled = {
        "NY": [UnsettledTransfer("t1", "destination", "accepted", "PA", 5.0)],
        "PA": [UnsettledTransfer("t1", "source", "completed", "NY", 7.0)],
    }
    # The source still escrows 0-4; it debited 5-9 already.
    result = run(
        [blk("PA", 0, 4, "escrowed", "t1"), blk("NY", 0, 9, "incoming", "t1")],
        unsettled=unsettled,
    )
    assert result.clean
    assert [
        (t.start, t.end, t.source, t.escrowed_at_source, t.age_seconds) for t in result.in_transit
    ] == [
        (0, 4, "PA", True, 7.0),
        (5, 9, "PA", False, 7.0),
    ]
    assert result.summary[PA20].to_dict() == {
        "issued": 10,
        "held": 0,
        "escrowed": 0,
        "in_transit": 10,
        "surrendered": 0,
        "retired": 0,
    }
