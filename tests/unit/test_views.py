"""The oversight views' filters and sums: what the registries and the oversight node share."""

from __future__ import annotations

import itertools
import random

import pytest

from regfed.reconciliation.views import (
    VIEWS,
    InvalidQuery,
    Keys,
    Query,
    Values,
    as_dicts,
    bank_of,
    net_flows,
)

pytestmark = pytest.mark.unit


def supply_row(
    issuer: str, vintage: int, registry: str, kind: str, *values: int
) -> tuple[Keys, Values]:
    return (issuer, "ARP", "allowance", str(vintage), registry, kind), tuple(values)


ROWS = [
    supply_row("PA", 2000, "PA", "state", 100, 40, 0, 0, 0, 0),
    supply_row("PA", 2000, "PA", "compliance", 0, 30, 5, 0, 20, 0),
    supply_row("PA", 2001, "PA", "compliance", 0, 7, 0, 3, 0, 0),
    supply_row("PA", 2000, "NY", "compliance", 0, 5, 0, 0, 0, 0),
    supply_row("NY", 1999, "NY", "state", 50, 50, 0, 0, 0, 0),
]


def test_by_sums_to_the_keys_asked_in_their_order() -> None:
    table = Query.parse("supply", {}, ["vintage", "issuer"]).aggregate(ROWS)
    assert table.keys == ("vintage", "issuer")
    assert table.rows() == [
        (("1999", "NY"), (50, 50, 0, 0, 0, 0)),
        (("2000", "PA"), (100, 75, 5, 0, 20, 0)),
        (("2001", "PA"), (0, 7, 0, 3, 0, 0)),
    ]


def test_every_grouping_keeps_the_totals() -> None:
    """Additivity: whatever the grouping, and registries aggregating first, the sums agree."""
    keys = VIEWS["supply"].keys
    whole = Query.parse("supply", {}, []).aggregate(ROWS).totals()
    rng = random.Random(5)
    for n in range(1, len(keys) + 1):
        for by in itertools.combinations(keys, n):
            query = Query.parse("supply", {}, list(by))
            assert query.aggregate(ROWS).totals() == whole, by
            # each registry aggregates its own rows, the oversight sums the answers
            shuffled = ROWS[:]
            rng.shuffle(shuffled)
            first = [r for r in shuffled if r[0][4] == "PA"]
            second = [r for r in shuffled if r[0][4] != "PA"]
            partial = query.aggregate(first).rows() + query.aggregate(second).rows()
            assert query.aggregate(partial, query.group).rows() == query.aggregate(ROWS).rows()


def test_filters_exact_lists_and_year_ranges() -> None:
    q = Query.parse("supply", {"vintage": ["2000-2001"], "registry": ["PA"]}, ["vintage"])
    assert [k for k, _ in q.aggregate(ROWS).rows()] == [("2000",), ("2001",)]
    q = Query.parse("supply", {"issuer": ["NY", "XX"]})
    assert [k[0] for k, _ in q.aggregate(ROWS).rows()] == ["NY"]
    # a filter on a key the rows were already summed away from was applied by who summed them
    q = Query.parse("supply", {"registry": ["NY"]}, ["issuer"])
    assert q.aggregate([(("PA",), (1, 2, 3, 4, 5, 6))], ("issuer",)).rows() == [
        (("PA",), (1, 2, 3, 4, 5, 6))
    ]


def test_period_filters_take_periods_inside_the_range() -> None:
    rows = [
        (("PA", "S1", "RGGI", "2021-2023"), (10, 10, 10, 0)),
        (("PA", "S1", "RGGI", "2024-2026"), (5, 5, 0, 5)),
        (("PA", "S2", "ARP", "2022"), (1, 1, 1, 0)),
    ]
    q = Query.parse("compliance", {"period": ["2021-2023"]})
    assert [k[1:] for k, _ in q.aggregate(rows).rows()] == [
        ("S1", "RGGI", "2021-2023"),
        ("S2", "ARP", "2022"),
    ]
    q = Query.parse("compliance", {"period": ["2024"]})
    assert q.aggregate(rows).rows() == []


