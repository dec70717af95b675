"""Every refusal of the ledger: a typed error with a stable code that names what it refuses,
and no change to any table (digest of every table before and after)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from regfed.node import (
    Actor,
    DeductCompliance,
    Issue,
    OpenAccount,
    RecordEmissions,
    Registry,
    RegistryError,
    RepresentativeSpec,
    Retire,
    Selection,
    SerialRange,
    SetAccountStatus,
    StatePurpose,
    Transfer,
    UnitBlock,
    UnitClass,
    open_registry,
)
from regfed.node.domain.account_numbers import AccountNumber
from regfed.node.domain.programs import ProgramCatalog
from support import (
    alloc,
    fund,
    issue,
    ledger_digest,
    op_id,
    open_compliance,
    open_general,
    person,
    refused,
    send,
)


@pytest.fixture
def reg(db_url: str) -> Iterator[Registry]:
    registry = open_registry(db_url, "PA")
    yield registry
    registry.close()


def test_account_numbers_refuse_typos_and_other_registries(reg: Registry) -> None:
    acme = open_general(reg, "alice")
    issue(reg, 100)
    fund(reg, acme, 10)
    number = AccountNumber.parse(acme)
    typo = f"PA-{number.sequence + 1:06d}-{acme[-2:]}"
    refused(
        reg,
        "ACCOUNT_NUMBER_CHECK_FAILED",
        lambda: send(reg, acme, typo, person("alice"), quantity=1),
    )
    refused(
        reg,
        "ACCOUNT_NUMBER_MALFORMED",
        lambda: send(reg, acme, "PA-12", person("alice"), quantity=1),
    )
    other = str(AccountNumber.make("NY", 3))
    err = refused(
        reg,
        "ACCOUNT_IN_OTHER_REGISTRY",
        lambda: send(reg, acme, other, person("alice"), quantity=1),
    )
    assert err.details["account"] == other
    missing = str(AccountNumber.make("PA", 999))
    refused(reg, "ACCOUNT_NOT_FOUND", lambda: send(reg, acme, missing, person("alice"), quantity=1))


def test_only_representatives_with_the_right_move_units(reg: Registry) -> None:
    acme = open_general(reg, "alice")
    other = open_general(reg, "mallory")
    issue(reg, 100)
    fund(reg, acme, 50)
    err = refused(
        reg, "NOT_AUTHORIZED", lambda: send(reg, acme, other, person("mallory"), quantity=1)
    )
    assert err.details["account"] == acme
    # The administrator does not move units out of a trader's account either.
    refused(
        reg, "NOT_AUTHORIZED", lambda: send(reg, acme, other, reg.ledger.administrator, quantity=1)
    )
    # A read-only agent may look but not move.
    reg.ledger.appoint_representative(
        __import__("regfed.node", fromlist=["AppointRepresentative"]).AppointRepresentative(
            operation_id=op_id("agent"),
            account=acme,
            representative=RepresentativeSpec(person="reader", role="agent", rights=("read",)),
        ),
        person("alice"),
    )
    refused(reg, "NOT_AUTHORIZED", lambda: send(reg, acme, other, person("reader"), quantity=1))
    assert reg.queries.holdings(acme, person("reader")).totals[0]["quantity"] == 50
    refused(reg, "NOT_AUTHORIZED", lambda: reg.queries.holdings(acme, person("mallory")))
    # Only the administrator issues, and only into a state account.
    refused(
        reg,
        "NOT_AUTHORIZED",
        lambda: reg.ledger.issue(
            Issue(
                operation_id=op_id(),
                program="RGGI",
                unit_type="allowance",
                vintage=2025,
                quantity=5,
                to_account=alloc(reg),
            ),
            person("alice"),
        ),
    )
    refused(
        reg,
        "ACCOUNT_TYPE_MISMATCH",
        lambda: reg.ledger.issue(
            Issue(
                operation_id=op_id(),
                program="RGGI",
                unit_type="allowance",
                vintage=2025,
                quantity=5,
                to_account=acme,
            ),
            reg.ledger.administrator,
        ),
    )
    send(reg, acme, other, person("alice"), quantity=5)


def test_holdings_never_go_negative(reg: Registry) -> None:
    acme = open_general(reg, "alice")
    other = open_general(reg, "bob")
    issue(reg, 100, vintage=2024)
    issue(reg, 100, vintage=2025)
    fund(reg, acme, 150)
    err = refused(
        reg, "INSUFFICIENT_HOLDINGS", lambda: send(reg, acme, other, person("alice"), quantity=151)
    )
    assert err.details == {"account": acme, "requested": 151, "available": 150}
    # Filters restrict what counts as available.
    err = refused(
        reg,
        "INSUFFICIENT_HOLDINGS",
        lambda: send(reg, acme, other, person("alice"), quantity=51, vintage=2025),
    )
    assert err.details["available"] == 50
    send(reg, acme, other, person("alice"), quantity=150)
    assert reg.queries.holdings(acme, person("alice")).blocks == ()


def test_named_serials_not_held_are_named_in_the_refusal(reg: Registry) -> None:
    acme = open_general(reg, "alice")
    other = open_general(reg, "bob")
    issue(reg, 1000)
    fund(reg, acme, 100)  # serials 1-100
    uc = UnitClass("PA", "RGGI", "allowance", 2025)
    wanted = UnitBlock(uc, SerialRange(90, 120))
    err = refused(
        reg, "UNITS_NOT_HELD", lambda: send(reg, acme, other, person("alice"), blocks=(wanted,))
    )
    assert err.details["blocks"] == [UnitBlock(uc, SerialRange(101, 120)).to_dict()]
    wrong_vintage = UnitBlock(UnitClass("PA", "RGGI", "allowance", 2024), SerialRange(1, 5))
    refused(
        reg,
        "UNITS_NOT_HELD",
        lambda: send(reg, acme, other, person("alice"), blocks=(wrong_vintage,)),
    )
    send(reg, acme, other, person("alice"), blocks=(UnitBlock(uc, SerialRange(40, 60)),))
    held = [
        (b.block["start"], b.block["end"])
        for b in reg.queries.holdings(acme, person("alice")).blocks
    ]
    assert held == [(1, 39), (61, 100)]


def test_restricted_and_closed_accounts(reg: Registry) -> None:
    acme = open_general(reg, "alice")
    other = open_general(reg, "bob")
    issue(reg, 100)
    fund(reg, acme, 10)
    admin = reg.ledger.administrator

    def status(account: str, value: str) -> object:
        return reg.ledger.set_account_status(
            SetAccountStatus(operation_id=op_id("status"), account=account, status=value), admin
        )

    status(acme, "restricted")
    refused(reg, "ACCOUNT_RESTRICTED", lambda: send(reg, acme, other, person("alice"), quantity=1))
    fund(reg, acme, 5)  # a restricted account still receives
    status(acme, "open")
    refused(reg, "ACCOUNT_NOT_EMPTY", lambda: status(acme, "closed"))
    refused(
        reg,
        "NOT_AUTHORIZED",
        lambda: reg.ledger.set_account_status(
            SetAccountStatus(operation_id=op_id(), account=other, status="closed"), person("bob")
        ),
    )
    status(other, "closed")
    refused(reg, "ACCOUNT_CLOSED", lambda: send(reg, acme, other, person("alice"), quantity=1))
    refused(reg, "ACCOUNT_CLOSED", lambda: send(reg, other, acme, person("bob"), quantity=1))
    refused(reg, "INVALID_ARGUMENT", lambda: status(other, "open"))


def test_program_rules_decide_whether_a_compliance_account_may_send(reg: Registry) -> None:
    rggi_plant = open_compliance(reg, "carol", "ORIS-1")
    trader = open_general(reg, "bob")
    issue(reg, 100, program="RGGI")
    issue(reg, 100, program="CAQC")
    fund(reg, rggi_plant, 10, program="RGGI")
    fund(reg, rggi_plant, 10, program="CAQC")
    err = refused(
        reg,
        "PROGRAM_FORBIDS_SEND",
        lambda: send(reg, rggi_plant, trader, person("carol"), quantity=1, program="CAQC"),
    )
    assert err.details == {"account": rggi_plant, "program": "CAQC"}
    refused(
        reg,
        "PROGRAM_FORBIDS_SEND",
        lambda: reg.ledger.retire(
            Retire(
                operation_id=op_id(),
                from_account=rggi_plant,
                selection=Selection(quantity=1, program="CAQC"),
            ),
            person("carol"),
        ),
    )
    # Selection by quantity without a program filter would pick CAQC units too: refused whole.
    refused(
        reg,
        "PROGRAM_FORBIDS_SEND",
        lambda: send(reg, rggi_plant, trader, person("carol"), quantity=20),
    )
    send(reg, rggi_plant, trader, person("carol"), quantity=10, program="RGGI")


def test_issuance_never_overlaps_earlier_issuance(reg: Registry) -> None:
    first = issue(reg, 1000)
    second = issue(reg, 1000)
    assert (first["start"], first["end"], second["start"]) == (1, 1000, 1001)
    refused(
        reg,
        "ISSUANCE_OVERLAP",
        lambda: reg.ledger.issue(
            Issue(
                operation_id=op_id(),
                program="RGGI",
                unit_type="allowance",
                vintage=2025,
                quantity=10,
                to_account=alloc(reg),
                start=1995,
            ),
            reg.ledger.administrator,
        ),
    )
    # The same serials under another vintage are other units (EPA data reuses ranges).
    other = reg.ledger.issue(
        Issue(
            operation_id=op_id(),
            program="RGGI",
            unit_type="allowance",
            vintage=2026,
            quantity=10,
            to_account=alloc(reg),
            start=1,
        ),
        reg.ledger.administrator,
    )
    assert other.detail["block"]["start"] == 1
    refused(
        reg,
        "UNKNOWN_PROGRAM",
        lambda: reg.ledger.issue(
            Issue(
                operation_id=op_id(),
                program="NOPE",
                unit_type="allowance",
                vintage=2025,
                quantity=10,
                to_account=alloc(reg),
            ),
            reg.ledger.administrator,
        ),
    )
    refused(
        reg,
        "INVALID_ARGUMENT",
        lambda: reg.ledger.issue(
            Issue(
                operation_id=op_id(),
                program="RGGI",
                unit_type="widget",
                vintage=2025,
                quantity=10,
                to_account=alloc(reg),
            ),
            reg.ledger.administrator,
        ),
    )


def test_same_operation_id_applies_once_and_refuses_other_content(reg: Registry) -> None:
    acme = open_general(reg, "alice")
    other = open_general(reg, "bob")
    issue(reg, 100)
    fund(reg, acme, 50)
    command = Transfer(
        operation_id="client-42",
        from_account=acme,
        to_account=other,
        selection=Selection(quantity=7),
    )
    first = reg.ledger.transfer(command, person("alice"))
    before = ledger_digest(reg)
    again = reg.ledger.transfer(command, person("alice"))
    assert ledger_digest(reg) == before
    assert again.replayed and not first.replayed
    assert (again.seq, again.movements) == (first.seq, first.movements)
    different = Transfer(
        operation_id="client-42",
        from_account=acme,
        to_account=other,
        selection=Selection(quantity=8),
    )
    err = refused(
        reg, "IDEMPOTENCY_CONFLICT", lambda: reg.ledger.transfer(different, person("alice"))
    )
    assert err.details["operation_id"] == "client-42"
    # The same content submitted by someone else under the same id is a different request.
    refused(reg, "IDEMPOTENCY_CONFLICT", lambda: reg.ledger.transfer(command, person("bob")))
    assert sum(t["quantity"] for t in reg.queries.holdings(other, person("bob")).totals) == 7


def test_a_failed_operation_is_not_remembered(reg: Registry) -> None:
    acme = open_general(reg, "alice")
    other = open_general(reg, "bob")
    issue(reg, 100)
    command = Transfer(
        operation_id="retry-me",
        from_account=acme,
        to_account=other,
        selection=Selection(quantity=5),
    )
    refused(reg, "INSUFFICIENT_HOLDINGS", lambda: reg.ledger.transfer(command, person("alice")))
    fund(reg, acme, 5)
    assert not reg.ledger.transfer(command, person("alice")).replayed


def test_representative_rules(reg: Registry) -> None:
    from regfed.node import AppointRepresentative, RemoveRepresentative

    admin = reg.ledger.administrator
    refused(
        reg,
        "REPRESENTATIVE_CONFLICT",
        lambda: reg.ledger.open_account(
            OpenAccount(operation_id=op_id(), account_type="general", name="No AR"), admin
        ),
    )
    refused(
        reg,
        "REPRESENTATIVE_CONFLICT",
        lambda: reg.ledger.open_account(
            OpenAccount(
                operation_id=op_id(),
                account_type="general",
                name="Two ARs",
                representatives=(
                    RepresentativeSpec(person="a", role="primary"),
                    RepresentativeSpec(person="b", role="primary"),
                ),
            ),
            admin,
        ),
    )
    acme = open_general(reg, "alice")

    def appoint(who: str, role: str, actor: Actor, rights: tuple[str, ...] = ()) -> object:
        return reg.ledger.appoint_representative(
            AppointRepresentative(
                operation_id=op_id("appoint"),
                account=acme,
                representative=RepresentativeSpec(person=who, role=role, rights=rights),
            ),
            actor,
        )

    appoint("bob", "alternate", admin)
    appoint("eve", "alternate", admin)  # replaces bob: at most one alternate
    roles = {r["person"]: r["role"] for r in reg.queries.accounts()[-1]["representatives"]}
    assert roles == {"alice": "primary", "eve": "alternate"}
    refused(reg, "NOT_AUTHORIZED", lambda: appoint("zed", "alternate", person("alice")))
    appoint("agent1", "agent", person("eve"), ("initiate", "read"))  # delegation to an agent
    refused(reg, "NOT_AUTHORIZED", lambda: appoint("agent2", "agent", person("agent1")))
    refused(
        reg,
        "REPRESENTATIVE_CONFLICT",
        lambda: reg.ledger.remove_representative(
            RemoveRepresentative(operation_id=op_id(), account=acme, person="alice"), admin
        ),
    )
    refused(
        reg,
        "REPRESENTATIVE_NOT_FOUND",
        lambda: reg.ledger.remove_representative(
            RemoveRepresentative(operation_id=op_id(), account=acme, person="nobody"), admin
        ),
    )
    appoint("frank", "primary", admin)  # replacing the primary
    roles = {r["person"]: r["role"] for r in reg.queries.accounts()[-1]["representatives"]}
    assert roles == {"frank": "primary", "eve": "alternate", "agent1": "agent"}
    # Every change is journaled with the roster before and after.
    kinds = [e["kind"] for e in reg.queries.statement(acme, admin)["entries"]]
    assert kinds.count("representatives") == 4


def test_compliance_accounts_are_bound_to_one_source(reg: Registry) -> None:
    open_compliance(reg, "carol", "ORIS-7")
    refused(reg, "SOURCE_ALREADY_HAS_ACCOUNT", lambda: open_compliance(reg, "dave", "ORIS-7"))


def test_deduction_uses_eligible_vintages_in_order_and_reports_shortfall(reg: Registry) -> None:
    plant = open_compliance(reg, "carol", "ORIS-9")
    admin = reg.ledger.administrator
    for vintage in (2023, 2024, 2027):
        issue(reg, 100, vintage=vintage)
    issue(reg, 100, program="ARP", vintage=2023)
    fund(reg, plant, 100, vintage=2024)
    fund(reg, plant, 100, vintage=2023, program="RGGI")
    fund(reg, plant, 100, vintage=2027)  # future vintage: not eligible for 2024-2026
    fund(reg, plant, 100, program="ARP")  # other program: not eligible
    reg.ledger.record_emissions(
        RecordEmissions(
            operation_id=op_id(), account=plant, program="RGGI", period="2024-2026", tons=250
        ),
        admin,
    )
    result = reg.ledger.deduct_compliance(
        DeductCompliance(operation_id=op_id(), program="RGGI", period="2024-2026"), admin
    )
    [row] = result.detail["sources"]
    assert (row["obligation"], row["deducted"], row["shortfall"]) == (250, 200, 50)
    assert [(m["vintage"], m["start"], m["end"]) for m in result.movements] == [
        (2023, 1, 100),
        (2024, 1, 100),
    ]
    # Surrendered blocks stay attributable to the account they left.
    states = {
        (b.block["program"], b.block["vintage"], b.state)
        for b in reg.queries.holdings(plant, admin).blocks
    }
    assert states == {
        ("RGGI", 2023, "surrendered"),
        ("RGGI", 2024, "surrendered"),
        ("RGGI", 2027, "held"),
        ("ARP", 2023, "held"),
    }
    # Deducting again takes only what is still owed; nothing when nothing is eligible.
    again = reg.ledger.deduct_compliance(
        DeductCompliance(operation_id=op_id(), program="RGGI", period="2024-2026"), admin
    )
    assert again.detail["sources"][0]["deducted"] == 0
    assert again.detail["sources"][0]["shortfall"] == 50
    assert reg.queries.compliance() == [
        {
            "account": plant,
            "source": "ORIS-9",
            "program": "RGGI",
            "period": "2024-2026",
            "emissions": 250,
            "obligation": 250,
            "surrendered": 200,
            "shortfall": 50,
        }
    ]
    assert reg.queries.verify().ok


def test_emissions_and_deduction_refusals(reg: Registry) -> None:
    admin = reg.ledger.administrator
    acme = open_general(reg, "alice")
    plant = open_compliance(reg, "carol", "ORIS-3")
    refused(
        reg,
        "ACCOUNT_TYPE_MISMATCH",
        lambda: reg.ledger.record_emissions(
            RecordEmissions(
                operation_id=op_id(), account=acme, program="RGGI", period="2025", tons=1
            ),
            admin,
        ),
    )
    refused(
        reg,
        "INVALID_ARGUMENT",
        lambda: reg.ledger.record_emissions(
            RecordEmissions(
                operation_id=op_id(), account=plant, program="RGGI", period="25-26", tons=1
            ),
            admin,
        ),
    )
    refused(
        reg,
        "INVALID_ARGUMENT",
        lambda: reg.ledger.record_emissions(
            RecordEmissions(
                operation_id=op_id(), account=plant, program="RGGI", period="2025", tons=-1
            ),
            admin,
        ),
    )
    refused(
        reg,
        "NOT_AUTHORIZED",
        lambda: reg.ledger.record_emissions(
            RecordEmissions(
                operation_id=op_id(), account=plant, program="RGGI", period="2025", tons=1
            ),
            person("carol"),
        ),
    )
    refused(
        reg,
        "NOT_AUTHORIZED",
        lambda: reg.ledger.deduct_compliance(
            DeductCompliance(operation_id=op_id(), program="RGGI", period="2025"), person("carol")
        ),
    )
    refused(
        reg,
        "UNKNOWN_PROGRAM",
        lambda: reg.ledger.deduct_compliance(
            DeductCompliance(operation_id=op_id(), program="XX", period="2025"), admin
        ),
    )


def test_retired_units_stay_attributed_and_are_never_deleted(reg: Registry) -> None:
    acme = open_general(reg, "alice")
    issue(reg, 100)
    fund(reg, acme, 40)
    reg.ledger.retire(
        Retire(operation_id=op_id(), from_account=acme, selection=Selection(quantity=15)),
        person("alice"),
    )
    view = reg.queries.holdings(acme, person("alice"))
    assert {(t["state"], t["quantity"]) for t in view.totals} == {("held", 25), ("retired", 15)}
    retirement = reg.state_account(StatePurpose.RETIREMENT).label
    refused(
        reg,
        "ACCOUNT_TYPE_MISMATCH",
        lambda: send(reg, acme, retirement, person("alice"), quantity=1),
    )
    totals = reg.queries.totals()
    assert (totals[0]["held"], totals[0]["retired"], totals[0]["issued"]) == (85, 15, 100)


def test_statement_lists_movements_of_one_account_over_a_period(reg: Registry) -> None:
    acme = open_general(reg, "alice")
    other = open_general(reg, "bob")
    issue(reg, 100)
    fund(reg, acme, 30)
    send(reg, acme, other, person("alice"), quantity=12)
    statement = reg.queries.statement(acme, person("alice"))
    moves = [(e["kind"], e["units_in"], e["units_out"]) for e in statement["entries"]]
    assert moves == [("open-account", 0, 0), ("allocation", 30, 0), ("transfer", 0, 12)]
    last = statement["entries"][-1]
    assert last["blocks"][0]["to"] == other and last["actor"] == "person:alice"
    later = reg.queries.statement(acme, person("alice"), since="9999-01-01T00:00:00Z")
    assert later["entries"] == []
    # A date alone, or a time with an offset, means the same instant in UTC.
    alice = person("alice")
    assert len(reg.queries.statement(acme, alice, since="2000-01-01")["entries"]) == 3
    assert reg.queries.statement(acme, alice, until="2000-01-01T05:00:00+05:00")["entries"] == []
    assert reg.queries.statement(acme, alice, since="2000-01-01")["since"] == (
        "2000-01-01T00:00:00.000000Z"
    )
    # Journal times compare as text: a word would silently select nothing, so it is refused.
    for bad in ("yesterday", "2026-13-01", ""):
        with pytest.raises(RegistryError) as caught:
            reg.queries.statement(acme, alice, since=bad)
        assert caught.value.code == "INVALID_ARGUMENT" and "ISO date" in caught.value.message


def test_an_account_named_twice_is_deducted_once(reg: Registry) -> None:
    """Found by an independent review: a repeated account took the obligation twice."""
    plant = open_compliance(reg, "carol", "ORIS-77")
    admin = reg.ledger.administrator
    issue(reg, 1000, vintage=2024)
    fund(reg, plant, 1000, vintage=2024)
    reg.ledger.record_emissions(
        RecordEmissions(
            operation_id=op_id(), account=plant, program="RGGI", period="2024-2026", tons=100
        ),
        admin,
    )
    result = reg.ledger.deduct_compliance(
        DeductCompliance(
            operation_id=op_id(), program="RGGI", period="2024-2026", accounts=(plant, plant)
        ),
        admin,
    )
    [row] = result.detail["sources"]
    assert (row["obligation"], row["deducted"], row["shortfall"]) == (100, 100, 0)
    [summary] = reg.queries.compliance()
    assert (summary["emissions"], summary["surrendered"]) == (100, 100)


@pytest.mark.parametrize(
    "name",
    ["x" * 300, "Acme\x00Energy", "  ", "Acme\r\nEnergy"],
    ids=["long", "nul", "blank", "crlf"],
)
def test_names_are_refused_alike_on_both_engines(reg: Registry, name: str) -> None:
    """Before, SQLite stored these and PostgreSQL failed with INVARIANT_VIOLATION."""
    error = refused(reg, "INVALID_ARGUMENT", lambda: open_general(reg, "alice", name))
    assert "name" in error.message
    refused(reg, "INVALID_ARGUMENT", lambda: open_general(reg, name, "Acme"))


def test_the_compliance_summary_owes_units_per_ton(db_url: str) -> None:
    """A program owing 2 units a ton: the summary's obligation and shortfall are in units, as
    the deduction's are (it used to subtract surrendered units from tons)."""
    programs = ProgramCatalog.default().with_overrides(
        [{"code": "NOX2", "compliance_account_may_send": True, "units_per_ton": 2}]
    )
    reg = open_registry(db_url, "PA", programs=programs)
    try:
        admin = reg.ledger.administrator
        plant = open_compliance(reg, "alice", "ORIS-2")
        issue(reg, 150, program="NOX2", vintage=2024)
        fund(reg, plant, 150, program="NOX2")
        reg.ledger.record_emissions(
            RecordEmissions(
                operation_id=op_id(), account=plant, program="NOX2", period="2024", tons=100
            ),
            admin,
        )
        result = reg.ledger.deduct_compliance(
            DeductCompliance(operation_id=op_id(), program="NOX2", period="2024"), admin
        )
        [row] = result.detail["sources"]
        assert (row["obligation"], row["deducted"], row["shortfall"]) == (200, 150, 50)
        [summary] = reg.queries.compliance()
        assert (summary["emissions"], summary["obligation"]) == (100, 200)
        assert (summary["surrendered"], summary["shortfall"]) == (150, 50)
    finally:
        reg.close()
