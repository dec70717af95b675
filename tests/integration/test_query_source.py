"""A registry's rows for the oversight views, from its real tables on both engines.

One transfer is walked step by step between two gateways (no network: the messages are handed
over by hand) and the supply figures of both registries are read after each step: each unit is
on exactly one row (escrowed, then in transit on the source's row, then held at the
destination), except in the documented window between the destination's credit and the
source's settle, where it is counted on both sides.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pair_support import gateway_pair

from regfed.certs.identity import Identity, Role
from regfed.gateway.query_source import base_rows
from regfed.gateway.service import Gateway
from regfed.gateway.trading import Trading, TransferRequest
from regfed.node import (
    DeductCompliance,
    RecordEmissions,
    Selection,
    StatePurpose,
    Transfer,
    open_registry,
)
from regfed.node.domain.programs import ProgramCatalog
from regfed.reconciliation.views import COMPLIANCE, FLOWS, SUPPLY, Query
from support import issue, open_compliance, open_general, person

pytestmark = pytest.mark.integration


@pytest.fixture
def gateways(db_url: str, tmp_path: Path) -> Iterator[tuple[Gateway, Gateway, str, str]]:
    """PA (on the engine under test) has issued 1,000 and allocated 300 to alice; NY has carol."""
    with gateway_pair(db_url, tmp_path) as pair:
        pa = pair.pa.registry
        alice, carol = open_general(pa, "alice"), open_general(pair.ny.registry, "carol")
        issue(pa, 1000)
        alloc = pa.state_account(StatePurpose.ALLOCATION).label
        pa.ledger.transfer(
            Transfer(
                operation_id="fund",
                from_account=alloc,
                to_account=alice,
                selection=Selection(quantity=300),
            ),
            pa.ledger.administrator,
        )
        yield pair.pa, pair.ny, alice, carol


def supply(*gateways: Gateway) -> dict[tuple[str, ...], dict[str, int]]:
    """Supply by (registry, account type), both registries' rows summed as the oversight does."""
    query = Query.parse("supply", {}, ["registry", "account_type"])
    rows = []
    for g in gateways:
        rows += base_rows(
            g.ledger.store,
            SUPPLY,
            registry=g.me,
            programs=ProgramCatalog.default(),
            now=datetime.now(UTC),
        )
    table = query.aggregate(rows)
    return {k: dict(zip(SUPPLY.values, v, strict=True)) for k, v in table.rows()}


def units(figures: dict[tuple[str, ...], dict[str, int]]) -> int:
    """Where the units are, summed: what conservation compares with ``issued``."""
    columns = ("held", "escrowed", "in_transit", "surrendered", "retired")
    return sum(row[c] for row in figures.values() for c in columns)


def test_each_unit_on_one_row_through_a_transfer(
    gateways: tuple[Gateway, Gateway, str, str],
) -> None:
    pa, ny, alice, carol = gateways
    start = supply(pa, ny)
    assert start[("PA", "state")]["issued"] == 1000
    assert start[("PA", "general")]["held"] == 300
    assert units(start) == 1000
    request = TransferRequest("req-supply", alice, carol, Selection(quantity=40))
    view, outbound = Trading(pa).propose(person("alice"), request)
    escrowed = supply(pa, ny)
    assert escrowed[("PA", "general")]["escrowed"] == 40 and units(escrowed) == 1000
    # NY pins the units as incoming: still counted once, as PA's escrow
    replies = [e for o in outbound for e in ny.receive(o.envelope, Identity(Role.REGISTRY, "PA"))]
    pinned = supply(pa, ny)
    assert pinned[("PA", "general")]["escrowed"] == 40 and units(pinned) == 1000
    # PA commits: the units leave PA and are in transit on PA's row until NY credits them
    commits = pa.answer("NY", replies)
    committed = supply(pa, ny)
    assert committed[("PA", "general")]["in_transit"] == 40
    assert committed[("PA", "general")]["escrowed"] == 0 and units(committed) == 1000
    # NY credits: held at NY; until PA hears of it, PA still reports them in transit
    replies = [e for o in commits for e in ny.receive(o.envelope, Identity(Role.REGISTRY, "PA"))]
    credited = supply(pa, ny)
    assert credited[("NY", "general")]["held"] == 40
    assert units(credited) == 1000 + 40  # the documented window: counted on both sides
    pa.answer("NY", replies)
    settled = supply(pa, ny)
    assert settled[("PA", "general")]["in_transit"] == 0 and units(settled) == 1000
    flows = Query.parse("flows", {}, []).aggregate(
        base_rows(
            pa.ledger.store,
            FLOWS,
            registry="PA",
            programs=ProgramCatalog.default(),
            now=datetime.now(UTC),
        )
    )
    assert flows.rows() == [(("PA", "NY"), (1, 40))]
    assert view.transfer_id


def test_compliance_rows_and_surrendered_on_the_source_row(db_url: str) -> None:
    reg = open_registry(db_url, "PA")
    try:
        source = open_compliance(reg, "alice", "ORIS-1")
        issue(reg, 100, program="ARP", vintage=2020)
        alloc = reg.state_account(StatePurpose.ALLOCATION).label
        admin = reg.ledger.administrator
        reg.ledger.transfer(
            Transfer(
                operation_id="alloc",
                from_account=alloc,
                to_account=source,
                selection=Selection(quantity=60, program="ARP"),
            ),
            admin,
        )
        reg.ledger.record_emissions(
            RecordEmissions(
                operation_id="em", account=source, program="ARP", period="2020", tons=75
            ),
            admin,
        )
        reg.ledger.deduct_compliance(
            DeductCompliance(operation_id="deduct", program="ARP", period="2020"), admin
        )
        rows = base_rows(
            reg.ledger.store,
            COMPLIANCE,
            registry="PA",
            programs=ProgramCatalog.default(),
            now=datetime.now(UTC),
        )
        assert rows == [(("PA", "ORIS-1", "ARP", "2020"), (75, 75, 60, 15))]
        figures = {
            k: dict(zip(SUPPLY.values, v, strict=True))
            for k, v in Query.parse("supply", {}, ["account_type"])
            .aggregate(
                base_rows(
                    reg.ledger.store,
                    SUPPLY,
                    registry="PA",
                    programs=ProgramCatalog.default(),
                    now=datetime.now(UTC),
                )
            )
            .rows()
        }
        # surrendered on the row of the account they left, not the surrender state account
        assert figures[("compliance",)]["surrendered"] == 60
        assert figures[("state",)] == {
            "issued": 100,
            "held": 40,
            "escrowed": 0,
            "in_transit": 0,
            "surrendered": 0,
            "retired": 0,
        }
    finally:
        reg.close()