def test_in_transit_merges_both_sides_of_a_transfer() -> None:
    query = Query.parse("in_transit", {})
    table = query.aggregate(
        [
            (("t1", "PA", "NY", "completed", ""), (40, 12)),
            (("t1", "PA", "NY", "", "accepted"), (40, 15)),
            (("t2", "NJ", "PA", "", "accepted"), (3, 2)),
        ]
    )
    assert table.rows() == [
        (("t1", "PA", "NY", "completed", "accepted"), (40, 15)),
        (("t2", "NJ", "PA", "", "accepted"), (3, 2)),
    ]


@pytest.mark.parametrize(
    ("view", "filters", "by", "says"),
    [
        ("colour", {}, [], "no view 'colour'"),
        ("supply", {"colour": ["red"]}, [], "no key 'colour'"),
        ("supply", {}, ["colour"], "no key 'colour'"),
        ("supply", {}, ["issuer", "issuer"], "names a key twice"),
        ("supply", {"vintage": ["20x0"]}, [], "not YYYY"),
        ("supply", {"vintage": ["2005-2001"]}, [], "ends before it starts"),
        ("supply", {"issuer": []}, [], "1 to 1000 values"),
        ("supply", {"issuer": ["x" * 65]}, [], "1 to 64 characters"),
        ("in_transit", {}, ["from_registry"], "has no --by"),
    ],
)
def test_refusals_are_typed(
    view: str, filters: dict[str, list[str]], by: list[str], says: str
) -> None:
    with pytest.raises(InvalidQuery) as refused:
        Query.parse(view, filters, by)
    assert says in str(refused.value)


def test_rows_of_the_wrong_shape_are_refused() -> None:
    flows = Query.parse("flows", {}, [])
    with pytest.raises(InvalidQuery, match="lack to_registry"):
        flows.aggregate([(("PA",), (1, 2))], ("from_registry",))
    with pytest.raises(InvalidQuery, match="a row of 1 keys"):
        flows.aggregate([(("PA",), (1, 2))], ("from_registry", "to_registry"))
    with pytest.raises(InvalidQuery, match="1 values"):
        flows.aggregate([(("PA", "NY"), (1,))], ("from_registry", "to_registry"))


def test_json_rows_and_net_flows() -> None:
    rows = as_dicts(("issuer", "vintage"), ("issued",), [(("PA", "2000"), (5,))])
    assert rows == [{"issuer": "PA", "vintage": 2000, "issued": 5}]
    net = net_flows(
        [
            {"from_registry": "PA", "to_registry": "NY", "units": 100},
            {"from_registry": "NY", "to_registry": "NJ", "units": 30},
        ]
    )
    assert net == [
        {"registry": "NJ", "units_in": 30, "units_out": 0, "net": 30},
        {"registry": "NY", "units_in": 100, "units_out": 30, "net": 70},
        {"registry": "PA", "units_in": 0, "units_out": 100, "net": -100},
    ]


def credit_row(
    unit_type: str, issuer: str, registry: str, category: str, *values: int
) -> tuple[Keys, Values]:
    program = "CPPR" if unit_type == "erc" else "RGGI"
    return (unit_type, issuer, program, "2025", registry, category), tuple(values)


CREDIT_ROWS = [
    credit_row("erc", "PA", "PA", "renewable-generation", 500, 275, 20, 30, 150, 0),
    credit_row("erc", "PA", "NY", "renewable-generation", 0, 25, 0, 0, 0, 0),
    credit_row("erc", "NY", "NY", "energy-efficiency", 80, 80, 0, 0, 0, 0),
    credit_row("offset", "PA", "PA", "landfill-methane", 40, 30, 0, 0, 0, 10),
]


