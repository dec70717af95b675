"""Disclosure policies applied to records: a pure function from every registry's records and the
policies to report rows. What a policy keeps private never reaches a row; what is withheld is
counted under the program that withheld it; something touching two programs is published only
if both allow it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from regfed.reports import (
    DEFAULT_POLICIES,
    WITHHELD,
    AccountRecord,
    ComplianceRecord,
    EmissionRecord,
    InterstateRecord,
    IssuanceRecord,
    MovementRecord,
    PolicyRefused,
    Price,
    Publication,
    RegistryRecords,
    RunRecord,
    Serials,
    build_publication,
    default_policies,
    load_policies,
    with_overrides,
)

pytestmark = pytest.mark.unit

ARP = Serials("PA", "ARP", "allowance", 2025, 5_120_001, 5_120_100)
RGGI = Serials("NY", "RGGI", "allowance", 2025, 7_340_011, 7_340_110)


def account(registry: str, number: str, name: str, *programs: str, **kw: Any) -> AccountRecord:
    fields: dict[str, Any] = {
        "type": "general",
        "purpose": "",
        "set_aside": "",
        "status": "open",
        "source_id": "",
        "opened_at": "2027-01-01T00:00:00.000000Z",
        "representatives": (),
        **kw,
    }
    return AccountRecord(registry=registry, number=number, name=name, programs=programs, **fields)


def move(
    registry: str,
    kind: str,
    seq: int,
    src: str,
    dst: str,
    s: Serials,
    *,
    price: Price | None = None,
    reason: str = "",
    op: str = "",
) -> MovementRecord:
    return MovementRecord(
        registry, kind, seq, f"2027-01-0{seq % 9 + 1}T10:00:00.000000Z", op or f"op-{seq}",
        src, dst, s, price, reason,
    )  # fmt: skip


def federation() -> dict[str, RegistryRecords]:
    """PA: ARP only, one mixed account; NY: RGGI only."""
    pa = RegistryRecords("PA", 10, "2027-01-10T00:00:00.000000Z")
    pa.accounts = [
        account("PA", "PA-000001-97", "PA allocation", "ARP", type="state", purpose="allocation"),
        account(
            "PA", "PA-000004-88", "Allegheny Traders", "ARP",
            representatives=(("allie", "primary"),),
        ),
        account("PA", "PA-000005-85", "Mixed Holdings", "ARP", "RGGI"),
        account("PA", "PA-000006-82", "Idle Account"),
    ]  # fmt: skip
    pa.issuances = [IssuanceRecord("PA", ARP, "PA-000001-97", "2027-01-01T09:00:00.000000Z", 1)]
    first, rest = (
        Serials("PA", "ARP", "allowance", 2025, 5_120_001, 5_120_010),
        Serials("PA", "ARP", "allowance", 2025, 5_120_011, 5_120_020),
    )
    pa.movements = [
        move("PA", "allocation", 2, "PA-000001-97", "PA-000004-88", first),
        move("PA", "allocation", 2, "PA-000001-97", "PA-000004-88", rest),
        move("PA", "transfer", 3, "PA-000004-88", "PA-000005-85", first,
             price=Price("41.37", "USD")),
        move("PA", "retirement", 4, "PA-000004-88", "PA-000003-91", rest,
             reason="for the climate"),
    ]  # fmt: skip
    ny = RegistryRecords("NY", 7, "2027-01-10T00:00:00.000000Z")
    ny.accounts = [
        account("NY", "NY-000001-02", "NY allocation", "RGGI", type="state", purpose="allocation"),
        account(
            "NY", "NY-000004-90", "Hudson Valley Energy", "RGGI",
            type="compliance", source_id="ORIS-2480", representatives=(("ophelia", "primary"),),
        ),
    ]  # fmt: skip
    ny.issuances = [IssuanceRecord("NY", RGGI, "NY-000001-02", "2027-01-01T09:00:00.000000Z", 1)]
    a, b = (
        Serials("NY", "RGGI", "allowance", 2025, 7_340_011, 7_340_020),
        Serials("NY", "RGGI", "allowance", 2025, 7_340_031, 7_340_040),
    )
    ny.movements = [
        move("NY", "allocation", 2, "NY-000001-02", "NY-000004-90", a),
        move("NY", "allocation", 2, "NY-000001-02", "NY-000004-90", b),
        move("NY", "transfer", 3, "NY-000004-90", "NY-000001-02", a, price=Price("17.83", "USD"),
             op="ophelia-sells-to-the-state"),
        move("NY", "retirement", 5, "NY-000004-90", "NY-000003-05", b,
             reason="Hudson Valley pledge"),
    ]  # fmt: skip
    ny.emissions = [EmissionRecord("NY", "NY-000004-90", "ORIS-2480", "RGGI", "2024-2026", 900)]
    ny.compliance = [
        ComplianceRecord(
            "NY", "NY-000004-90", "ORIS-2480", "RGGI", "2024-2026", 900, 900, 850, 50, True
        )
    ]  # fmt: skip
    return {"PA": pa, "NY": ny}


def build(records: dict[str, RegistryRecords] | None = None, **kw: Any) -> Publication:
    return build_publication(
        records if records is not None else federation(),
        kw.pop("runs", []),
        kw.pop("policies", default_policies()),
        missing=kw.pop("missing", {}),
        generated_at="2027-01-10T12:00:00.000000Z",
    )


def cells(publication: Publication) -> list[Any]:
    return [v for r in publication.reports for row in r.rows for v in row.values()]


def test_the_defaults_are_the_issues() -> None:
    for program in ("ARP", "CSNOX", "CSSO2G1", "CSSO2G2"):
        p = DEFAULT_POLICIES[program]
        assert (p.serials, p.account_holders, p.parties, p.prices) == (True, True, True, False)
    r = DEFAULT_POLICIES["RGGI"]
    assert (r.serials, r.account_holders, r.parties, r.prices) == (False, False, False, True)


def test_nothing_rggi_keeps_private_reaches_a_row_and_the_arp_equivalents_do() -> None:
    everything = cells(build())
    text = " ".join(str(v) for v in everything)
    for private in (
        *(str(n) for n in (7_340_011, 7_340_020, 7_340_031, 7_340_040, 7_340_110)),
        "NY-000004-90", "NY-000001-02", "Hudson Valley Energy", "ophelia",
        "PA-000005-85", "Mixed Holdings",  # touches RGGI too
        "Hudson Valley pledge", "ophelia-sells-to-the-state",
    ):  # fmt: skip
        assert private not in text, private
    for serial in (5_120_001, 5_120_010, 5_120_011, 5_120_020):
        assert serial in everything
    for shown in ("PA-000004-88", "Allegheny Traders", "allie (primary)", "for the climate"):
        assert shown in text, shown


def test_withheld_things_are_counted_per_program() -> None:
    publication = build()
    accounts = publication.report("accounts")
    # NY's two, PA's mixed one, and PA's idle one (touched nothing: judged under every policy)
    assert accounts.withheld.to_dict() == {"RGGI": {"account": 4}}
    assert [r["account"] for r in accounts.rows] == ["PA-000001-97", "PA-000004-88"]
    assert "4 accounts withheld under RGGI's policy" in accounts.withheld.sentences()
    transfers = publication.report("transfers")
    # PA's sale to Mixed Holdings (which holds RGGI units too): its buyer and its typed id;
    # NY's sale: both parties, its id and its serials.
    assert transfers.withheld.to_dict()["RGGI"] == {"party": 3, "reference": 2, "serials": 1}
    prices = publication.report("prices")
    assert prices.withheld.to_dict() == {"ARP": {"price": 1}, "RGGI": {"party": 2}}


def test_without_serials_the_blocks_of_one_record_become_one_row() -> None:
    rows = build().report("issuance-allocation").rows
    ny_allocation = [r for r in rows if r["registry"] == "NY" and r["kind"] == "allocation"]
    assert len(ny_allocation) == 1
    assert ny_allocation[0]["quantity"] == 20
    assert ny_allocation[0]["serial_start"] is WITHHELD
    pa_allocation = [r for r in rows if r["registry"] == "PA" and r["kind"] == "allocation"]
    assert [(r["serial_start"], r["serial_end"]) for r in pa_allocation] == [
        (5_120_001, 5_120_010),
        (5_120_011, 5_120_020),
    ]


def test_the_price_report_has_no_serials_and_no_rggi_parties() -> None:
    prices = build().report("prices")
    assert "serial_start" not in prices.columns
    [row] = prices.rows
    assert (row["program"], row["price"], row["quantity"]) == ("RGGI", "17.83", 10)
    assert row["from_account"] is WITHHELD and row["to_account"] is WITHHELD
    assert row["date"] == "2027-01-04"


def test_a_node_made_reference_is_shown_and_a_typed_one_follows_its_parties() -> None:
    records = federation()
    tid = "PA-" + "0123456789abcdef" * 2
    records["PA"].movements.append(
        move("PA", "transfer", 8, "PA-000004-88", "PA-000001-97", ARP, op=f"{tid}:local")
    )
    records["PA"].movements.append(
        move("PA", "transfer", 9, "PA-000004-88", "PA-000001-97", ARP, op="allie-pays-back")
    )
    references = [r["reference"] for r in build(records).report("transfers").rows]
    assert tid in references
    assert "allie-pays-back" in references  # between ARP-only parties: shown as they are
    assert "op-3" not in references  # its buyer holds RGGI units too
    assert "ophelia-sells-to-the-state" not in references


def test_interstate_takes_the_source_record_or_else_the_destinations() -> None:
    def record(registry: str, side: str, status: str, price: Price | None) -> InterstateRecord:
        return InterstateRecord(
            registry, "PA-" + "ab" * 16, side, status, True, "PA", "PA-000004-88", "NY",
            "NY-000004-90", ARP, "2027-01-05T00:00:00.000000Z", "2027-01-05T00:00:01.000000Z",
            price,
        )  # fmt: skip

    policies = with_overrides(default_policies(), {"ARP": {"prices": True}}, "test")
    records = federation()
    records["PA"].interstate = [record("PA", "source", "completed", Price("3.00", "USD"))]
    records["NY"].interstate = [record("NY", "destination", "completed", None)]
    publication = build(records, policies=policies)
    [row] = [r for r in publication.report("transfers").rows if r["kind"] == "interstate"]
    assert (row["recorded_by"], row["from_account"], row["to_account"]) == (
        "PA",
        "PA-000004-88",
        WITHHELD,
    )
    assert [r["price"] for r in publication.report("prices").rows if r["kind"] == "interstate"] == [
        "3.00"
    ]
    del records["PA"]  # the source did not answer: the destination's record stands in
    [row] = [r for r in build(records).report("transfers").rows if r["kind"] == "interstate"]
    assert row["recorded_by"] == "NY"
    assert row["from_account"] is WITHHELD  # PA's accounts are unknown now: any program's


def test_only_completed_interstate_sales_are_prices() -> None:
    policies = with_overrides(default_policies(), {"ARP": {"prices": True}}, "test")
    records = federation()
    records["PA"].interstate = [
        InterstateRecord(
            "PA", "PA-" + "cd" * 16, "source", "rejected", True, "PA", "PA-000004-88", "NY",
            "NY-000004-90", ARP, "2027-01-05T00:00:00Z", "2027-01-05T00:00:00Z",
            Price("9.00", "USD"),
        )
    ]  # fmt: skip
    assert "9.00" not in [
        r["price"] for r in build(records, policies=policies).report("prices").rows
    ]


def test_emissions_and_compliance_follow_their_programs_flags() -> None:
    publication = build()
    [emission] = publication.report("sources-emissions").rows
    assert (emission["source_id"], emission["tons"], emission["account"]) == (
        "ORIS-2480",
        900,
        WITHHELD,
    )
    [result] = publication.report("compliance").rows
    assert (result["obligation"], result["surrendered"], result["shortfall"]) == (900, 850, 50)
    quiet = with_overrides(default_policies(), {"RGGI": {"emissions": False}}, "test")
    publication = build(policies=quiet)
    assert publication.report("sources-emissions").rows == []
    assert publication.report("sources-emissions").withheld.to_dict() == {"RGGI": {"emission": 1}}


def test_a_program_without_a_policy_publishes_only_quantities() -> None:
    records = federation()
    caqc = Serials("PA", "CAQC", "allowance", 2025, 9_990_001, 9_990_005)
    records["PA"].issuances.append(IssuanceRecord("PA", caqc, "PA-000001-97", "2027-01-02", 9))
    rows = build(records).report("issuance-allocation").rows
    [row] = [r for r in rows if r["program"] == "CAQC"]
    assert (row["serial_start"], row["to_account"], row["quantity"]) == (WITHHELD, WITHHELD, 5)


def test_runs_are_listed_newest_first_with_their_kinds() -> None:
    runs = [
        RunRecord("run-a", 1, "on_demand", "completed", "t1", "t2", ("NY", "PA"), (), 0, (), True),
        RunRecord(
            "run-b", 2, "scheduled", "inconsistent", "t3", "t4", ("NY", "PA"), (), 2,
            (("SERIAL_IN_TWO_PLACES", 2),), True,
        ),
    ]  # fmt: skip
    rows = build(runs=runs).report("reconciliation").rows
    assert [r["run_id"] for r in rows] == ["run-b", "run-a"]
    assert rows[0]["kinds"] == "SERIAL_IN_TWO_PLACES: 2"
    assert rows[0]["signature"] == "verified"


def test_policy_files_override_field_by_field(tmp_path: Path) -> None:
    toml = tmp_path / "policy.toml"
    toml.write_text("[RGGI]\nserials = true\n\n[CAQC]\nprices = true\n")
    policies = load_policies(toml)
    assert policies.of("RGGI").serials and not policies.of("RGGI").parties
    assert policies.of("CAQC").prices and not policies.of("CAQC").serials
    as_json = tmp_path / "policy.json"
    as_json.write_text('{"ARP": {"prices": true}}')
    assert load_policies(as_json).of("ARP").prices
    assert load_policies(None).of("ARP") == DEFAULT_POLICIES["ARP"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[RGGI]\nserial = true\n", "unknown field"),
        ('[RGGI]\nserials = "yes"\n', "true or false"),
        ('["R G"]\nserials = true\n', "program code"),
        ("RGGI = 1\n", "table of fields"),
        ("[RGGI\n", "not TOML"),
    ],
)
def test_a_bad_policy_file_is_refused_saying_why(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyRefused, match=says):
        load_policies(path)


def test_the_packages_core_imports_no_io_library() -> None:
    code = (
        "import sys, regfed.reports\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'grpc')]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
