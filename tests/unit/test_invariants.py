"""Ledger invariants: no serial in two rows; moves conserve serials."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regfed.node.domain.errors import InvariantViolation
from regfed.node.domain.holdings import BlockState, Holding
from regfed.node.domain.invariants import MovementAudit, check_disjoint
from regfed.node.domain.serials import SerialRange, UnitBlock, UnitClass

pytestmark = pytest.mark.unit

CLASSES = [
    UnitClass("PA", "RGGI", "allowance", 2024),
    UnitClass("PA", "RGGI", "allowance", 2025),
    UnitClass("NJ", "ARP", "offset", 2024),
]
UC = CLASSES[0]


def holding(
    uc: UnitClass,
    start: int,
    end: int,
    *,
    id: int = 1,
    account: int = 1,
    state: BlockState = BlockState.HELD,
) -> Holding:
    return Holding(id, UnitBlock(uc, SerialRange(start, end)), account, state, 1)


def sort_rows(rows: list[Holding]) -> list[Holding]:
    """As the store hands them over: by class, then start."""
    return sorted(rows, key=lambda h: (h.unit_class, h.serials.start, h.serials.end))


@st.composite
def row_sets(draw: st.DrawFn) -> list[Holding]:
    ids = itertools.count(1)
    rows = []
    for _ in range(draw(st.integers(0, 10))):
        uc = draw(st.sampled_from(CLASSES))
        start = draw(st.integers(0, 50))
        end = draw(st.integers(start, min(start + 12, 60)))
        rows.append(
            holding(
                uc,
                start,
                end,
                id=next(ids),
                account=draw(st.integers(1, 3)),
                state=draw(st.sampled_from(list(BlockState))),
            )
        )
    return rows


@st.composite
def disjoint_row_sets(draw: st.DrawFn) -> list[Holding]:
    ids = itertools.count(1)
    rows = []
    for uc in CLASSES:
        cursor = draw(st.integers(0, 3))
        for _ in range(draw(st.integers(0, 5))):
            length = draw(st.integers(1, 8))
            rows.append(holding(uc, cursor, cursor + length - 1, id=next(ids)))
            cursor += length + draw(st.integers(0, 2))
    return rows


def serials_held_twice(rows: list[Holding]) -> bool:
    seen: set[tuple[UnitClass, int]] = set()
    for h in rows:
        for s in range(h.serials.start, h.serials.end + 1):
            if (h.unit_class, s) in seen:
                return True
            seen.add((h.unit_class, s))
    return False


@settings(deadline=None)
@given(row_sets())
def test_check_disjoint_matches_the_oracle(rows: list[Holding]) -> None:
    ordered = sort_rows(rows)
    if not serials_held_twice(rows):
        check_disjoint(ordered)
        return
    with pytest.raises(InvariantViolation) as caught:
        check_disjoint(ordered)
    error = caught.value
    assert error.code == "INVARIANT_VIOLATION"
    first, second = error.details["blocks"]
    # The two rows it names really overlap, in one class.
    assert {k: first[k] for k in ("issuer", "program", "unit_type", "vintage")} == {
        k: second[k] for k in ("issuer", "program", "unit_type", "vintage")
    }
    assert first["start"] <= second["end"] and second["start"] <= first["end"]


@given(disjoint_row_sets())
def test_check_disjoint_accepts_disjoint_rows(rows: list[Holding]) -> None:
    check_disjoint(sort_rows(rows))


@given(disjoint_row_sets(), st.data())
def test_check_disjoint_catches_one_added_overlap(rows: list[Holding], data: st.DataObject) -> None:
    if not rows:
        return
    victim = data.draw(st.sampled_from(rows))
    s = data.draw(st.integers(victim.serials.start, victim.serials.end))
    start = data.draw(st.integers(max(0, s - 5), s))
    intruder = holding(
        victim.unit_class, start, s + data.draw(st.integers(0, 5)), id=999, account=2
    )
    with pytest.raises(InvariantViolation):
        check_disjoint(sort_rows([*rows, intruder]))


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([holding(UC, 0, 100, id=1), holding(UC, 5, 6, id=2)], id="contained"),
        pytest.param([holding(UC, 0, 10, id=1), holding(UC, 10, 20, id=2)], id="one-serial"),
        pytest.param([holding(UC, 0, 10, id=1), holding(UC, 0, 10, id=2)], id="identical"),
        pytest.param(
            [holding(UC, 0, 100, id=1), holding(UC, 20, 30, id=2), holding(UC, 50, 60, id=3)],
            id="inside-a-long-row",
        ),
        pytest.param(
            [
                holding(UC, 0, 10, id=1, state=BlockState.RETIRED),
                holding(UC, 5, 5, id=2, state=BlockState.SURRENDERED),
            ],
            id="final-states-too",
        ),
    ],
)
def test_check_disjoint_examples_of_overlap(rows: list[Holding]) -> None:
    with pytest.raises(InvariantViolation):
        check_disjoint(rows)


def test_check_disjoint_same_serials_in_other_classes_are_fine() -> None:
    check_disjoint(sort_rows([holding(uc, 0, 10, id=i) for i, uc in enumerate(CLASSES)]))
    check_disjoint([])
    check_disjoint([holding(UC, 0, 9, id=1), holding(UC, 10, 19, id=2)])


# -- MovementAudit -------------------------------------------------------------------------------


def block(start: int, end: int, uc: UnitClass = UC) -> UnitBlock:
    return UnitBlock(uc, SerialRange(start, end))


def test_a_move_conserves_serials() -> None:
    audit = MovementAudit()
    audit.take(block(0, 9))
    audit.put(block(0, 9))
    audit.check_conserved()


def test_issuance_adds_exactly_its_range() -> None:
    audit = MovementAudit()
    audit.issue(block(0, 9))
    audit.put(block(0, 9))
    audit.check_conserved()

    wrong = MovementAudit()
    wrong.issue(block(0, 9))
    wrong.put(block(0, 10))
    with pytest.raises(InvariantViolation) as caught:
        wrong.check_conserved()
    assert caught.value.details == {"unit_class": UC.label()}


def test_split_and_joined_pieces_are_conserved() -> None:
    audit = MovementAudit()
    audit.take(block(0, 4))
    audit.take(block(5, 9))
    audit.put(block(0, 9))
    audit.check_conserved()


@pytest.mark.parametrize(
    ("taken", "put"),
    [
        pytest.param([block(0, 9)], [], id="destroyed"),
        pytest.param([], [block(0, 9)], id="created"),
        pytest.param([block(0, 9)], [block(1, 10)], id="other-serials-same-count"),
        pytest.param([block(0, 9)], [block(0, 9, CLASSES[1])], id="changed-class"),
        pytest.param([block(0, 9)], [block(0, 9), block(0, 9)], id="duplicated"),
        pytest.param([block(0, 4), block(6, 9)], [block(0, 9)], id="gap-filled"),
    ],
)
def test_unconserved_moves_are_refused(taken: list[UnitBlock], put: list[UnitBlock]) -> None:
    audit = MovementAudit()
    for b in taken:
        audit.take(b)
    for b in put:
        audit.put(b)
    with pytest.raises(InvariantViolation):
        audit.check_conserved()


@st.composite
def partitions(draw: st.DrawFn, span: SerialRange) -> list[SerialRange]:
    """Cut ``span`` into consecutive pieces."""
    cuts = (
        sorted(draw(st.sets(st.integers(span.start + 1, span.end), max_size=6)))
        if span.quantity > 1
        else []
    )
    bounds = [span.start, *cuts, span.end + 1]
    return [SerialRange(a, b - 1) for a, b in itertools.pairwise(bounds)]


@given(st.data())
def test_any_two_partitions_of_the_same_serials_are_conserved(data: st.DataObject) -> None:
    start = data.draw(st.integers(0, 20))
    span = SerialRange(start, start + data.draw(st.integers(0, 30)))
    audit = MovementAudit()
    for piece in data.draw(st.permutations(data.draw(partitions(span)))):
        audit.take(UnitBlock(UC, piece))
    for piece in data.draw(partitions(span)):
        audit.put(UnitBlock(UC, piece))
    audit.check_conserved()
    # Dropping any single serial from what is put breaks conservation.
    lost = data.draw(st.integers(span.start, span.end))
    broken = MovementAudit()
    for piece in span.minus(SerialRange(lost, lost)):
        broken.put(UnitBlock(UC, piece))
    broken.take(UnitBlock(UC, span))
    with pytest.raises(InvariantViolation):
        broken.check_conserved()
