"""Programs: control periods, per-program rules and the catalog."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regfed.node.domain.errors import InvalidArgument, UnitNotAccepted, UnknownProgram
from regfed.node.domain.programs import (
    BUILTIN_PROGRAMS,
    Basis,
    ControlPeriod,
    CreditIssuance,
    ProgramCatalog,
    ProgramRules,
)

pytestmark = pytest.mark.unit

years = st.integers(1900, 9999)


# -- control periods ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "first", "last", "canonical"),
    [
        ("2024", 2024, 2024, "2024"),
        ("2024-2026", 2024, 2026, "2024-2026"),
        ("2024-2024", 2024, 2024, "2024"),
        ("  2021-2023\n", 2021, 2023, "2021-2023"),
        ("1990", 1990, 1990, "1990"),
    ],
)
def test_control_period_parses_good_input(text: str, first: int, last: int, canonical: str) -> None:
    period = ControlPeriod.parse(text)
    assert (period.first_year, period.last_year) == (first, last)
    assert str(period) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "24",
        "202",
        "20245",
        "2024-",
        "-2024",
        "2024-26",
        "2024--2026",
        "2024-2026-2028",
        "2024 - 2026",
        "2024\u20132026",  # en dash
        "2024/2026",
        "2024..2026",
        "abcd",
        "2024a",
        "FY2024",
        "+2024",
    ],
)
def test_control_period_refuses_bad_input(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ControlPeriod.parse(text)
    assert caught.value.details == {"period": text}
    assert "YYYY" in caught.value.message


@pytest.mark.parametrize("text", ["2026-2024", "2025-2024"])
def test_control_period_refuses_a_period_ending_before_it_starts(text: str) -> None:
    with pytest.raises(InvalidArgument, match="ends before it starts") as caught:
        ControlPeriod.parse(text)
    assert caught.value.details == {"period": text}


@given(years, years)
def test_control_period_round_trip(a: int, b: int) -> None:
    first, last = min(a, b), max(a, b)
    period = ControlPeriod.parse(f"{first}-{last}")
    assert (period.first_year, period.last_year) == (first, last)
    assert ControlPeriod.parse(str(period)) == period
    assert ControlPeriod.parse(f"{first}") == ControlPeriod(first, first)
    if first < last:
        with pytest.raises(InvalidArgument):
            ControlPeriod.parse(f"{last}-{first}")


def test_control_periods_order_by_first_year() -> None:
    periods = [ControlPeriod.parse(t) for t in ("2027-2029", "2021-2023", "2024-2026")]
    assert [str(p) for p in sorted(periods)] == ["2021-2023", "2024-2026", "2027-2029"]


# -- rules ---------------------------------------------------------------------------------------


@given(st.integers(1900, 2100), years, years)
def test_eligible_vintage_is_anything_up_to_the_last_year(vintage: int, a: int, b: int) -> None:
    period = ControlPeriod(min(a, b), max(a, b))
    assert BUILTIN_PROGRAMS["RGGI"].eligible_vintage(vintage, period) == (
        vintage <= period.last_year
    )


def test_obligation_is_tons_times_units_per_ton() -> None:
    assert ProgramRules("X", "X", True).obligation(17) == 17
    assert ProgramRules("X", "X", True, units_per_ton=3).obligation(17) == 51


def test_rules_round_trip_through_dicts() -> None:
    rules = ProgramRules(
        "X",
        "Example",
        False,
        deduction_unit_types=("offset", "allowance"),
        units_per_ton=2,
        control_period_years=3,
    )
    data = rules.to_dict()
    assert data == {
        "code": "X",
        "name": "Example",
        "compliance_account_may_send": False,
        "deduction_unit_types": ["offset", "allowance"],
        "units_per_ton": 2,
        "control_period_years": 3,
    }
    assert ProgramRules.from_dict(data) == rules


def test_from_dict_defaults() -> None:
    rules = ProgramRules.from_dict({"code": "X", "compliance_account_may_send": True})
    assert rules == ProgramRules("X", "X", True)
    assert rules.deduction_unit_types == ("allowance",)
    assert (rules.units_per_ton, rules.control_period_years) == (1, 1)


@pytest.mark.parametrize("data", [{"code": "X"}, {"compliance_account_may_send": True}, {}])
def test_from_dict_refuses_incomplete_definitions(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument, match="lacks"):
        ProgramRules.from_dict(data)


# -- catalog -------------------------------------------------------------------------------------


def test_builtin_programs_are_as_documented() -> None:
    catalog = ProgramCatalog.default()
    assert sorted(catalog.programs) == [
        "ARP", "CAQC", "CPPR", "CSNOX", "CSSO2G1", "CSSO2G2", "RGGI",
    ]  # fmt: skip
    assert catalog.get("RGGI").control_period_years == 3
    assert catalog.get("RGGI").compliance_account_may_send
    assert not catalog.get("CAQC").compliance_account_may_send
    for code in ("ARP", "CSNOX", "CSSO2G1", "CSSO2G2", "CPPR"):
        assert catalog.get(code).control_period_years == 1
        assert catalog.get(code).compliance_account_may_send
    for code in ("ARP", "CAQC", "CSNOX", "CSSO2G1", "CSSO2G2"):
        assert catalog.get(code).deduction_unit_types == ("allowance",)
        assert catalog.get(code).basis is Basis.MASS and not catalog.get(code).share_limits
    # RGGI's Model Rule: offsets after allowances, at most 3.3% of a source's obligation.
    rggi = catalog.get("RGGI")
    assert rggi.deduction_unit_types == ("allowance", "offset")
    assert rggi.share_limits == {"offset": Fraction(33, 1000)}
    assert rggi.share_limit("offset", 1000) == 33 and rggi.share_limit("offset", 30) == 0
    assert rggi.share_limit("allowance", 1000) is None
    # The Clean Power Plan's rate-based model rule, as the seeds describe it: ERCs only.
    cppr = catalog.get("CPPR")
    assert cppr.basis is Basis.RATE and cppr.deduction_unit_types == ("erc",)
    for rules in catalog.programs.values():
        assert rules.units_per_ton == 1
        assert rules.credit_issuance is CreditIssuance.VERIFICATION
        assert rules.unit_types == rules.deduction_unit_types and rules.issuers == ()


def test_unknown_program_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownProgram) as caught:
        ProgramCatalog.default().get("EUETS")
    assert caught.value.code == "UNKNOWN_PROGRAM"
    assert caught.value.details == {
        "program": "EUETS",
        "known": ["ARP", "CAQC", "CPPR", "CSNOX", "CSSO2G1", "CSSO2G2", "RGGI"],
    }


def test_overrides_add_and_replace_without_touching_the_default() -> None:
    base = ProgramCatalog.default()
    merged = base.with_overrides(
        [
            {"code": "RGGI", "compliance_account_may_send": False, "units_per_ton": 2},
            {"code": "NEW", "name": "New program", "compliance_account_may_send": True},
        ]
    )
    assert merged.get("RGGI").units_per_ton == 2
    assert not merged.get("RGGI").compliance_account_may_send
    assert merged.get("NEW").name == "New program"
    assert merged.get("ARP") == base.get("ARP")
    # The base catalog and the built-in table are unchanged.
    assert base.get("RGGI").units_per_ton == 1
    assert BUILTIN_PROGRAMS["RGGI"].compliance_account_may_send
    with pytest.raises(UnknownProgram):
        base.get("NEW")
    assert ProgramCatalog.default().with_overrides([]) == ProgramCatalog.default()


def test_overrides_apply_in_order() -> None:
    merged = ProgramCatalog.default().with_overrides(
        [
            {"code": "X", "compliance_account_may_send": True, "units_per_ton": 2},
            {"code": "X", "compliance_account_may_send": True, "units_per_ton": 5},
        ]
    )
    assert merged.get("X").units_per_ton == 5


# -- known defects (see the report) --------------------------------------------------------------


def test_from_dict_does_not_read_the_string_false_as_true() -> None:
    try:
        rules = ProgramRules.from_dict({"code": "X", "compliance_account_may_send": "false"})
    except InvalidArgument:
        return
    assert rules.compliance_account_may_send is False


def test_from_dict_does_not_split_a_unit_type_string_into_letters() -> None:
    try:
        rules = ProgramRules.from_dict(
            {"code": "X", "compliance_account_may_send": True, "deduction_unit_types": "allowance"}
        )
    except InvalidArgument:
        return
    assert rules.deduction_unit_types == ("allowance",)


def test_a_program_definition_that_is_not_an_object_is_refused_by_what_it_is() -> None:
    with pytest.raises(InvalidArgument, match="not 1"):
        ProgramCatalog.default().with_overrides([1])  # type: ignore[list-item]


def test_credit_rules_round_trip_and_refuse_what_they_do_not_accept() -> None:
    data = {
        "code": "XR",
        "compliance_account_may_send": True,
        "deduction_unit_types": ["allowance", "offset"],
        "unit_types": ["allowance", "offset", "erc"],
        "issuers": ["NY", "PA"],
        "share_limits": {"offset": "0.033"},
        "basis": "rate",
        "credit_issuance": "administrative",
    }
    rules = ProgramRules.from_dict(data)
    assert rules.to_dict() == {**data, "name": "XR", "units_per_ton": 1, "control_period_years": 1}
    assert rules.share_limits == {"offset": Fraction(33, 1000)}
    assert rules.accepts("erc", "PA") and not rules.accepts("erc", "NJ")
    with pytest.raises(UnitNotAccepted, match="issued by NJ"):
        rules.require_accepts("offset", "NJ", "NY")
    plain = ProgramRules("XP", "XP", True)
    with pytest.raises(UnitNotAccepted, match="does not accept erc units") as caught:
        plain.require_accepts("erc", "PA", "NY")
    assert caught.value.details["accepted_unit_types"] == ["allowance"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"share_limits": {"offset": "1.5"}}, "between 0 and 1"),
        ({"share_limits": {"offset": "lots"}}, "not a number"),
        ({"share_limits": {"erc": "0.1"}}, "which deduction does not use"),
        ({"unit_types": ["offset"]}, "must all be accepted"),
        ({"basis": "intensity"}, "basis is mass or rate"),
        ({"credit_issuance": "magic"}, "basis is mass or rate"),
    ],
)
def test_credit_rules_refuse_malformed_definitions(change: dict[str, Any], message: str) -> None:
    base = {
        "code": "XR",
        "compliance_account_may_send": True,
        "deduction_unit_types": ["allowance", "offset"],
    }
    with pytest.raises(InvalidArgument, match=message):
        ProgramRules.from_dict({**base, **change})
