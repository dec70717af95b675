"""EPA's ARP file read strictly, and the import's plan: the purchase rule by hand on small
files, refusals of infeasible subsets, and the whole file's published figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from regfed.epa import ArpDataError, InfeasibleSubset, Purchase, parse_arp, plan_import, read_arp

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[2] / "data" / "camd" / "ARPComplianceData-StateLevel.csv"
HEADER = (
    '"programCode","stateCode","year","allocated","totalAllowancesDeducted","carriedOver",'
    '"stateName","programDescription"\n'
)


def csv_of(*rows: tuple[str, int, int, int]) -> str:
    lines = [
        f'"ARP","{s}",{y},{a},{d},0,"{s} state","Acid Rain Program (ARP)"' for s, y, a, d in rows
    ]
    return HEADER + "\n".join(lines) + "\n"


def test_buyers_in_code_order_buy_from_the_largest_surplus_first() -> None:
    rows = parse_arp(
        csv_of(
            ("AA", 2000, 10, 30),  # short 20
            ("BB", 2000, 50, 10),  # surplus 40
            ("CC", 2000, 60, 20),  # surplus 40: tie with BB, BB first
            ("DD", 2000, 0, 45),  # short 45, no allocation: must buy it all
        )
    )
    plan = plan_import(rows)
    assert plan.purchases == [
        Purchase(2000, "BB", "AA", 20),  # BB and CC tie at 40: the lower code
        Purchase(2000, "CC", "DD", 40),  # now CC (40) > BB (20)
        Purchase(2000, "BB", "DD", 5),
    ]
    assert plan.final_balance == {"AA": 0, "BB": 15, "CC": 0, "DD": 0}
    assert plan.plan[0].bank == 15


def test_banked_units_count_and_a_missing_row_is_no_activity() -> None:
    rows = parse_arp(
        csv_of(
            ("AA", 2000, 100, 10),
            ("BB", 2000, 5, 5),
            # 2001: AA has no row (no activity) but sells from its bank; BB is short
            ("BB", 2001, 0, 50),
            ("AA", 2002, 0, 40),
        )
    )
    plan = plan_import(rows)
    assert plan.purchases == [Purchase(2001, "AA", "BB", 50)]
    assert plan.plan[1].issued == {"BB": 0} and plan.plan[1].deducted == {"BB": 50}
    assert plan.final_balance == {"AA": 0, "BB": 0}
    assert plan.carried_over == {"AA": (2002, 0), "BB": (2001, 0)}


def test_an_infeasible_subset_names_the_first_short_year_and_amount() -> None:
    rows = parse_arp(
        csv_of(("AA", 2000, 100, 90), ("BB", 2000, 0, 5), ("AA", 2001, 10, 30), ("BB", 2002, 0, 99))
    )
    with pytest.raises(InfeasibleSubset) as refused:
        plan_import(rows)
    # 2000: bank 5; 2001: holds 15, needs 30: 15 short (2002 would be short too, later)
    assert (refused.value.year, refused.value.short) == (2001, 15)
    assert "15 short" in str(refused.value)
    assert refused.value.to_dict()["code"] == "INFEASIBLE_SUBSET"
    # the same file from 2000 to 2000 is feasible
    assert plan_import(rows, years=(2000, 2000)).final_balance == {"AA": 5, "BB": 0}


def test_the_whole_file_matches_epa_published_figures() -> None:
    plan = plan_import(read_arp(DATA))
    assert len(plan.states) == 49
    assert (plan.years[0], plan.years[-1]) == (1995, 2021)
    assert plan.issued_total(1995) == 8_306_951
    assert plan.deducted_total(2021) == 935_703
    assert plan.lowest_bank == (2006, 1_374_652)
    assert sum(plan.final_balance.values()) == 72_321_286
    assert len(plan.purchases) == 164
    # no purchase leaves its seller short of its own deduction that year
    for year in plan.plan:
        assert all(p.quantity > 0 and p.seller != p.buyer for p in year.purchases)


def test_subsets_of_states_and_years() -> None:
    rows = read_arp(DATA)
    with pytest.raises(InfeasibleSubset) as refused:
        plan_import(rows, years=(2000, 2005))
    assert (refused.value.year, refused.value.short) == (2000, 1_644_079)
    plan = plan_import(rows, ["AL", "AZ", "GA", "MD", "OR"], (1995, 2005))
    buying = {p.buyer for p in plan.purchases if 2000 <= p.year <= 2005}
    selling = {p.seller for p in plan.purchases if 2000 <= p.year <= 2005}
    assert len(buying) >= 3 and len(selling) >= 2
    with pytest.raises(ValueError, match="no rows for ZZ"):
        plan_import(rows, ["ZZ"])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a,b\n", "the header must be"),
        (HEADER + '"CSAPR","AL",2000,1,1,0,"x","y"\n', "line 2: program 'CSAPR'"),
        (HEADER + '"ARP","Al",2000,1,1,0,"x","y"\n', "two capital letters"),
        (HEADER + '"ARP","AL",2000,-1,1,0,"x","y"\n', "allocated '-1' is not a whole number"),
        (HEADER + '"ARP","AL",2000,1.5,1,0,"x","y"\n', "is not a whole number"),
        (HEADER + '"ARP","AL",1900,1,1,0,"x","y"\n', "outside 1990-2100"),
        (HEADER + '"ARP","AL",2000,1,1,0,"x"\n', "7 fields"),
        (
            HEADER + '"ARP","AL",2000,1,1,0,"x","y"\n"ARP","AL",2000,2,2,0,"x","y"\n',
            "line 3: AL 2000 appears twice",
        ),
        (HEADER, "no rows"),
    ],
)
def test_malformed_files_are_refused_naming_the_line(text: str, says: str) -> None:
    with pytest.raises(ArpDataError) as refused:
        parse_arp(text)
    assert says in str(refused.value)


def test_the_repository_copy_is_epas_file() -> None:
    import hashlib

    digest = hashlib.sha256(DATA.read_bytes()).hexdigest()
    assert digest == "0cde03654ae63af096cfdfbab96d2dbeb69e1b9e4ea25ed8d8dbf9722873b131"
