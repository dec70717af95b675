"""The credits and bank views over real registry databases, credits issued the only way they come
into being: an approved project, an accredited verifier, approved plan and reports.

One registry issues ERCs (CPPR) and offsets (RGGI) next to allowances, moves ERCs to a source's
compliance account, deducts a rate-based obligation with them, and retires some; the figures
are checked against what was done and against the deductions table's own per-type record. A
second test walks ERCs from PA to NY and checks each credit is on one row at each step, its
project category known on both sides (NY from the provenance received with the units).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from credit_support import issue_credits
from pair_support import gateway_pair

from regfed.certs.identity import Identity, Role
from regfed.gateway.query_source import base_rows
from regfed.gateway.service import Gateway
from regfed.gateway.trading import Trading, TransferRequest
from regfed.node import (
    DeductCompliance,
    RecordEmissions,
    Registry,
    Retire,
    Selection,
    StatePurpose,
    Transfer,
    open_registry,
)
from regfed.node.domain.programs import CREDIT_UNIT_TYPES as NODE_CREDIT_TYPES
from regfed.node.domain.programs import ProgramCatalog
from regfed.reconciliation.views import (
    BANK,
    CREDIT_UNIT_TYPES,
    CREDITS,
    SUPPLY,
    Keys,
    Query,
    Values,
    View,
    bank_of,
)
from support import issue, open_compliance, open_general, person

pytestmark = pytest.mark.integration

Figures = dict[tuple[str, ...], dict[str, int]]
Rows = list[tuple[Keys, Values]]


def rows_of(reg_or_gateway: Registry | Gateway, view: View, code: str) -> Rows:
    ledger = reg_or_gateway.ledger
    return base_rows(
        ledger.store, view, registry=code, programs=ProgramCatalog.default(), now=datetime.now(UTC)
    )


def figures(view: View, by: list[str], rows: Rows) -> Figures:
    table = Query.parse(view.name, {}, by).aggregate(rows)
    return {k: dict(zip(view.values, v, strict=True)) for k, v in table.rows()}


def test_the_node_and_the_views_agree_on_credit_unit_types() -> None:
    assert CREDIT_UNIT_TYPES == NODE_CREDIT_TYPES


@pytest.fixture
def registry(db_url: str) -> Iterator[Registry]:
    reg = open_registry(db_url, "PA")
    try:
        yield reg
    finally:
        reg.close()


def test_credits_issued_held_surrendered_retired_and_the_bank(registry: Registry) -> None:
    reg, admin = registry, registry.ledger.administrator
    sol = open_general(reg, "sol")
    plant = open_compliance(reg, "pat", "ORIS-7")
    issue(reg, 1000, program="RGGI", vintage=2025)  # allowances: not credits
    issue_credits(reg, sol, "renewable-generation", "CPPR", 500)
    issue_credits(reg, sol, "landfill-methane", "RGGI", 40)
    reg.ledger.transfer(
        Transfer(
            operation_id="ercs-to-plant",
            from_account=sol,
            to_account=plant,
            selection=Selection(quantity=200, unit_type="erc"),
        ),
        person("sol"),
    )
    alloc = reg.state_account(StatePurpose.ALLOCATION).label
    reg.ledger.transfer(
        Transfer(
            operation_id="allowances-to-plant",
            from_account=alloc,
            to_account=plant,
            selection=Selection(quantity=70, unit_type="allowance"),
        ),
        admin,
    )
    # rate-based: ceil(1,150,000 lb / 1000 lb/MWh - 1000 MWh) = 150 ERCs owed
    reg.ledger.record_emissions(
        RecordEmissions(
            operation_id="em",
            account=plant,
            program="CPPR",
            period="2025",
            tons=1_150_000,
            mwh=1000,
            standard="1000",
        ),
        admin,
    )
    reg.ledger.deduct_compliance(
        DeductCompliance(operation_id="deduct", program="CPPR", period="2025"), admin
    )
    reg.ledger.retire(
        Retire(
            operation_id="retire",
            from_account=sol,
            selection=Selection(quantity=10, unit_type="offset"),
        ),
        person("sol"),
    )

    rows = rows_of(reg, CREDITS, "PA")
    assert {k[0] for k, _ in rows} == {"erc", "offset"}  # no allowance is a credit
    by_type = figures(CREDITS, ["unit_type", "issuer", "program", "vintage", "category"], rows)
    zero = dict.fromkeys(CREDITS.values, 0)
    assert by_type == {
        ("erc", "PA", "CPPR", "2025", "renewable-generation"): {
            **zero,
            "issued": 500,
            "held": 350,
            "surrendered": 150,
        },
        ("offset", "PA", "RGGI", "2025", "landfill-methane"): {
            **zero,
            "issued": 40,
            "held": 30,
            "retired": 10,
        },
    }
    # the node's surrendered credits are what its deductions recorded per unit type
    with reg.engine.connect() as conn:
        recorded = [
            json.loads(t) for (t,) in conn.exec_driver_sql("SELECT by_type FROM deductions")
        ]
    assert sum(r.get("erc", 0) for r in recorded) == 150

    # the bank: held outside state accounts, per account type; the state's units are not in it
    bank = figures(BANK, ["unit_type", "account_type"], rows_of(reg, BANK, "PA"))
    assert bank == {
        ("allowance", "compliance"): {"banked": 70, "held": 70, "escrowed": 0, "in_transit": 0},
        ("erc", "compliance"): {"banked": 50, "held": 50, "escrowed": 0, "in_transit": 0},
        ("erc", "general"): {"banked": 300, "held": 300, "escrowed": 0, "in_transit": 0},
        ("offset", "general"): {"banked": 30, "held": 30, "escrowed": 0, "in_transit": 0},
    }
    supply = figures(SUPPLY, ["account_type"], rows_of(reg, SUPPLY, "PA"))
    assert supply[("state",)]["held"] == 930  # allocation's allowances: supply, not bank
    assert sum(r["banked"] for r in bank.values()) == sum(
        supply[(t,)]["held"] + supply[(t,)]["escrowed"] + supply[(t,)]["in_transit"]
        for t in ("compliance", "general")
    )
    # filters and --by on the node's rows
    ercs = Query.parse("credits", {"unit_type": ["erc"]}, ["registry"]).aggregate(rows)
    assert ercs.rows() == [(("PA",), (500, 350, 0, 0, 150, 0))]


@pytest.fixture
def pair(db_url: str, tmp_path: Path) -> Iterator[tuple[Gateway, Gateway, str, str]]:
    with gateway_pair(db_url, tmp_path) as gateways:
        sol = open_general(gateways.pa.registry, "sol")
        carol = open_general(gateways.ny.registry, "carol")
        issue_credits(gateways.pa.registry, sol, "energy-efficiency", "CPPR", 100, year=2024)
        yield gateways.pa, gateways.ny, sol, carol


def _credits(pa: Gateway, ny: Gateway) -> Figures:
    rows = rows_of(pa, CREDITS, "PA") + rows_of(ny, CREDITS, "NY")
    return figures(CREDITS, ["registry", "category"], rows)


def _bank(pa: Gateway, ny: Gateway) -> Figures:
    rows = rows_of(pa, BANK, "PA") + rows_of(ny, BANK, "NY")
    return figures(BANK, ["registry"], rows)


def test_credits_moving_between_registries_keep_their_category(
    pair: tuple[Gateway, Gateway, str, str],
) -> None:
    pa, ny, sol, carol = pair
    key = ("PA", "energy-efficiency")
    request = TransferRequest("req-ercs", sol, carol, Selection(quantity=30, unit_type="erc"))
    _view, outbound = Trading(pa).propose(person("sol"), request)
    assert _credits(pa, ny)[key]["escrowed"] == 30
    assert _bank(pa, ny)[("PA",)] == {"banked": 100, "held": 70, "escrowed": 30, "in_transit": 0}
    replies = [e for o in outbound for e in ny.receive(o.envelope, Identity(Role.REGISTRY, "PA"))]
    commits = pa.answer("NY", replies)
    moving = _credits(pa, ny)
    assert moving[key]["in_transit"] == 30 and moving[key]["escrowed"] == 0
    assert _bank(pa, ny)[("PA",)] == {"banked": 100, "held": 70, "escrowed": 0, "in_transit": 30}
    replies = [e for o in commits for e in ny.receive(o.envelope, Identity(Role.REGISTRY, "PA"))]
    pa.answer("NY", replies)
    settled = _credits(pa, ny)
    assert settled == {
        key: {"issued": 100, "held": 70, "escrowed": 0, "in_transit": 0, "surrendered": 0,
              "retired": 0},
        ("NY", "energy-efficiency"): {"issued": 0, "held": 30, "escrowed": 0, "in_transit": 0,
                                      "surrendered": 0, "retired": 0},
    }  # fmt: skip
    bank = _bank(pa, ny)
    assert bank[("PA",)]["banked"] == 70 and bank[("NY",)]["banked"] == 30
    # the bank is the supply's rows, reduced: the node answers the same as bank_of locally
    assert sorted(rows_of(pa, BANK, "PA")) == sorted(bank_of(rows_of(pa, SUPPLY, "PA")))