@pytest.mark.parametrize(
    ("view", "rows", "split"),
    [
        ("supply", ROWS, 4),
        ("credits", CREDIT_ROWS, 4),
        ("bank", list(bank_of(ROWS)), 4),
    ],
)
def test_every_grouping_of_every_summed_view_keeps_the_totals(
    view: str, rows: list[tuple[Keys, Values]], split: int
) -> None:
    """Registries aggregating their own rows first, then the oversight summing: same sums."""
    keys = VIEWS[view].keys
    whole = Query.parse(view, {}, []).aggregate(rows).totals()
    assert any(whole)
    for n in range(1, len(keys) + 1):
        for by in itertools.combinations(keys, n):
            query = Query.parse(view, {}, list(by))
            assert query.aggregate(rows).totals() == whole, by
            first = [r for r in rows if r[0][split] == "PA"]
            second = [r for r in rows if r[0][split] != "PA"]
            partial = query.aggregate(first).rows() + query.aggregate(second).rows()
            assert query.aggregate(partial, query.group).rows() == query.aggregate(rows).rows()


def test_credits_group_by_type_and_issuing_jurisdiction() -> None:
    table = Query.parse("credits", {}, ["unit_type", "issuer"]).aggregate(CREDIT_ROWS)
    assert table.keys == ("unit_type", "issuer")
    assert table.rows() == [
        (("erc", "NY"), (80, 80, 0, 0, 0, 0)),
        (("erc", "PA"), (500, 300, 20, 30, 150, 0)),
        (("offset", "PA"), (40, 30, 0, 0, 0, 10)),
    ]
    # conservation per credit class, as supply: issued = held + escrowed + moving + used
    for _keys, (issued, *where) in table.rows():
        assert issued == sum(where)
    held_at_ny = Query.parse("credits", {"registry": ["NY"], "issuer": ["PA"]}, ["unit_type"])
    assert held_at_ny.aggregate(CREDIT_ROWS).rows() == [(("erc",), (0, 25, 0, 0, 0, 0))]
    offsets = Query.parse("credits", {"unit_type": ["offset"], "vintage": ["2020-2029"]})
    assert [k[-1] for k, _ in offsets.aggregate(CREDIT_ROWS).rows()] == ["landfill-methane"]


def test_the_bank_is_supply_held_escrowed_and_moving_outside_state_accounts() -> None:
    bank = list(bank_of(ROWS))
    # the state rows are left out, and compliance rows of nothing held or moving too
    assert bank == [
        (("PA", "ARP", "allowance", "2000", "PA", "compliance"), (35, 30, 5, 0)),
        (("PA", "ARP", "allowance", "2001", "PA", "compliance"), (10, 7, 0, 3)),
        (("PA", "ARP", "allowance", "2000", "NY", "compliance"), (5, 5, 0, 0)),
    ]
    general = supply_row("NY", 1999, "NY", "general", 0, 4, 1, 2, 9, 9)
    assert list(bank_of([general])) == [(general[0], (7, 4, 1, 2))]
    table = Query.parse("bank", {"registry": ["PA"]}, ["issuer"]).aggregate(bank)
    assert table.rows() == [(("PA",), (45, 37, 5, 3))]
    assert VIEWS["bank"].keys == VIEWS["supply"].keys


@pytest.mark.parametrize(
    ("view", "filters", "by", "says"),
    [
        ("bank", {"category": ["reforestation"]}, [], "bank has no key 'category'"),
        ("credits", {}, ["account_type"], "credits has no key 'account_type'"),
        ("credits", {"vintage": ["2025-2020"]}, [], "ends before it starts"),
    ],
)
def test_credit_and_bank_refusals(
    view: str, filters: dict[str, list[str]], by: list[str], says: str
) -> None:
    with pytest.raises(InvalidQuery) as refused:
        Query.parse(view, filters, by)
    assert says in str(refused.value)
