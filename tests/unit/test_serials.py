"""Serial ranges, unit classes and blocks: range arithmetic against a set-of-integers oracle."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regfed.node.domain.errors import InvalidArgument
from regfed.node.domain.serials import (
    MAX_SERIAL,
    SerialRange,
    UnitBlock,
    UnitClass,
    merge_adjacent,
)

pytestmark = pytest.mark.unit

SMALL = 40


@st.composite
def small_ranges(draw: st.DrawFn, low: int = 0, high: int = SMALL) -> SerialRange:
    start = draw(st.integers(low, high))
    end = draw(st.integers(start, high))
    return SerialRange(start, end)


def units(r: SerialRange) -> set[int]:
    return set(range(r.start, r.end + 1))


def union(ranges: list[SerialRange]) -> set[int]:
    out: set[int] = set()
    for r in ranges:
        out |= units(r)
    return out


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 0), (5, 5), (0, MAX_SERIAL), (MAX_SERIAL, MAX_SERIAL), (17, 1_000_000_000_000)],
)
def test_valid_ranges_are_accepted(start: int, end: int) -> None:
    r = SerialRange(start, end)
    assert r.quantity == end - start + 1
    assert str(r) == f"{start}-{end}"


@pytest.mark.parametrize(
    ("start", "end"),
    [(5, 4), (-1, 3), (-5, -1), (0, MAX_SERIAL + 1), (MAX_SERIAL + 1, MAX_SERIAL + 1)],
)
def test_empty_or_out_of_bounds_ranges_are_refused(start: int, end: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        SerialRange(start, end)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert caught.value.details == {"start": start, "end": end}


def test_max_serial_fits_a_signed_64_bit_column() -> None:
    assert MAX_SERIAL < 2**63 - 1
    assert SerialRange(0, MAX_SERIAL).quantity == 2**63 - 1


# -- relations and arithmetic against the oracle -----------------------------------------------


@given(small_ranges(), small_ranges())
def test_overlaps_and_contains_match_the_oracle(a: SerialRange, b: SerialRange) -> None:
    assert a.overlaps(b) == bool(units(a) & units(b))
    assert a.overlaps(b) == b.overlaps(a)
    assert a.contains(b) == (units(b) <= units(a))


@given(small_ranges(), small_ranges())
def test_intersection_matches_the_oracle(a: SerialRange, b: SerialRange) -> None:
    both = units(a) & units(b)
    result = a.intersection(b)
    if not both:
        assert result is None
    else:
        assert result is not None
        assert units(result) == both
    assert result == b.intersection(a)


@given(small_ranges(), small_ranges())
def test_minus_matches_the_oracle(a: SerialRange, b: SerialRange) -> None:
    pieces = a.minus(b)
    assert union(pieces) == units(a) - units(b)
    assert len(pieces) <= 2
    # Pieces are sorted, disjoint, and never touch: ``b`` (non-empty) lies between them.
    assert pieces == sorted(pieces)
    if len(pieces) == 2:
        assert pieces[0].end + 1 < pieces[1].start
    assert sum(p.quantity for p in pieces) == len(units(a) - units(b))
    if not a.overlaps(b):
        assert pieces == [a]


@given(small_ranges())
def test_minus_itself_leaves_nothing(a: SerialRange) -> None:
    assert a.minus(a) == []


def test_minus_at_the_bounds_of_the_serial_space() -> None:
    whole = SerialRange(0, MAX_SERIAL)
    assert whole.minus(SerialRange(0, 0)) == [SerialRange(1, MAX_SERIAL)]
    assert whole.minus(SerialRange(MAX_SERIAL, MAX_SERIAL)) == [SerialRange(0, MAX_SERIAL - 1)]
    assert whole.minus(SerialRange(10, 20)) == [
        SerialRange(0, 9),
        SerialRange(21, MAX_SERIAL),
    ]


@given(small_ranges(), st.data())
def test_first_takes_the_lowest_serials(r: SerialRange, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, r.quantity))
    taken = r.first(n)
    assert units(taken) == set(sorted(units(r))[:n])
    assert taken.start == r.start


@given(small_ranges(), st.sampled_from([-1, 0, 1]))
def test_first_refuses_nothing_or_more_than_held(r: SerialRange, bad: int) -> None:
    quantity = r.quantity + 1 if bad == 1 else bad
    with pytest.raises(InvalidArgument) as caught:
        r.first(quantity)
    assert caught.value.details == {"quantity": quantity}


# -- merge_adjacent ------------------------------------------------------------------------------


@given(st.lists(small_ranges(), max_size=12))
def test_merge_adjacent_is_a_canonical_form(ranges: list[SerialRange]) -> None:
    merged = merge_adjacent(ranges)
    assert union(merged) == union(ranges)
    for a, b in itertools.pairwise(merged):
        assert a.end + 1 < b.start  # sorted, disjoint, not even touching
    assert merge_adjacent(merged) == merged
    assert merge_adjacent(list(reversed(ranges))) == merged


@given(st.lists(small_ranges(), max_size=12))
def test_merge_adjacent_equals_the_runs_of_the_oracle(ranges: list[SerialRange]) -> None:
    runs: list[SerialRange] = []
    for s in sorted(union(ranges)):
        if runs and runs[-1].end + 1 == s:
            runs[-1] = SerialRange(runs[-1].start, s)
        else:
            runs.append(SerialRange(s, s))
    assert merge_adjacent(ranges) == runs


def test_merge_adjacent_examples() -> None:
    assert merge_adjacent([]) == []
    assert merge_adjacent([SerialRange(5, 9), SerialRange(0, 4)]) == [SerialRange(0, 9)]
    assert merge_adjacent([SerialRange(0, 4), SerialRange(6, 9)]) == [
        SerialRange(0, 4),
        SerialRange(6, 9),
    ]
    assert merge_adjacent([SerialRange(0, 10), SerialRange(2, 3)]) == [SerialRange(0, 10)]


def test_merge_adjacent_does_not_mutate_its_argument() -> None:
    ranges = [SerialRange(5, 9), SerialRange(0, 4)]
    merge_adjacent(ranges)
    assert ranges == [SerialRange(5, 9), SerialRange(0, 4)]


# -- unit classes and blocks ---------------------------------------------------------------------


def test_unit_class_label_and_validation() -> None:
    uc = UnitClass("PA", "RGGI", "allowance", 2025)
    assert uc.label() == "PA/RGGI/allowance/2025"
    for issuer, program, unit_type in [("", "RGGI", "allowance"), ("PA", "", "allowance")]:
        with pytest.raises(InvalidArgument):
            UnitClass(issuer, program, unit_type, 2025)
    with pytest.raises(InvalidArgument):
        UnitClass("PA", "RGGI", "", 2025)


@pytest.mark.parametrize("vintage", [1899, 10000, 0, -2025, 25])
def test_unit_class_refuses_a_vintage_that_is_not_a_year(vintage: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        UnitClass("PA", "RGGI", "allowance", vintage)
    assert caught.value.details == {"vintage": vintage}


@pytest.mark.parametrize("vintage", [1900, 2025, 9999])
def test_unit_class_accepts_year_vintages(vintage: int) -> None:
    assert UnitClass("PA", "RGGI", "allowance", vintage).vintage == vintage


def test_same_serials_under_different_vintages_are_different_units() -> None:
    a = UnitBlock(UnitClass("PA", "RGGI", "allowance", 2024), SerialRange(1, 10))
    b = UnitBlock(UnitClass("PA", "RGGI", "allowance", 2025), SerialRange(1, 10))
    assert a != b
    assert len({a, b}) == 2


def test_unit_block_to_dict_and_str() -> None:
    block = UnitBlock(UnitClass("PA", "RGGI", "allowance", 2025), SerialRange(1, 1200))
    assert block.quantity == 1200
    assert str(block) == "PA/RGGI/allowance/2025:1-1200"
    assert block.to_dict() == {
        "issuer": "PA",
        "program": "RGGI",
        "unit_type": "allowance",
        "vintage": 2025,
        "start": 1,
        "end": 1200,
    }
