"""Oversight queries over the network: real registry nodes, the real oversight node, mTLS.

A small federation with issuance, allocation, intrastate and interstate transfers, a retirement,
emissions with a deduction (one source short), and one transfer stuck in flight because its
destination is down. The oversight node's supply, compliance, flows and in-transit figures are
checked against what the test did; with a node stopped, every answer names it as missing and
the CLI exits 1. Every write any registry node's API offers is refused to the oversight
certificate and changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from credit_support import issue_credits
from federation_support import digest, fund, open_account, registry, running_federation

from regfed.certs.identity import Role
from regfed.gateway._generated.client.v1 import client_pb2, client_pb2_grpc
from regfed.gateway._generated.peer.v1 import peer_pb2, peer_pb2_grpc
from regfed.gateway._generated.query.v1 import query_pb2, query_pb2_grpc
from regfed.gateway.transport import CODE_KEY, channel_credentials
from regfed.local import Federation, LocalFederation, RegistryClient, TransferFailed
from regfed.local.oversight import OversightClient
from regfed.node import DeductCompliance, RecordEmissions, Retire, Selection
from regfed.node.domain.actors import Actor

pytestmark = pytest.mark.e2e


class Scene:
    """What the test did, kept by hand: the expected figures."""

    def __init__(self, federation: Federation, local: LocalFederation) -> None:
        self.federation = federation
        self.local = local
        self.accounts: dict[str, str] = {}


def _admin_op(
    federation: Federation, code: str, command: Any, method: str, person: str | None = None
) -> dict[str, Any]:
    reg = registry(federation, code)
    try:
        actor = Actor.person(person) if person else reg.ledger.administrator
        result = getattr(reg.ledger, method)(command, actor)
        return dict(result.detail)
    finally:
        reg.close()


def _op() -> str:
    return f"op-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    folder = tmp_path_factory.mktemp("oversight-queries")
    with running_federation(folder, ["PA", "NY", "NJ"]) as (federation, local):
        s = Scene(federation, local)
        a = s.accounts
        a["PA-c"] = open_account(federation, "PA", "trader1", kind="compliance")
        a["PA-g"] = open_account(federation, "PA", "trader1")
        a["NY-c"] = open_account(federation, "NY", "trader1", kind="compliance")
        a["NJ-g"] = open_account(federation, "NJ", "trader1")
        # PA issues 1,000 ARP 2020 (600 to its source), NY 500 (300 to its source).
        fund(federation, "PA", a["PA-c"], 600, program="ARP", vintage=2020, issue=1_000)
        fund(federation, "NY", a["NY-c"], 300, program="ARP", vintage=2020, issue=500)
        with RegistryClient(federation, "PA") as pa:
            pa.propose(a["PA-c"], a["PA-g"], quantity=50, wait_s=30)  # intrastate
            t = pa.propose(a["PA-c"], a["NY-c"], quantity=100, wait_s=30)
            assert pa.wait_settled(t["transfer_id"], 30)["settled"]
            t = pa.propose(a["PA-c"], a["NJ-g"], quantity=30, wait_s=30)
            assert pa.wait_settled(t["transfer_id"], 30)["settled"]
        with RegistryClient(federation, "NY") as ny:
            t = ny.propose(a["NY-c"], a["NJ-g"], quantity=20, wait_s=30)
            assert ny.wait_settled(t["transfer_id"], 30)["settled"]
        _admin_op(
            federation,
            "PA",
            Retire(
                operation_id=_op(),
                from_account=a["PA-g"],
                selection=Selection(quantity=10, program="ARP"),
            ),
            "retire",
            person="trader1",
        )
        for code, tons in (("PA", 250), ("NY", 1_000)):
            _admin_op(
                federation,
                code,
                RecordEmissions(
                    operation_id=_op(),
                    account=a[f"{code}-c"],
                    program="ARP",
                    period="2020",
                    tons=tons,
                ),
                "record_emissions",
            )
            _admin_op(
                federation,
                code,
                DeductCompliance(operation_id=_op(), program="ARP", period="2020"),
                "deduct_compliance",
            )
        # Credits: PA issues 120 ERCs (CPPR), NJ 15 offsets (RGGI), each to a sponsor's own
        # general account (the other tests move allowances from PA-g and NJ-g).
        for code, category, program, quantity in (
            ("PA", "renewable-generation", "CPPR", 120),
            ("NJ", "landfill-methane", "RGGI", 15),
        ):
            a[f"{code}-s"] = open_account(federation, code, "sponsor1")
            reg = registry(federation, code)
            try:
                issue_credits(reg, a[f"{code}-s"], category, program, quantity)
            finally:
                reg.close()
        yield s


def ask(federation: Federation, view: str, **kw: Any) -> Any:
    with OversightClient(federation, timeout=60.0) as client:
        return client.query(view, **kw)


def test_supply_accounts_for_every_unit_on_one_row(scene: Scene) -> None:
    answer = ask(scene.federation, "supply", filters={"program": ["ARP"]})
    assert (answer.missing, answer.registries) == ({}, ["NJ", "NY", "PA"])
    rows = answer.rows
    by_key = {(r["issuer"], r["registry"], r["account_type"]): r for r in rows}
    # issued once, on the allocation (state) account's row of the issuing registry
    assert by_key[("PA", "PA", "state")]["issued"] == 1_000
    assert by_key[("NY", "NY", "state")]["issued"] == 500
    assert sum(r["issued"] for r in rows) == 1_500
    # PA's source: 600 - 50 intrastate - 100 NY - 30 NJ = 420 held, then 250 surrendered
    assert by_key[("PA", "PA", "compliance")]["held"] == 420 - 250
    assert by_key[("PA", "PA", "compliance")]["surrendered"] == 250
    # PA's general account: 50 in, 10 retired
    general = by_key[("PA", "PA", "general")]
    assert (general["held"], general["retired"], general["escrowed"]) == (40, 10, 0)
    # NY's source held 300 NY + 100 PA and sent 20
    ny_rows = [r for r in rows if r["registry"] == "NY" and r["account_type"] == "compliance"]
    assert sum(r["held"] + r["surrendered"] for r in ny_rows) == 300 + 100 - 20
    assert sum(r["surrendered"] for r in ny_rows) == 300 + 100 - 20  # all of it: short
    nj = [r for r in rows if r["registry"] == "NJ"]
    assert sum(r["held"] for r in nj) == 30 + 20
    # conservation, per issuer: everything issued is somewhere, exactly once
    for issuer in ("PA", "NY"):
        mine = [r for r in rows if r["issuer"] == issuer]
        where = sum(
            r[c] for r in mine for c in ("held", "escrowed", "in_transit", "surrendered", "retired")
        )
        assert where == sum(r["issued"] for r in mine), issuer


def test_supply_by_sums_rows_to_the_keys_asked(scene: Scene) -> None:
    whole = ask(scene.federation, "supply", filters={"program": ["ARP"]})
    by = ask(scene.federation, "supply", filters={"program": ["ARP"]}, by=["issuer", "vintage"])
    assert [(r["issuer"], r["vintage"]) for r in by.rows] == [("NY", 2020), ("PA", 2020)]
    assert set(by.rows[0]) == {
        "issuer",
        "vintage",
        "issued",
        "held",
        "escrowed",
        "in_transit",
        "surrendered",
        "retired",
    }
    for column in ("issued", "held", "escrowed", "in_transit", "surrendered", "retired"):
        assert sum(r[column] for r in by.rows) == sum(r[column] for r in whole.rows), column
    only = ask(scene.federation, "supply", filters={"registry": ["NJ"], "vintage": ["2019-2021"]})
    assert {r["registry"] for r in only.rows} == {"NJ"}
    none = ask(scene.federation, "supply", filters={"vintage": ["1990-1999"]})
    assert none.rows == []


def test_compliance_per_source_and_period(scene: Scene) -> None:
    answer = ask(scene.federation, "compliance", filters={"period": ["2020"]})
    rows = {r["registry"]: r for r in answer.rows}
    assert set(rows) == {"PA", "NY"}
    pa, ny = rows["PA"], rows["NY"]
    assert (pa["emissions"], pa["obligation"], pa["surrendered"], pa["shortfall"]) == (
        250,
        250,
        250,
        0,
    )
    assert (ny["emissions"], ny["surrendered"], ny["shortfall"]) == (1_000, 380, 620)
    by = ask(scene.federation, "compliance", filters={"period": ["2019-2021"]}, by=["period"])
    assert by.rows == [
        {
            "period": "2020",
            "emissions": 1_250,
            "obligation": 1_250,
            "surrendered": 630,
            "shortfall": 620,
        }
    ]


def test_flows_between_each_pair(scene: Scene) -> None:
    year = str(datetime.now(UTC).year)
    flows = ask(scene.federation, "flows", filters={"year": [year]})
    pairs = {
        (r["from_registry"], r["to_registry"]): (r["transfers"], r["units"]) for r in flows.rows
    }
    # committed interstate transfers only: the intrastate one is not a flow
    assert pairs == {("PA", "NY"): (1, 100), ("PA", "NJ"): (1, 30), ("NY", "NJ"): (1, 20)}
    assert ask(scene.federation, "flows", filters={"year": ["1999"]}).rows == []
    assert ask(scene.federation, "in_transit").rows == []


def test_credits_by_type_and_jurisdiction(scene: Scene) -> None:
    answer = ask(scene.federation, "credits", by=["unit_type", "issuer", "category"])
    assert (answer.missing, answer.registries) == ({}, ["NJ", "NY", "PA"])
    assert answer.rows == [
        {"unit_type": "erc", "issuer": "PA", "category": "renewable-generation",
         "issued": 120, "held": 120, "escrowed": 0, "in_transit": 0, "surrendered": 0,
         "retired": 0},
        {"unit_type": "offset", "issuer": "NJ", "category": "landfill-methane",
         "issued": 15, "held": 15, "escrowed": 0, "in_transit": 0, "surrendered": 0,
         "retired": 0},
    ]  # fmt: skip
    offsets = ask(scene.federation, "credits", filters={"unit_type": ["offset"]}, by=["registry"])
    assert [(r["registry"], r["held"]) for r in offsets.rows] == [("NJ", 15)]


def test_bank_is_supply_outside_state_accounts(scene: Scene) -> None:
    bank = ask(scene.federation, "bank", by=["registry", "account_type"])
    assert bank.missing == {}
    banked = {(r["registry"], r["account_type"]): r["banked"] for r in bank.rows}
    # PA: its source 170 held, its general account 40 allowances and 120 ERCs; NY's source
    # surrendered everything; NJ's general account 30 + 20 allowances and 15 offsets
    assert banked == {("PA", "compliance"): 170, ("PA", "general"): 160, ("NJ", "general"): 65}
    supply = ask(scene.federation, "supply")
    outside = sum(
        r["held"] + r["escrowed"] + r["in_transit"]
        for r in supply.rows
        if r["account_type"] != "state"
    )
    assert sum(banked.values()) == outside
    done = _cli(scene.federation, "bank", "--unit-type", "erc,offset", "--by", "issuer", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "rows": [
            {"issuer": "NJ", "banked": 15, "held": 15, "escrowed": 0, "in_transit": 0},
            {"issuer": "PA", "banked": 120, "held": 120, "escrowed": 0, "in_transit": 0},
        ],
        "missing": [],
    }
    people = _cli(scene.federation, "credits", "--by", "unit_type")
    assert people.returncode == 0 and "total" in people.stdout and "offset" in people.stdout


def _cli(federation: Federation, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "regfed.cli",
            "oversight",
            *args,
            "--federation",
            str(federation.file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_tables_json_and_a_stopped_node_named_missing(scene: Scene) -> None:
    federation, local = scene.federation, scene.local
    done = _cli(federation, "supply", "--by", "issuer,vintage", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["missing"] == []
    assert {r["issuer"]: r["issued"] for r in document["rows"] if r["vintage"] == 2020} == {
        "NY": 500,
        "PA": 1_000,
    }
    people = _cli(federation, "compliance", "--period", "2020")
    assert people.returncode == 0 and "shortfall" in people.stdout and "total" in people.stdout
    flows = _cli(federation, "flows", "--json")
    net = {r["registry"]: r["net"] for r in json.loads(flows.stdout)["net"]}
    assert net == {"PA": -130, "NY": 80, "NJ": 50}
    bad = _cli(federation, "supply", "--by", "colour")
    assert bad.returncode == 2 and "no key 'colour'" in bad.stderr
    local.kill("NY")
    try:
        for view in ("supply", "compliance", "flows", "in-transit", "credits", "bank"):
            partial = _cli(federation, view, "--json")
            assert partial.returncode == 1, (view, partial.stderr)
            missing = json.loads(partial.stdout)["missing"]
            assert [m["registry"] for m in missing] == ["NY"], view
            assert "UNREACHABLE" in missing[0]["reason"] or "UNAVAILABLE" in missing[0]["reason"]
        warned = _cli(federation, "supply")
        assert warned.returncode == 1
        assert "warning: NY is MISSING" in warned.stderr
        answer = ask(federation, "supply", by=["registry"])
        assert {r["registry"] for r in answer.rows} <= {"PA", "NJ"}
        assert answer.registries == ["NJ", "PA"] and list(answer.missing) == ["NY"]
    finally:
        local.start(["NY"])


def test_query_refusals(scene: Scene) -> None:
    federation = scene.federation
    with (
        OversightClient(federation, Role.TRADER, "PA") as trader,
        pytest.raises(TransferFailed) as refused,
    ):
        trader.query("supply")
    assert refused.value.code == "WRONG_ROLE"
    with OversightClient(federation, Role.ADMINISTRATOR, "PA") as admin:
        assert admin.query("supply", by=["issuer"]).rows
    # A registry node answers its own rows to the oversight certificate only.
    chain, key = federation.credential("PA", Role.ADMINISTRATOR)
    creds = channel_credentials(federation.ca.read_bytes(), chain.read_bytes(), key.read_bytes())
    with grpc.secure_channel(federation.endpoint("NY"), creds) as channel:
        stub = query_pb2_grpc.RegistryQueryStub(channel)
        with pytest.raises(grpc.RpcError) as wrong:
            list(stub.Query(query_pb2.QueryRequest(view="supply"), timeout=10))
        assert dict(wrong.value.trailing_metadata())[CODE_KEY] == "WRONG_ROLE"
    with OversightClient(federation) as epa:
        for view, filters in (
            ("colour", {}),
            ("supply", {"colour": ["red"]}),
            ("supply", {"vintage": ["20x0"]}),
        ):
            with pytest.raises(Exception) as invalid:
                epa.query(view, filters)
            assert getattr(invalid.value, "code", "") == "INVALID_ARGUMENT"


# -- the oversight certificate reads every registry node but writes nothing --------------------

#: Every method of every service a registry node serves, as what it does. A new method fails
#: this test until it is classified (and, if it writes, tested below).
NODE_METHODS = {
    "regfed.client.v1.Registry": {
        "ListHoldings": "read",
        "GetTransfer": "read",
        "GetReceipts": "read",
        "GetStatus": "read",
        "ProposeTransfer": "write",
        "CancelTransfer": "write",
    },
    "regfed.peer.v1.Peer": {"Exchange": "write", "Status": "write"},
    "regfed.reconciliation.v1.Reconciliation": {"Snapshot": "read", "Journal": "read"},
    "regfed.query.v1.RegistryQuery": {"Query": "read"},
    "regfed.report.v1.PublicRecords": {"Records": "read"},
    "grpc.health.v1.Health": {"Check": "read", "Watch": "read"},
}


def test_every_node_method_is_classified() -> None:
    from regfed.gateway._generated.client.v1 import client_pb2 as c
    from regfed.gateway._generated.health.v1 import health_pb2 as h
    from regfed.gateway._generated.query.v1 import query_pb2 as q
    from regfed.gateway._generated.reconciliation.v1 import reconciliation_pb2 as r
    from regfed.gateway._generated.report.v1 import report_pb2 as rp

    served = {}
    for module, name in (
        (c, "Registry"),
        (peer_pb2, "Peer"),
        (r, "Reconciliation"),
        (q, "RegistryQuery"),
        (rp, "PublicRecords"),
        (h, "Health"),
    ):
        service = module.DESCRIPTOR.services_by_name[name]
        served[service.full_name] = {m.name for m in service.methods}
    assert served == {k: set(v) for k, v in NODE_METHODS.items()}


def test_oversight_certificate_cannot_write_at_any_node(scene: Scene) -> None:
    federation = scene.federation
    a = scene.accounts
    chain, key = federation.credential("PA", Role.OVERSIGHT)
    creds = channel_credentials(federation.ca.read_bytes(), chain.read_bytes(), key.read_bytes())
    before = {code: digest(federation, code) for code in ("PA", "NY")}
    with grpc.secure_channel(federation.endpoint("PA"), creds) as channel:
        registry_stub = client_pb2_grpc.RegistryStub(channel)
        peer_stub = peer_pb2_grpc.PeerStub(channel)
        attempts: dict[str, Callable[[], Any]] = {
            "ProposeTransfer": lambda: registry_stub.ProposeTransfer(
                client_pb2.ProposeTransferRequest(
                    from_account=a["PA-g"], to_account=a["NY-c"], quantity=1, request_id="epa-1"
                ),
                timeout=10,
            ),
            "CancelTransfer": lambda: registry_stub.CancelTransfer(
                client_pb2.CancelTransferRequest(transfer_id="t-" + "0" * 32),
                timeout=10,
            ),
            "Exchange": lambda: peer_stub.Exchange(
                peer_pb2.Envelope(payload=b"{}", signature=b"x" * 64, key_id="epa"), timeout=10
            ),
            "Status": lambda: peer_stub.Status(
                peer_pb2.Envelope(payload=b"{}", signature=b"x" * 64, key_id="epa"), timeout=10
            ),
        }
        writes = {m for v in NODE_METHODS.values() for m, kind in v.items() if kind == "write"}
        assert set(attempts) == writes
        for method, attempt in attempts.items():
            with pytest.raises(grpc.RpcError) as refused:
                attempt()
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
            code = dict(refused.value.trailing_metadata())[CODE_KEY]
            assert code in ("READ_ONLY", "WRONG_ROLE"), (method, code)
        # and its reads are answered
        holdings = registry_stub.ListHoldings(
            client_pb2.ListHoldingsRequest(account=a["PA-g"]), timeout=10
        )
        assert holdings.blocks
    assert {code: digest(federation, code) for code in ("PA", "NY")} == before


def test_reconciliation_runs_and_their_discrepancies(scene: Scene) -> None:
    with OversightClient(scene.federation, timeout=60.0) as epa:
        run = epa.reconcile()
    assert run["status"] == "completed"
    listed = _cli(scene.federation, "reconciliation", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["rows"]
    assert rows[0]["run_id"] == run["run_id"] and rows[0]["status"] == "completed"
    assert (rows[0]["registries"], rows[0]["discrepancies"]) == (3, 0)
    one = _cli(scene.federation, "reconciliation", "--run", "latest")
    assert one.returncode == 0 and "no discrepancies" in one.stdout


def test_a_transfer_in_flight_is_escrowed_then_in_transit_on_the_source_row(scene: Scene) -> None:
    """Last in this module: NJ goes down with a transfer to it in flight, then comes back."""
    federation, local, a = scene.federation, scene.local, scene.accounts
    local.kill("NJ")
    try:
        with RegistryClient(federation, "PA") as pa:
            stuck = pa.propose(a["PA-g"], a["NJ-g"], quantity=7)
        only = {"registry": ["PA"], "program": ["ARP"]}  # PA's ERCs are in a general account
        supply = ask(federation, "supply", filters=only, by=["account_type"])
        assert list(supply.missing) == ["NJ"]  # NJ is down: named, even with a filter on PA
        general = {r["account_type"]: r for r in supply.rows}["general"]
        assert (general["held"], general["escrowed"]) == (33, 7)
        bank = ask(federation, "bank", filters=only, by=["account_type"])
        assert list(bank.missing) == ["NJ"]
        general = {r["account_type"]: r for r in bank.rows}["general"]
        assert (general["banked"], general["held"], general["escrowed"]) == (40, 33, 7)
        moving = ask(federation, "in_transit")
        rows = [r for r in moving.rows if r["transfer_id"] == stuck["transfer_id"]]
        assert len(rows) == 1
        row = rows[0]
        assert (row["from_registry"], row["to_registry"], row["quantity"]) == ("PA", "NJ", 7)
        assert row["source_status"] == "proposed" and row["destination_status"] == ""
        assert row["age_seconds"] >= 0
    finally:
        local.start(["NJ"])
    with RegistryClient(federation, "PA") as pa:
        assert pa.wait_settled(stuck["transfer_id"], 60)["settled"]
    deadline = time.monotonic() + 30
    while ask(federation, "in_transit").rows and time.monotonic() < deadline:
        time.sleep(0.3)
    assert ask(federation, "in_transit").rows == []
    after = ask(federation, "supply", filters={"program": ["ARP"]}, by=["registry"])
    assert after.missing == {}
    held = {r["registry"]: r["held"] for r in after.rows}
    assert held["NJ"] == 30 + 20 + 7
