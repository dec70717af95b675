"""Journal replay: movements applied in order rebuild exactly the per-place holdings."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regfed.node.domain.holdings import BlockState
from regfed.node.domain.journal import (
    LedgerKey,
    Movement,
    Place,
    ReplayError,
    canonical,
    replay,
)
from regfed.node.domain.serials import SerialRange, UnitBlock, UnitClass

pytestmark = pytest.mark.unit

CLASSES = [
    UnitClass("PA", "RGGI", "allowance", 2024),
    UnitClass("PA", "RGGI", "allowance", 2025),
    UnitClass("NJ", "RGGI", "allowance", 2024),
]
PLACES = [
    Place(1, BlockState.HELD),
    Place(2, BlockState.HELD),
    Place(2, BlockState.ESCROWED),
    Place(3, BlockState.INCOMING),
    Place(9, BlockState.SURRENDERED, attributed_account_id=2),
    Place(8, BlockState.RETIRED, attributed_account_id=1),
]
UC = CLASSES[0]
A, B = PLACES[0], PLACES[1]


def units(ranges: list[SerialRange]) -> set[int]:
    return {s for r in ranges for s in range(r.start, r.end + 1)}


def issue(start: int, end: int, to: Place, uc: UnitClass = UC) -> Movement:
    return Movement(UnitBlock(uc, SerialRange(start, end)), None, to)


def move(start: int, end: int, origin: Place, to: Place, uc: UnitClass = UC) -> Movement:
    return Movement(UnitBlock(uc, SerialRange(start, end)), origin, to)


@settings(deadline=None, max_examples=200)
@given(st.data())
def test_random_valid_sequences_replay_to_the_model(data: st.DataObject) -> None:
    """The model keeps rows as the store does: a movement takes a piece of one row."""
    rows: dict[LedgerKey, list[SerialRange]] = {}
    next_serial = dict.fromkeys(CLASSES, 0)
    movements: list[Movement] = []
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        pieces = [(key, r) for key, ranges in rows.items() for r in ranges]
        if not pieces or data.draw(st.integers(0, 3), label="issue?") == 0:
            uc = data.draw(st.sampled_from(CLASSES))
            place = data.draw(st.sampled_from(PLACES))
            start = next_serial[uc] + data.draw(st.integers(0, 3))
            serials = SerialRange(start, start + data.draw(st.integers(0, 8)))
            next_serial[uc] = serials.end + 1
            movements.append(Movement(UnitBlock(uc, serials), None, place))
            rows.setdefault((place, uc), []).append(serials)
            continue
        (origin, uc), row = data.draw(st.sampled_from(pieces), label="row")
        a = data.draw(st.integers(row.start, row.end))
        b = data.draw(st.integers(a, row.end))
        moved = SerialRange(a, b)
        destination = data.draw(st.sampled_from(PLACES), label="to")
        movements.append(Movement(UnitBlock(uc, moved), origin, destination))
        rows[(origin, uc)].remove(row)
        rows[(origin, uc)] += row.minus(moved)
        rows.setdefault((destination, uc), []).append(moved)

    expected = {key: units(ranges) for key, ranges in rows.items() if ranges}
    result = replay(movements)
    assert {key: units(ranges) for key, ranges in result.items()} == expected
    for ranges in result.values():
        for x, y in itertools.pairwise(ranges):
            assert x.end + 1 < y.start  # canonical: sorted, merged
    stored = [(place, UnitBlock(uc, r)) for (place, uc), rs in rows.items() for r in rs]
    assert canonical(stored) == result
    # Nothing is created or destroyed: every issued serial is in exactly one place.
    for uc in CLASSES:
        placed = [s for (_, c), rs in result.items() if c == uc for s in units(rs)]
        issued = [
            s
            for m in movements
            if m.origin is None and m.block.unit_class == uc
            for s in range(m.block.serials.start, m.block.serials.end + 1)
        ]
        assert sorted(placed) == sorted(issued)


def test_replay_example() -> None:
    surrender = Place(9, BlockState.SURRENDERED, attributed_account_id=1)
    result = replay(
        [
            issue(1, 100, A),
            move(1, 40, A, B),
            move(10, 19, B, surrender),
            move(41, 100, A, B),
        ]
    )
    assert result == {
        (B, UC): [SerialRange(1, 9), SerialRange(20, 100)],
        (surrender, UC): [SerialRange(10, 19)],
    }


def test_places_differ_by_state_and_attribution() -> None:
    escrow = Place(1, BlockState.ESCROWED)
    retired_from_1 = Place(8, BlockState.RETIRED, attributed_account_id=1)
    retired_from_2 = Place(8, BlockState.RETIRED, attributed_account_id=2)
    result = replay(
        [
            issue(0, 9, A),
            move(0, 2, A, escrow),
            move(3, 4, A, retired_from_1),
            issue(10, 19, B),
            move(10, 11, B, retired_from_2),
        ]
    )
    assert result[(escrow, UC)] == [SerialRange(0, 2)]
    assert result[(retired_from_1, UC)] == [SerialRange(3, 4)]
    assert result[(retired_from_2, UC)] == [SerialRange(10, 11)]


def test_empty_journal_replays_to_nothing() -> None:
    assert replay([]) == {}
    assert canonical([]) == {}


def test_replay_of_huge_ranges_works_on_range_ends() -> None:
    result = replay([issue(0, 10**15, A), move(10**9, 10**12, A, B)])
    assert result[(B, UC)] == [SerialRange(10**9, 10**12)]
    assert result[(A, UC)] == [SerialRange(0, 10**9 - 1), SerialRange(10**12 + 1, 10**15)]


@pytest.mark.parametrize(
    "movements",
    [
        pytest.param([move(0, 9, A, B)], id="origin-never-held-anything"),
        pytest.param([issue(0, 9, A), move(0, 9, B, A)], id="origin-never-held-the-class"),
        pytest.param([issue(0, 9, A), move(5, 10, A, B)], id="partly-not-held"),
        pytest.param([issue(5, 9, A), move(0, 5, A, B)], id="starts-before-held"),
        pytest.param([issue(0, 9, A), move(0, 9, A, B), move(0, 0, A, B)], id="already-gone"),
        pytest.param([issue(0, 9, A), issue(5, 14, A)], id="issued-twice-same-place"),
        pytest.param([issue(0, 9, A), issue(9, 20, A)], id="shares-the-last-serial"),
        pytest.param([issue(10, 19, A), issue(0, 10, A)], id="shares-the-first-serial"),
        pytest.param([issue(0, 9, A), issue(0, 9, B), move(0, 9, B, A)], id="held-twice-on-move"),
        pytest.param(
            [issue(0, 9, A), move(0, 4, A, B, uc=CLASSES[1])], id="other-vintage-never-held"
        ),
    ],
)
def test_inconsistent_journals_are_refused(movements: list[Movement]) -> None:
    with pytest.raises(ReplayError):
        replay(movements)


def test_movement_and_place_to_dict() -> None:
    surrender = Place(9, BlockState.SURRENDERED, attributed_account_id=1)
    assert A.to_dict() == {"account_id": 1, "state": "held"}
    assert surrender.to_dict() == {
        "account_id": 9,
        "state": "surrendered",
        "attributed_account_id": 1,
    }
    assert issue(1, 5, A).to_dict() == {
        **UnitBlock(UC, SerialRange(1, 5)).to_dict(),
        "from": None,
        "to": {"account_id": 1, "state": "held"},
    }
    assert move(1, 5, A, surrender).to_dict()["from"] == A.to_dict()


def test_replay_refuses_the_same_serials_in_two_places() -> None:
    uc = UnitClass("PA", "RGGI", "allowance", 2025)
    a = Place(1, BlockState.HELD)
    b = Place(2, BlockState.HELD)
    twice = [
        Movement(UnitBlock(uc, SerialRange(1, 10)), None, a),
        Movement(UnitBlock(uc, SerialRange(5, 6)), None, b),
    ]
    with pytest.raises(ReplayError, match="twice"):
        replay(twice)
