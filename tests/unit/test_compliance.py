"""Compliance deduction plans: eligible vintages and types, never more than still owed."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regfed.node.domain.compliance import DeductionPlan, eligible, plan_deduction
from regfed.node.domain.errors import InvalidArgument
from regfed.node.domain.holdings import BlockState, Holding
from regfed.node.domain.programs import ControlPeriod, ProgramRules
from regfed.node.domain.serials import SerialRange, UnitBlock, UnitClass

pytestmark = pytest.mark.unit

Unit = tuple[UnitClass, int]

TYPES = ("allowance", "offset", "erc")
CLASSES = [
    UnitClass(issuer, program, unit_type, vintage)
    for issuer, program, unit_type, vintage in itertools.product(
        ("NJ", "PA"), ("RGGI", "ARP"), TYPES, range(2022, 2029)
    )
]
STATES = [BlockState.HELD] * 5 + [s for s in BlockState if s is not BlockState.HELD]
RGGI = ProgramRules("RGGI", "RGGI", True, control_period_years=3)


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


def selection_order(rows: list[Holding]) -> list[Holding]:
    def key(h: Holding) -> tuple[int, str, str, str, int]:
        uc = h.unit_class
        return (uc.vintage, uc.issuer, uc.program, uc.unit_type, h.serials.start)

    return sorted(rows, key=key)


@st.composite
def ledgers(draw: st.DrawFn) -> list[Holding]:
    rows: list[Holding] = []
    ids = itertools.count(1)
    for uc in draw(st.lists(st.sampled_from(CLASSES), unique=True, max_size=8)):
        cursor = draw(st.integers(0, 5))
        for _ in range(draw(st.integers(1, 3))):
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


@st.composite
def programs(draw: st.DrawFn) -> ProgramRules:
    types = draw(st.permutations(TYPES))[: draw(st.integers(1, len(TYPES)))]
    return ProgramRules(
        "RGGI",
        "RGGI",
        True,
        deduction_unit_types=tuple(types),
        units_per_ton=draw(st.integers(1, 3)),
    )


@st.composite
def periods(draw: st.DrawFn) -> ControlPeriod:
    first = draw(st.integers(2021, 2029))
    return ControlPeriod(first, draw(st.integers(first, 2029)))


def expected_units(rows: list[Holding], rules: ProgramRules, period: ControlPeriod) -> list[Unit]:
    """Oracle: the program's types in the program's order, then selection order, unit by unit."""
    units = [
        (h.unit_class, s)
        for h in rows
        if h.state is BlockState.HELD
        and not h.quarantined
        and h.unit_class.program == rules.code
        and h.unit_class.unit_type in rules.deduction_unit_types
        and h.unit_class.vintage <= period.last_year
        for s in range(h.serials.start, h.serials.end + 1)
    ]
    return sorted(
        units,
        key=lambda u: (
            rules.deduction_unit_types.index(u[0].unit_type),
            u[0].vintage,
            u[0].issuer,
            u[0].program,
            u[0].unit_type,
            u[1],
        ),
    )


def expand(plan: DeductionPlan) -> list[Unit]:
    return [
        (t.holding.unit_class, s)
        for t in plan.takes
        for s in range(t.serials.start, t.serials.end + 1)
    ]


@settings(deadline=None)
@given(ledgers(), programs(), periods(), st.integers(0, 60), st.integers(0, 80))
def test_plan_matches_the_oracle(
    rows: list[Holding],
    rules: ProgramRules,
    period: ControlPeriod,
    tons: int,
    previously: int,
) -> None:
    plan = plan_deduction(selection_order(rows), rules, period, tons, previously)
    obligation = tons * rules.units_per_ton
    owed = max(0, obligation - previously)
    available = expected_units(rows, rules, period)

    assert plan.obligation == obligation
    assert plan.previously_surrendered == previously
    assert expand(plan) == available[:owed]
    assert plan.deducted == min(owed, len(available))
    assert plan.deducted <= owed  # never more than still owed
    assert plan.shortfall == max(0, obligation - previously - plan.deducted)
    assert plan.shortfall == owed - plan.deducted
    for take in plan.takes:
        uc = take.holding.unit_class
        assert take.holding.spendable
        assert uc.vintage <= period.last_year
        assert uc.unit_type in rules.deduction_unit_types
        assert uc.program == rules.code
        assert take.holding.serials.contains(take.serials)
        assert take.serials.start == take.holding.serials.start
        assert eligible(take.holding, rules, period)
    assert len({t.holding.id for t in plan.takes}) == len(plan.takes)


# -- examples ------------------------------------------------------------------------------------


def test_future_vintages_do_not_count_banked_ones_do() -> None:
    period = ControlPeriod.parse("2024-2026")
    rows = [
        holding(UnitClass("PA", "RGGI", "allowance", 2020), 0, 4, id=1),  # banked
        holding(UnitClass("PA", "RGGI", "allowance", 2026), 0, 4, id=2),  # last year: eligible
        holding(UnitClass("PA", "RGGI", "allowance", 2027), 0, 99, id=3),  # future
    ]
    plan = plan_deduction(rows, RGGI, period, tons=20, previously_surrendered=0)
    assert [(t.holding.id, t.serials) for t in plan.takes] == [
        (1, SerialRange(0, 4)),
        (2, SerialRange(0, 4)),
    ]
    assert (plan.obligation, plan.deducted, plan.shortfall) == (20, 10, 10)


def test_only_the_programs_deduction_types_and_program_are_used() -> None:
    period = ControlPeriod.parse("2025")
    rows = selection_order(
        [
            holding(UnitClass("PA", "RGGI", "erc", 2024), 0, 99, id=1),
            holding(UnitClass("PA", "RGGI", "offset", 2024), 0, 99, id=2),
            holding(UnitClass("PA", "ARP", "allowance", 2024), 0, 99, id=3),
            holding(UnitClass("PA", "RGGI", "allowance", 2025), 0, 2, id=4),
        ]
    )
    plan = plan_deduction(rows, RGGI, period, tons=5, previously_surrendered=0)
    assert [t.holding.id for t in plan.takes] == [4]
    assert plan.shortfall == 2


def test_the_programs_type_order_comes_before_vintage_order() -> None:
    rules = ProgramRules("RGGI", "RGGI", True, deduction_unit_types=("offset", "allowance"))
    period = ControlPeriod.parse("2025")
    rows = selection_order(
        [
            holding(UnitClass("PA", "RGGI", "allowance", 2023), 0, 9, id=1),
            holding(UnitClass("PA", "RGGI", "offset", 2025), 0, 9, id=2),
        ]
    )
    plan = plan_deduction(rows, rules, period, tons=12, previously_surrendered=0)
    assert [(t.holding.id, t.serials) for t in plan.takes] == [
        (2, SerialRange(0, 9)),
        (1, SerialRange(0, 1)),
    ]


def test_second_deduction_takes_only_the_remainder() -> None:
    period = ControlPeriod.parse("2024-2026")
    rows = [holding(UnitClass("PA", "RGGI", "allowance", 2024), 0, 999)]
    plan = plan_deduction(rows, RGGI, period, tons=100, previously_surrendered=70)
    assert plan.deducted == 30
    assert plan.takes[0].serials == SerialRange(0, 29)
    assert plan.shortfall == 0


@pytest.mark.parametrize(("tons", "previously"), [(100, 100), (100, 150), (0, 0), (0, 5)])
def test_nothing_is_taken_when_nothing_is_owed(tons: int, previously: int) -> None:
    rows = [holding(UnitClass("PA", "RGGI", "allowance", 2024), 0, 999)]
    plan = plan_deduction(rows, RGGI, ControlPeriod.parse("2024"), tons, previously)
    assert plan.takes == ()
    assert (plan.deducted, plan.shortfall) == (0, 0)


def test_units_per_ton_scales_the_obligation() -> None:
    rules = ProgramRules("ARP", "ARP", True, units_per_ton=2)
    rows = [holding(UnitClass("PA", "ARP", "allowance", 2024), 0, 14)]
    plan = plan_deduction(
        rows, rules, ControlPeriod.parse("2024"), tons=10, previously_surrendered=3
    )
    assert plan.obligation == 20
    assert plan.deducted == 15
    assert plan.shortfall == 2


def test_unspendable_blocks_are_never_deducted() -> None:
    uc = UnitClass("PA", "RGGI", "allowance", 2024)
    rows = [
        holding(uc, 0, 9, id=1, state=BlockState.ESCROWED),
        holding(uc, 10, 19, id=2, state=BlockState.SURRENDERED),
        holding(uc, 20, 29, id=3, quarantined=True),
        holding(uc, 30, 39, id=4),
    ]
    plan = plan_deduction(rows, RGGI, ControlPeriod.parse("2024"), 40, 0)
    assert [t.holding.id for t in plan.takes] == [4]
    assert plan.shortfall == 30


def test_deduction_cost_does_not_depend_on_quantity() -> None:
    rows = [holding(UnitClass("PA", "RGGI", "allowance", 2024), 0, 10**12)]
    plan = plan_deduction(rows, RGGI, ControlPeriod.parse("2024"), 10**9, 0)
    assert len(plan.takes) == 1
    assert plan.deducted == 10**9


def test_a_repeated_deduction_type_is_refused_so_no_serial_is_taken_twice() -> None:
    with pytest.raises(InvalidArgument):
        ProgramRules("X", "X", True, deduction_unit_types=("allowance", "allowance"))
