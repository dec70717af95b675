"""A registry's public records read from its real tables, on both engines: every section says
what the tables hold (accounts and the programs they touched, representatives, emissions,
compliance, issuances, movements with their price or reason, interstate records per block),
from one read that a concurrent write does not change, in parts under the size limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pair_support import Pair, gateway_pair

from regfed.gateway.records_source import records_parts
from regfed.gateway.snapshot_stream import MAX_PART_BYTES
from regfed.node import (
    DeductCompliance,
    Price,
    RecordEmissions,
    Retire,
    Selection,
    SerialRange,
    StatePurpose,
    Transfer,
    UnitBlock,
    UnitClass,
)
from regfed.node.domain.commands import AppointRepresentative, RepresentativeSpec
from regfed.reports import Price as ReportPrice
from regfed.reports import RegistryRecords, read_records
from support import fund, issue, op_id, open_compliance, open_general, person

pytestmark = pytest.mark.integration


def records_of(gateway: Any) -> RegistryRecords:
    parts = records_parts(
        gateway.ledger.store, registry=gateway.me, programs=gateway.ledger.programs
    )
    return read_records(parts, gateway.me)


@pytest.fixture
def pair(db_url: str, tmp_path: Path) -> Iterator[tuple[Pair, dict[str, str]]]:
    """PA issued ARP and RGGI; alice holds both, a plant holds ARP and reported emissions that
    were deducted; alice sold ARP to the plant at 12.50 and retired some; alice sent RGGI to
    carol at NY at 9.99 (completed), and one more unit that NY holds as incoming."""
    with gateway_pair(db_url, tmp_path) as built:
        reg, ledger = built.pa.registry, built.pa.ledger
        admin = ledger.administrator
        alice = open_general(reg, "alice", name="Alice & <Co>")
        plant = open_compliance(reg, "carol", "ORIS-1")
        carol = open_general(built.ny.registry, "carol")
        ledger.appoint_representative(
            AppointRepresentative(
                operation_id=op_id("agent"),
                account=alice,
                representative=RepresentativeSpec(person="bob", role="agent", rights=("read",)),
            ),
            admin,
        )
        issue(reg, 100, program="ARP")
        issue(reg, 50, program="RGGI")
        fund(reg, alice, 40, program="ARP")
        fund(reg, alice, 10, program="RGGI")
        fund(reg, plant, 30, program="ARP")
        ledger.transfer(
            Transfer(
                operation_id="sale-1",
                from_account=alice,
                to_account=plant,
                selection=Selection(quantity=5, program="ARP"),
                price=Price.parse("12.5"),
            ),
            person("alice"),
        )
        ledger.retire(
            Retire(
                operation_id="retire-1",
                from_account=alice,
                selection=Selection(quantity=2, program="ARP"),
                reason="pledge",
            ),
            person("alice"),
        )
        ledger.record_emissions(
            RecordEmissions(
                operation_id="em-1", account=plant, program="ARP", period="2025", tons=20
            ),
            admin,
        )
        ledger.deduct_compliance(
            DeductCompliance(operation_id="ded-1", program="ARP", period="2025"), admin
        )
        rggi = Selection(quantity=4, program="RGGI")
        _view, outbound = built.propose("alice", alice, carol, rggi, Price.parse("9.99"))
        built.deliver(outbound)
        _view, outbound = built.propose(
            "alice", alice, carol, Selection(quantity=1, program="RGGI")
        )
        built.deliver(outbound, rounds=1)
        yield built, {"alice": alice, "plant": plant, "carol": carol}


def test_every_section_says_what_the_tables_hold(pair: tuple[Pair, dict[str, str]]) -> None:
    built, acc = pair
    pa = records_of(built.pa)
    reg = built.pa.registry
    assert pa.journal_position == reg.queries.verify().journal_seq

    by_number = {a.number: a for a in pa.accounts}
    alice, plant = by_number[acc["alice"]], by_number[acc["plant"]]
    assert (alice.name, alice.type, alice.programs) == ("Alice & <Co>", "general", ("ARP", "RGGI"))
    assert alice.representatives == (("alice", "primary"), ("bob", "agent"))
    assert (plant.type, plant.source_id, plant.programs) == ("compliance", "ORIS-1", ("ARP",))
    allocation = reg.state_account(StatePurpose.ALLOCATION).label
    retirement = reg.state_account(StatePurpose.RETIREMENT).label
    assert by_number[allocation].programs == ("ARP", "RGGI")
    assert by_number[retirement].programs == ("ARP",)
    assert len(pa.accounts) == len(reg.queries.accounts())

    [emission] = pa.emissions
    assert (emission.account, emission.source_id, emission.program, emission.tons) == (
        acc["plant"],
        "ORIS-1",
        "ARP",
        20,
    )
    [result] = pa.compliance
    assert (result.obligation, result.surrendered, result.shortfall, result.deducted) == (
        20,
        20,
        0,
        True,
    )

    issued = {(i.serials.program, i.serials.start, i.serials.end, i.account) for i in pa.issuances}
    assert issued == {("ARP", 1, 100, allocation), ("RGGI", 1, 50, allocation)}

    sale = [m for m in pa.movements if m.operation_id == "sale-1"]
    assert sum(m.serials.quantity for m in sale) == 5
    assert {(m.kind, m.from_account, m.to_account, m.price) for m in sale} == {
        ("transfer", acc["alice"], acc["plant"], ReportPrice("12.50", "USD"))
    }
    assert all(m.price is None for m in pa.movements if m.operation_id != "sale-1")
    [retired] = [m for m in pa.movements if m.kind == "retirement"]
    assert (retired.from_account, retired.to_account, retired.reason) == (
        acc["alice"],
        retirement,
        "pledge",
    )
    assert {m.kind for m in pa.movements} == {"allocation", "transfer", "retirement"}
    allocated = sum(m.serials.quantity for m in pa.movements if m.kind == "allocation")
    assert allocated == 40 + 10 + 30

    sold = [t for t in pa.interstate if t.price is not None]
    assert sum(t.serials.quantity for t in sold) == 4
    assert {(t.side, t.status, t.from_registry, t.to_registry, t.to_account) for t in sold} == {
        ("source", "completed", "PA", "NY", acc["carol"])
    }
    assert sold[0].price is not None and sold[0].price.amount == "9.99"
    assert len({t.transfer_id for t in pa.interstate}) == 2

    ny = records_of(built.ny)
    assert {t.side for t in ny.interstate} == {"destination"}
    assert all(t.price is None for t in ny.interstate)
    assert {t.transfer_id for t in ny.interstate} == {t.transfer_id for t in pa.interstate}
    statuses = {t.transfer_id: t.status for t in ny.interstate}
    for t in ny.interstate:
        row = built.ny.transfer_row(t.transfer_id)
        assert row is not None and statuses[t.transfer_id] == row.status
    [carol] = [a for a in ny.accounts if a.number == acc["carol"]]
    assert carol.programs == ("RGGI",)


def test_the_records_are_one_read_that_a_concurrent_write_does_not_change(
    pair: tuple[Pair, dict[str, str]],
) -> None:
    built, acc = pair
    parts = records_parts(built.pa.ledger.store, registry="PA", programs=built.pa.ledger.programs)
    header = next(parts)  # the read has begun: its moment is fixed
    built.pa.ledger.transfer(
        Transfer(
            operation_id="after-the-read",
            from_account=acc["alice"],
            to_account=acc["plant"],
            selection=Selection(quantity=1, program="ARP"),
            price=Price.parse("1"),
        ),
        person("alice"),
    )
    records = read_records([header, *parts], "PA")
    assert "after-the-read" not in {m.operation_id for m in records.movements}
    assert records.journal_position == header.header.journal_position
    assert "after-the-read" in {m.operation_id for m in records_of(built.pa).movements}


def test_many_records_leave_in_parts_under_the_limit(db_url: str, tmp_path: Path) -> None:
    with gateway_pair(db_url, tmp_path) as built:
        reg, ledger = built.pa.registry, built.pa.ledger
        alice, bob = open_general(reg, "alice"), open_general(reg, "bob")
        issue(reg, 4_000, program="ARP")
        uc = UnitClass("PA", "ARP", "allowance", 2025)
        odd = tuple(UnitBlock(uc, SerialRange(s, s)) for s in range(1, 4_000, 2))
        ledger.transfer(
            Transfer(
                operation_id="scatter",
                from_account=reg.state_account(StatePurpose.ALLOCATION).label,
                to_account=alice,
                selection=Selection(blocks=odd),
            ),
            ledger.administrator,
        )
        ledger.transfer(
            Transfer(
                operation_id="gather",
                from_account=alice,
                to_account=bob,
                selection=Selection(quantity=2_000),
            ),
            person("alice"),
        )
        parts = list(records_parts(ledger.store, registry="PA", programs=ledger.programs))
        movements = [p for p in parts if p.WhichOneof("part") == "movements"]
        assert len(movements) > 1
        assert all(p.ByteSize() <= MAX_PART_BYTES for p in parts)
        records = read_records(parts, "PA")
        assert len(records.movements) == 4_000
        assert sum(m.serials.quantity for m in records.movements) == 4_000
