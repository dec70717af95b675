"""Public reports over the network: real registry nodes (PA issues ARP, NY issues RGGI) and
the oversight node over mutual TLS, published by `regfed report publish` as the operator runs
it. Two programs with different policies: nothing RGGI's policy keeps private (its serial
numbers in any written form, its parties' account numbers, names and representatives, what they
typed) appears in any byte of any published file, and the ARP equivalents do, so the check can
fail. Only the oversight certificate may read a node's records; a stopped node makes publish
refuse, naming it, unless missing members are allowed, and then every page says so."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from federation_support import running_federation

from regfed.certs.identity import Role
from regfed.certs.intermediate import issue_person
from regfed.gateway._generated.report.v1 import report_pb2, report_pb2_grpc
from regfed.gateway.transport import CODE_KEY, channel_credentials
from regfed.local import Federation, LocalFederation, RegistryClient, TransferFailed
from regfed.local.oversight import OversightClient
from regfed.node import (
    DeductCompliance,
    Issue,
    OpenAccount,
    Price,
    RecordEmissions,
    Registry,
    RepresentativeSpec,
    Retire,
    Selection,
    StatePurpose,
    Transfer,
    open_existing,
)
from regfed.node.domain.actors import Actor

pytestmark = pytest.mark.e2e

ARP_START = 5_120_001
RGGI_START = 7_340_011
# Prices with three digits before the point: a time's seconds ("…:41.37…") cannot spell them.
ARP_PRICES = ("413.77", "382.19")
RGGI_PRICES = ("117.83", "118.20", "116.05")


@dataclass
class World:
    federation: Federation
    local: LocalFederation
    out: Path
    summary: dict[str, Any]
    accounts: dict[str, str] = field(default_factory=dict)
    #: What RGGI's policy keeps private, and the ARP equivalents that must be there.
    private: list[str] = field(default_factory=list)
    public: list[str] = field(default_factory=list)


def regfed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regfed.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def written_forms(n: int) -> list[str]:
    """A number as people and programs write it."""
    grouped = f"{n:,}"
    return [
        str(n),
        grouped,
        f"{n:_}",
        *(grouped.replace(",", sep) for sep in (" ", ".", "'", "\u00a0", "\u202f", "\u2009")),
    ]


@contextlib.contextmanager
def registry(federation: Federation, code: str) -> Iterator[Registry]:
    reg = open_existing(federation.node_config(code).database)
    try:
        yield reg
    finally:
        reg.close()


def _op(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:12]}"


def open_account(reg: Registry, kind: str, name: str, person: str, source: str = "") -> str:
    result = reg.ledger.open_account(
        OpenAccount(
            operation_id=_op("open"),
            account_type=kind,
            name=name,
            source_id=source or None,
            representatives=(RepresentativeSpec(person=person, role="primary"),),
        ),
        reg.ledger.administrator,
    )
    return str(result.detail["account"])


def allocate(reg: Registry, to: str, quantity: int, program: str) -> None:
    reg.ledger.transfer(
        Transfer(
            operation_id=_op("allocate"),
            from_account=reg.state_account(StatePurpose.ALLOCATION).label,
            to_account=to,
            selection=Selection(quantity=quantity, program=program),
        ),
        reg.ledger.administrator,
    )


def comply(reg: Registry, account: str, program: str, period: str, tons: int) -> None:
    admin = reg.ledger.administrator
    reg.ledger.record_emissions(
        RecordEmissions(
            operation_id=_op("emissions"), account=account, program=program, period=period,
            tons=tons,
        ),
        admin,
    )  # fmt: skip
    reg.ledger.deduct_compliance(
        DeductCompliance(operation_id=_op("deduct"), program=program, period=period), admin
    )


def settle(client: RegistryClient, proposed: dict[str, Any]) -> dict[str, Any]:
    settled = client.wait_settled(proposed["transfer_id"], 30)
    assert (settled["status"], settled["settled"]) == ("completed", True), settled
    return settled


def build(federation: Federation) -> dict[str, str]:
    """PA issues ARP, NY issues RGGI; accounts, allocations, priced intrastate and interstate
    transfers, retirements, emissions and deductions on both sides."""
    acc: dict[str, str] = {}
    with registry(federation, "PA") as pa:
        pa.ledger.issue(
            Issue(
                operation_id=_op("issue"), program="ARP", unit_type="allowance", vintage=2025,
                quantity=1000, to_account=pa.state_account(StatePurpose.ALLOCATION).label,
                start=ARP_START,
            ),
            pa.ledger.administrator,
        )  # fmt: skip
        acc["allegheny"] = open_account(pa, "general", "Allegheny Allowance Traders", "trader1")
        acc["keystone"] = open_account(
            pa, "compliance", "Keystone Generating Station", "karl-arp", "ORIS-3122"
        )
        acc["susquehanna"] = open_account(pa, "general", "Susquehanna RGGI Desk", "susan-rggi")
        allocate(pa, acc["allegheny"], 300, "ARP")
        allocate(pa, acc["keystone"], 200, "ARP")
        pa.ledger.transfer(
            Transfer(
                operation_id="allegheny-lends-keystone",
                from_account=acc["allegheny"],
                to_account=acc["keystone"],
                selection=Selection(quantity=20),
            ),
            Actor.person("trader1"),
        )
        pa.ledger.retire(
            Retire(
                operation_id=_op("retire"),
                from_account=acc["allegheny"],
                selection=Selection(quantity=10),
                reason="Allegheny voluntary retirement",
            ),
            Actor.person("trader1"),
        )
        comply(pa, acc["keystone"], "ARP", "2025", 180)
    with registry(federation, "NY") as ny:
        ny.ledger.issue(
            Issue(
                operation_id=_op("issue"), program="RGGI", unit_type="allowance", vintage=2025,
                quantity=1000, to_account=ny.state_account(StatePurpose.ALLOCATION).label,
                start=RGGI_START,
            ),
            ny.ledger.administrator,
        )  # fmt: skip
        acc["hudson"] = open_account(
            ny, "compliance", "Hudson Valley Energy Center", "ophelia-rggi", "ORIS-2480"
        )
        acc["empire"] = open_account(ny, "general", "Empire Carbon Brokers", "ophelia-rggi")
        acc["mixed"] = open_account(ny, "general", "Mixed Holdings Co", "mona-mixed")
        allocate(ny, acc["empire"], 400, "RGGI")
        allocate(ny, acc["hudson"], 300, "RGGI")
        allocate(ny, acc["mixed"], 50, "RGGI")
        ny.ledger.transfer(
            Transfer(
                operation_id="empire-to-hudson-private-deal",
                from_account=acc["empire"],
                to_account=acc["hudson"],
                selection=Selection(quantity=30),
                price=Price.parse(RGGI_PRICES[2]),
            ),
            Actor.person("ophelia-rggi"),
        )
    issue_person(federation.certs / "NY" / "intermediate", Role.TRADER, "ophelia-rggi")
    with RegistryClient(federation, "PA") as trader:
        settle(trader, trader.propose(acc["allegheny"], acc["keystone"], quantity=50,
                                      price=ARP_PRICES[0], wait_s=30))  # fmt: skip
        settle(trader, trader.propose(acc["allegheny"], acc["mixed"], quantity=25,
                                      price=ARP_PRICES[1], wait_s=30))  # fmt: skip
    with RegistryClient(federation, "NY", person="ophelia-rggi") as trader:
        settle(trader, trader.propose(acc["empire"], acc["hudson"], quantity=60,
                                      price=RGGI_PRICES[0], wait_s=30))  # fmt: skip
        settle(trader, trader.propose(acc["empire"], acc["susquehanna"], quantity=40,
                                      price=RGGI_PRICES[1], wait_s=30))  # fmt: skip
    with registry(federation, "NY") as ny:
        ny.ledger.retire(
            Retire(
                operation_id=_op("retire"),
                from_account=acc["hudson"],
                selection=Selection(quantity=15),
                reason="Hudson Valley Energy Center pledge",
            ),
            Actor.person("ophelia-rggi"),
        )
        comply(ny, acc["hudson"], "RGGI", "2024-2026", 320)
    return acc


#: Every serial boundary a registry ever stored or moved.
EVERY_SERIAL = (
    "SELECT start_serial, end_serial FROM blocks WHERE program = ? UNION "
    "SELECT start_serial, end_serial FROM journal_movements WHERE program = ?"
)
#: The boundaries of the blocks the reports list: issued, allocated, transferred, retired
#: (a compliance deduction's blocks are in no report).
REPORTED_SERIALS = (
    "SELECT start_serial, end_serial FROM journal_movements m JOIN journal_entries e "
    "ON e.seq = m.seq WHERE program = ? AND ? AND e.kind IN "
    "('issue', 'allocation', 'transfer', 'retire', 'transfer-escrow')"
)


def serials_of(federation: Federation, code: str, program: str, sql: str) -> set[int]:
    path = federation.node_config(code).database.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(sql, (program, program if "UNION" in sql else 1)).fetchall()
    return {int(n) for row in rows for n in row}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("reports")
    with running_federation(folder / "fed", ["PA", "NY"]) as (federation, local):
        acc = build(federation)
        with OversightClient(federation, timeout=60.0) as oversight:
            run = oversight.reconcile()
        assert run["status"] == "completed", run["result"]["discrepancies"]
        out = folder / "public"
        published = regfed("report", "publish", str(out), "--federation", str(federation.file),
                           "--json")  # fmt: skip
        assert published.returncode == 0, published.stderr
        world = World(federation, local, out, json.loads(published.stdout), acc)
        rggi = {n for c in ("NY", "PA") for n in serials_of(federation, c, "RGGI", EVERY_SERIAL)}
        assert min(rggi) == RGGI_START and len(rggi) > 4
        world.private += [form for n in sorted(rggi) for form in written_forms(n)]
        with registry(federation, "NY") as ny:
            world.private += [a["account"] for a in ny.queries.accounts()]
        world.private += [
            acc["susquehanna"], "Susquehanna RGGI Desk", "susan-rggi",
            "Hudson Valley Energy Center", "Empire Carbon Brokers", "ophelia-rggi",
            "Mixed Holdings Co", "mona-mixed",  # a NY account holding ARP units too
            "empire-to-hudson-private-deal", *ARP_PRICES,
        ]  # fmt: skip
        arp = serials_of(federation, "PA", "ARP", REPORTED_SERIALS)
        assert min(arp) == ARP_START and len(arp) > 4
        world.public += [str(n) for n in sorted(arp)]
        world.public += [
            acc["allegheny"], "Allegheny Allowance Traders", acc["keystone"],
            "Keystone Generating Station", "karl-arp", "trader1",
            "Allegheny voluntary retirement", "allegheny-lends-keystone", "ORIS-3122",
        ]  # fmt: skip
        yield world


def published_bytes(out: Path) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(files) == 2 + 3 * 14, sorted(files)  # index, publication.json, 14 reports x 3
    return files


def test_nothing_rggi_keeps_private_appears_anywhere_and_the_arp_equivalents_do(
    world: World,
) -> None:
    files = published_bytes(world.out)
    for text in world.private:
        needle = text.encode()
        hits = [name for name, data in files.items() if needle in data]
        assert not hits, f"{text!r} is published in {hits}"
    everything = b"\n".join(files.values())
    for text in world.public:
        assert text.encode() in everything, f"{text!r} is not published"
    assert f",{ARP_START},{ARP_START + 999},1000".encode() in files["issuance-allocation.csv"]
    assert f"<td>{world.accounts['allegheny']}</td>".encode() in files["accounts.html"]


def rows(out: Path, report: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((out / f"{report}.csv").read_text())))


def test_the_reports_say_what_happened(world: World) -> None:
    out, acc = world.out, world.accounts
    prices = rows(out, "prices")
    assert {(r["program"], r["kind"], r["price"], r["quantity"]) for r in prices} == {
        ("RGGI", "intrastate", RGGI_PRICES[0], "60"),
        ("RGGI", "interstate", RGGI_PRICES[1], "40"),
        ("RGGI", "intrastate", RGGI_PRICES[2], "30"),
    }
    assert all(r["from_account"] == r["to_account"] == "(withheld)" for r in prices)
    interstate = [r for r in rows(out, "transfers") if r["kind"] == "interstate"]
    arp = next(r for r in interstate if r["program"] == "ARP")
    assert (arp["from_account"], arp["to_account"], arp["status"]) == (
        acc["allegheny"],
        "(withheld)",  # Mixed Holdings holds RGGI units too
        "completed",
    )
    assert arp["serial_start"] != "(withheld)" and arp["quantity"] == "25"
    rggi = next(r for r in interstate if r["program"] == "RGGI")
    assert (rggi["serial_start"], rggi["from_account"], rggi["recorded_by"]) == (
        "(withheld)",
        "(withheld)",
        "NY",
    )
    compliance = {r["program"]: r for r in rows(out, "compliance")}
    assert compliance["ARP"]["account"] == acc["keystone"]
    assert compliance["ARP"]["obligation"] == "180" and compliance["ARP"]["status"] == "deducted"
    assert compliance["RGGI"]["source_id"] == "ORIS-2480"
    assert compliance["RGGI"]["account"] == "(withheld)"
    [run] = rows(out, "reconciliation")
    assert (run["status"], run["signature"], run["registries"]) == (
        "completed",
        "verified",
        "NY, PA",
    )
    withheld = world.summary["withheld"]
    assert withheld["accounts"]["RGGI"]["account"] >= 7  # every NY account and Susquehanna
    assert withheld["prices"]["ARP"]["price"] == 2
    assert world.summary["missing"] == {}
    assert world.summary["findings"] == []  # no credit provenance disagrees
    assert "withheld under RGGI&#x27;s policy" in (out / "index.html").read_text()


def test_only_the_oversight_certificate_may_read_a_nodes_records(world: World) -> None:
    federation = world.federation
    ca = federation.ca.read_bytes()
    for role in (Role.TRADER, Role.ADMINISTRATOR, Role.REGISTRY, Role.OVERSIGHT):
        chain, key = federation.credential("PA", role)
        credentials = channel_credentials(ca, chain.read_bytes(), key.read_bytes())
        with grpc.secure_channel(federation.endpoint("PA"), credentials) as channel:
            stub = report_pb2_grpc.PublicRecordsStub(channel)
            call = stub.Records(report_pb2.RecordsRequest(), timeout=30)
            if role is Role.OVERSIGHT:
                kinds = [part.WhichOneof("part") for part in call]
                assert kinds[0] == "header" and kinds[-1] == "trailer"
                continue
            with pytest.raises(grpc.RpcError) as refused:
                list(call)
            error = refused.value
            assert error.code() is grpc.StatusCode.PERMISSION_DENIED, role
            assert dict(error.trailing_metadata() or ())[CODE_KEY] == "WRONG_ROLE"
            assert "only the oversight node's certificate" in (error.details() or "")


def test_a_price_the_node_cannot_take_is_refused(world: World) -> None:
    with RegistryClient(world.federation, "PA") as trader:
        for amount in ("12.345", "-1", "0", "1e3"):
            with pytest.raises(TransferFailed) as refused:
                trader.propose(world.accounts["allegheny"], world.accounts["keystone"],
                               quantity=1, price=amount)  # fmt: skip
            assert (refused.value.status, refused.value.code) == (
                "INVALID_ARGUMENT",
                "INVALID_ARGUMENT",
            )


def test_on_the_oversight_host_publish_reads_as_the_node_from_its_own_file(
    world: World, tmp_path: Path
) -> None:
    config = world.federation.oversight_config()
    keys = ("code", "listen", "ca", "certificate", "key", "signing_key", "directory")
    toml = tmp_path / "oversight.toml"
    lines = [f'{k} = "{getattr(config, k)}"' for k in keys]
    toml.write_text("\n".join([*lines, f'database = "{config.database}"']) + "\n")
    out = tmp_path / "from-config"
    published = regfed("report", "publish", str(out), "--config", str(toml), "--json")
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["records"] == world.summary["records"]
    for report in ("accounts", "prices", "transfers", "reconciliation"):
        assert rows(out, report) == rows(world.out, report), report
    both = regfed("report", "publish", str(out), "--config", str(toml), "--federation", "x")
    assert both.returncode == 1 and "do not mix" in both.stderr
    theirs = tmp_path / "documents"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("mine")
    refused = regfed("report", "publish", str(theirs), "--config", str(toml), "--json")
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["error"]["code"] == "TARGET_REFUSED"
    assert [p.name for p in theirs.iterdir()] == ["thesis.tex"]


def test_a_stopped_node_makes_publish_refuse_naming_it(world: World) -> None:
    federation, local, out = world.federation, world.local, world.out
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    local.kill("NY")
    try:
        args = (
            "report",
            "publish",
            str(out),
            "--federation",
            str(federation.file),
            "--timeout",
            "2",
        )
        refused = regfed(*args, "--json")
        assert refused.returncode == 1, refused.stderr
        error = json.loads(refused.stdout)["error"]
        assert error["code"] == "MEMBERS_MISSING" and list(error["missing"]) == ["NY"]
        assert "UNREACHABLE" in error["missing"]["NY"]
        readable = regfed(*args)
        assert readable.returncode == 1
        assert "NY" in readable.stderr and "--allow-missing" in readable.stderr
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written

        allowed = regfed(*args, "--allow-missing", "--json")
        assert allowed.returncode == 0, allowed.stderr
        assert list(json.loads(allowed.stdout)["missing"]) == ["NY"]
        for page in out.glob("*.html"):
            text = page.read_text()
            assert "Incomplete publication" in text and "<b>NY</b>" in text, page.name
        assert json.loads((out / "transfers.json").read_text())["missing"].keys() == {"NY"}
    finally:
        local.start(["NY"])


def test_a_trader_gives_a_price_on_the_command_line(world: World) -> None:
    base = ("transfer", "propose", "--federation", str(world.federation.file), "--registry", "PA")
    move = ("--from", world.accounts["allegheny"], "--to", world.accounts["keystone"])
    done = regfed(*base, *move, "--quantity", "1", "--price", "250.5", "--wait", "30", "--json")
    assert done.returncode == 0, done.stderr
    transfer = json.loads(done.stdout)
    assert transfer["price"] == {"amount": "250.50", "currency": "USD"}
    readable = regfed(*base, *move, "--quantity", "1", "--price", "3", "--currency", "CAD")
    assert "price 3.00 CAD per unit" in readable.stdout, readable.stderr
    refused = regfed(*base, *move, "--quantity", "1", "--price", "2.505")
    assert refused.returncode == 2
    assert "INVALID_ARGUMENT" in refused.stderr and "what to do" in refused.stderr
