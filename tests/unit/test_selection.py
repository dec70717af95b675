"""Selection: by quantity in the documented order, and by exact named serials.

The oracle expands small blocks into lists of units and works on those; the code under test
never looks at individual units.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regfed.node.domain.errors import InsufficientHoldings, InvalidArgument, UnitsNotHeld
from regfed.node.domain.holdings import BlockState, Holding
from regfed.node.domain.selection import Take, selection_key, take_blocks, take_quantity
from regfed.node.domain.serials import SerialRange, UnitBlock, UnitClass

pytestmark = pytest.mark.unit

Unit = tuple[UnitClass, int]

# Chosen so that the dataclass order of UnitClass (issuer first) differs from selection order
# (vintage first): a selection that sorted by the wrong key would be caught.
CLASSES = [
    UnitClass(issuer, program, unit_type, vintage)
    for issuer, program, unit_type, vintage in itertools.product(
        ("NJ", "PA"), ("ARP", "RGGI"), ("allowance", "offset"), (2024, 2025)
    )
]
STATES = [BlockState.HELD] * 5 + [s for s in BlockState if s is not BlockState.HELD]


def documented_key(uc: UnitClass, serial: int) -> tuple[int, str, str, str, int]:
    """docs/ledger.md: oldest vintage, then issuer, program, unit type, then lowest serial."""
    return (uc.vintage, uc.issuer, uc.program, uc.unit_type, serial)


def holding(
    uc: UnitClass,
    start: int,
    end: int,
    *,
    id: int = 1,
    state: BlockState = BlockState.HELD,
    quarantined: bool = False,
) -> Holding:
    return Holding(id, UnitBlock(uc, SerialRange(start, end)), 7, state, 1, quarantined=quarantined)


@st.composite
def ledgers(draw: st.DrawFn, classes: list[UnitClass] = CLASSES) -> list[Holding]:
    """Disjoint rows of one account; rows of a class may touch (gap 0) as real rows do."""
    rows: list[Holding] = []
    ids = itertools.count(1)
    for uc in draw(st.lists(st.sampled_from(classes), unique=True, max_size=5)):
        cursor = draw(st.integers(0, 5))
        for _ in range(draw(st.integers(1, 4))):
            length = draw(st.integers(1, 6))
            rows.append(
                holding(
                    uc,
                    cursor,
                    cursor + length - 1,
                    id=next(ids),
                    state=draw(st.sampled_from(STATES)),
                    quarantined=draw(st.sampled_from([False, False, False, True])),
                )
            )
            cursor += length + draw(st.integers(0, 3))
    return rows


def spendable_units(rows: Iterable[Holding]) -> list[Unit]:
    units = [
        (h.unit_class, s)
        for h in rows
        if h.state is BlockState.HELD and not h.quarantined
        for s in range(h.serials.start, h.serials.end + 1)
    ]
    return sorted(units, key=lambda u: documented_key(*u))


def in_selection_order(rows: list[Holding]) -> list[Holding]:
    return sorted(rows, key=lambda h: documented_key(h.unit_class, h.serials.start))


def expand(takes: Iterable[Take]) -> list[Unit]:
    return [
        (t.holding.unit_class, s) for t in takes for s in range(t.serials.start, t.serials.end + 1)
    ]


def expand_dicts(blocks: list[dict[str, object]]) -> list[Unit]:
    out: list[Unit] = []
    for b in blocks:
        uc = UnitClass(
            str(b["issuer"]), str(b["program"]), str(b["unit_type"]), int(str(b["vintage"]))
        )
        out += [(uc, s) for s in range(int(str(b["start"])), int(str(b["end"])) + 1)]
    return out


def check_take_shape(take: Take) -> None:
    assert take.holding.spendable
    assert take.holding.serials.contains(take.serials)
    assert take.block == UnitBlock(take.holding.unit_class, take.serials)
    left = {s for r in take.remainders for s in range(r.start, r.end + 1)}
    whole = set(range(take.holding.serials.start, take.holding.serials.end + 1))
    assert left == whole - set(range(take.serials.start, take.serials.end + 1))


# -- selection order -----------------------------------------------------------------------------


@given(ledgers())
def test_selection_key_sorts_in_the_documented_order(rows: list[Holding]) -> None:
    assert sorted(rows, key=selection_key) == in_selection_order(rows)


# -- take_quantity -------------------------------------------------------------------------------


@settings(deadline=None)
@given(ledgers(), st.data())
def test_take_quantity_matches_the_oracle(rows: list[Holding], data: st.DataObject) -> None:
    oracle = spendable_units(rows)
    quantity = data.draw(st.integers(1, len(oracle) + 3))
    ordered = in_selection_order(rows)
    if quantity > len(oracle):
        with pytest.raises(InsufficientHoldings) as caught:
            take_quantity(ordered, quantity, "PA-000017-49")
        assert caught.value.details == {
            "account": "PA-000017-49",
            "requested": quantity,
            "available": len(oracle),
        }
        return
    takes = take_quantity(ordered, quantity, "PA-000017-49")
    assert expand(takes) == oracle[:quantity]
    assert sum(t.serials.quantity for t in takes) == quantity
    for t in takes:
        check_take_shape(t)
        # The lowest serials of each block; only the last take may leave a remainder.
        assert t.serials.start == t.holding.serials.start
    for t in takes[:-1]:
        assert t.remainders == []
    assert len({t.holding.id for t in takes}) == len(takes)


def test_take_quantity_example_oldest_vintage_first() -> None:
    new = holding(UnitClass("NJ", "ARP", "allowance", 2025), 0, 9, id=1)
    old_pa = holding(UnitClass("PA", "RGGI", "allowance", 2024), 100, 104, id=2)
    old_nj = holding(UnitClass("NJ", "RGGI", "allowance", 2024), 50, 52, id=3)
    takes = take_quantity(in_selection_order([new, old_pa, old_nj]), 10, "A")
    assert [(t.holding.id, t.serials) for t in takes] == [
        (3, SerialRange(50, 52)),
        (2, SerialRange(100, 104)),
        (1, SerialRange(0, 1)),
    ]
    assert takes[-1].remainders == [SerialRange(2, 9)]


@pytest.mark.parametrize(
    ("state", "quarantined"),
    [(s, False) for s in BlockState if s is not BlockState.HELD] + [(BlockState.HELD, True)],
)
def test_take_quantity_skips_unspendable_blocks(state: BlockState, quarantined: bool) -> None:
    uc = UnitClass("PA", "RGGI", "allowance", 2024)
    blocked = holding(uc, 0, 99, id=1, state=state, quarantined=quarantined)
    free = holding(uc, 100, 109, id=2)
    takes = take_quantity([blocked, free], 5, "A")
    assert [(t.holding.id, t.serials) for t in takes] == [(2, SerialRange(100, 104))]
    with pytest.raises(InsufficientHoldings) as caught:
        take_quantity([blocked, free], 11, "A")
    assert caught.value.details["available"] == 10
    assert caught.value.code == "INSUFFICIENT_HOLDINGS"


def test_take_quantity_with_nothing_held() -> None:
    with pytest.raises(InsufficientHoldings) as caught:
        take_quantity([], 1, "PA-000017-49")
    assert caught.value.details == {"account": "PA-000017-49", "requested": 1, "available": 0}


def test_take_quantity_stops_reading_once_covered() -> None:
    uc = UnitClass("PA", "RGGI", "allowance", 2024)

    def rows() -> Iterator[Holding]:
        yield holding(uc, 0, 4, id=1)
        yield holding(uc, 5, 9, id=2)
        raise AssertionError("read past the blocks it needed")

    takes = take_quantity(rows(), 7, "A")
    assert [t.serials for t in takes] == [SerialRange(0, 4), SerialRange(5, 6)]


def test_take_quantity_cost_does_not_depend_on_quantity() -> None:
    """A billion units from one block is one Take (ranges only; it never iterates units)."""
    uc = UnitClass("PA", "RGGI", "allowance", 2024)
    huge = holding(uc, 0, 10**12 - 1)
    takes = take_quantity([huge], 10**9 + 7, "A")
    assert len(takes) == 1
    assert takes[0].serials == SerialRange(0, 10**9 + 6)
    assert takes[0].remainders == [SerialRange(10**9 + 7, 10**12 - 1)]

    everything = holding(uc, 0, 2**63 - 2)
    (take,) = take_quantity([everything], 2**63 - 1, "A")
    assert take.serials == everything.serials
    assert take.remainders == []
    with pytest.raises(InsufficientHoldings) as caught:
        take_quantity([everything], 2**63, "A")
    assert caught.value.details["available"] == 2**63 - 1


# -- take_blocks ---------------------------------------------------------------------------------


def runs(serials: list[int]) -> list[SerialRange]:
    out: list[SerialRange] = []
    for s in sorted(serials):
        if out and out[-1].end + 1 == s:
            out[-1] = SerialRange(out[-1].start, s)
        else:
            out.append(SerialRange(s, s))
    return out


@st.composite
def covered_requests(draw: st.DrawFn, rows: list[Holding]) -> list[UnitBlock]:
    """Disjoint ranges inside the spendable serials; may span rows that touch."""
    by_class: dict[UnitClass, list[int]] = {}
    for uc, s in spendable_units(rows):
        by_class.setdefault(uc, []).append(s)
    wanted: list[UnitBlock] = []
    for uc, serials in by_class.items():
        for run in runs(serials):
            cursor = run.start
            while cursor <= run.end and draw(st.booleans()):
                a = draw(st.integers(cursor, run.end))
                b = draw(st.integers(a, run.end))
                wanted.append(UnitBlock(uc, SerialRange(a, b)))
                cursor = b + 1
    return draw(st.permutations(wanted))


@st.composite
def any_requests(draw: st.DrawFn) -> list[UnitBlock]:
    """Disjoint ranges of a few classes anywhere in the small serial space (may touch)."""
    wanted: list[UnitBlock] = []
    for uc in draw(st.lists(st.sampled_from(CLASSES[:4]), unique=True, min_size=1, max_size=3)):
        cursor = draw(st.integers(0, 10))
        for _ in range(draw(st.integers(1, 3))):
            length = draw(st.integers(1, 12))
            wanted.append(UnitBlock(uc, SerialRange(cursor, cursor + length - 1)))
            cursor += length + draw(st.integers(0, 4))
    return draw(st.permutations(wanted))


def check_take_blocks(rows: list[Holding], wanted: list[UnitBlock]) -> None:
    requested = expand_dicts([w.to_dict() for w in wanted])
    assert len(requested) == len(set(requested))  # the generators never name a serial twice
    held = set(spendable_units(rows))
    missing = set(requested) - held
    candidates = list(reversed(rows))  # any order: take_blocks sorts what it needs
    if not missing:
        takes = take_blocks(candidates, wanted, "PA-000017-49")
        got = expand(takes)
        assert sorted(got, key=lambda u: documented_key(*u)) == sorted(
            requested, key=lambda u: documented_key(*u)
        )
        for t in takes:
            check_take_shape(t)
        return
    with pytest.raises(UnitsNotHeld) as caught:
        take_blocks(candidates, wanted, "PA-000017-49")
    error = caught.value
    # When every missing serial is held but quarantined, that is the refusal; else all missing.
    disputed = missing <= set(
        expand_dicts(
            [r.block.to_dict() for r in rows if r.quarantined and r.state is BlockState.HELD]
        )
    )
    assert error.code == ("UNITS_QUARANTINED" if disputed else "UNITS_NOT_HELD")
    assert error.details["account"] == "PA-000017-49"
    listed = expand_dicts(error.details["blocks"])
    assert len(listed) == len(set(listed)), "a missing serial is listed twice"
    assert set(listed) == missing


@settings(deadline=None)
@given(ledgers(CLASSES[:4]), st.data())
def test_take_blocks_covered_requests_return_exactly_the_named_serials(
    rows: list[Holding], data: st.DataObject
) -> None:
    wanted = data.draw(covered_requests(rows))
    if not wanted:
        assert take_blocks(rows, [], "A") == []
        return
    check_take_blocks(rows, wanted)


@settings(deadline=None)
@given(ledgers(CLASSES[:4]), any_requests())
def test_take_blocks_matches_the_oracle(rows: list[Holding], wanted: list[UnitBlock]) -> None:
    check_take_blocks(rows, wanted)


def test_take_blocks_spans_touching_rows() -> None:
    uc = UnitClass("PA", "RGGI", "allowance", 2024)
    rows = [holding(uc, 0, 9, id=1), holding(uc, 10, 19, id=2)]
    takes = take_blocks(rows, [UnitBlock(uc, SerialRange(5, 14))], "A")
    assert [(t.holding.id, t.serials) for t in takes] == [
        (1, SerialRange(5, 9)),
        (2, SerialRange(10, 14)),
    ]
    assert takes[0].remainders == [SerialRange(0, 4)]
    assert takes[1].remainders == [SerialRange(15, 19)]


def test_take_blocks_names_every_missing_piece() -> None:
    uc = UnitClass("PA", "RGGI", "allowance", 2024)
    other_vintage = UnitClass("PA", "RGGI", "allowance", 2025)
    rows = [
        holding(uc, 10, 19, id=1),
        holding(uc, 30, 39, id=2, state=BlockState.ESCROWED),
        holding(uc, 40, 49, id=3, quarantined=True),
        holding(other_vintage, 0, 100, id=4),
    ]
    wanted = [UnitBlock(uc, SerialRange(0, 59))]
    with pytest.raises(UnitsNotHeld) as caught:
        take_blocks(rows, wanted, "PA-000017-49")
    assert [(b["start"], b["end"]) for b in caught.value.details["blocks"]] == [(0, 9), (20, 59)]
    assert all(b["vintage"] == 2024 for b in caught.value.details["blocks"])
    assert "PA/RGGI/allowance/2024:0-9" in caught.value.message


def test_take_blocks_message_is_bounded_but_details_are_complete() -> None:
    uc = UnitClass("PA", "RGGI", "allowance", 2024)
    wanted = [UnitBlock(uc, SerialRange(10 * i, 10 * i + 4)) for i in range(13)]
    with pytest.raises(UnitsNotHeld) as caught:
        take_blocks([], wanted, "A")
    assert len(caught.value.details["blocks"]) == 13
    assert caught.value.message.endswith(" and 3 more")


@pytest.mark.parametrize(
    ("a", "b"),
    [((0, 9), (5, 14)), ((0, 9), (0, 9)), ((0, 9), (3, 4)), ((5, 5), (0, 5))],
)
def test_take_blocks_refuses_a_request_naming_serials_twice(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    uc = UnitClass("PA", "RGGI", "allowance", 2024)
    rows = [holding(uc, 0, 99)]
    first, second = UnitBlock(uc, SerialRange(*a)), UnitBlock(uc, SerialRange(*b))
    with pytest.raises(UnitsNotHeld) as caught:
        take_blocks(rows, [second, UnitBlock(uc, SerialRange(50, 60)), first], "A")
    assert sorted(caught.value.details["blocks"], key=str) == sorted(
        [first.to_dict(), second.to_dict()], key=str
    )


def test_take_blocks_same_serials_of_two_vintages_are_not_twice() -> None:
    a = UnitClass("PA", "RGGI", "allowance", 2024)
    b = UnitClass("PA", "RGGI", "allowance", 2025)
    rows = [holding(a, 0, 9, id=1), holding(b, 0, 9, id=2)]
    takes = take_blocks(
        rows, [UnitBlock(a, SerialRange(0, 9)), UnitBlock(b, SerialRange(0, 9))], "A"
    )
    assert sorted(t.holding.id for t in takes) == [1, 2]


def test_take_blocks_cost_does_not_depend_on_quantity() -> None:
    uc = UnitClass("PA", "RGGI", "allowance", 2024)
    huge = holding(uc, 0, 10**12)
    (take,) = take_blocks([huge], [UnitBlock(uc, SerialRange(10**6, 10**6 + 10**9))], "A")
    assert take.serials.quantity == 10**9 + 1
    assert take.remainders == [SerialRange(0, 10**6 - 1), SerialRange(10**6 + 10**9 + 1, 10**12)]
    with pytest.raises(UnitsNotHeld) as caught:
        take_blocks([huge], [UnitBlock(uc, SerialRange(10**12 - 5, 10**13))], "A")
    assert caught.value.details["blocks"] == [
        UnitBlock(uc, SerialRange(10**12 + 1, 10**13)).to_dict()
    ]


def test_take_quantity_refuses_a_non_positive_quantity() -> None:
    uc = UnitClass("PA", "RGGI", "allowance", 2024)
    with pytest.raises(InvalidArgument):
        take_quantity([holding(uc, 0, 9)], 0, "A")
