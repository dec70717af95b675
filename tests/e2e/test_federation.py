"""End to end: three real node processes over mutual TLS; traders act through their home node."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from federation_support import audit, fund, open_account, running_federation, statuses
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from regfed.certs.identity import Role
from regfed.gateway._generated.health.v1 import health_pb2, health_pb2_grpc
from regfed.gateway.transport import channel_credentials
from regfed.local import Federation, LocalFederation, RegistryClient, TransferFailed


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Federation, LocalFederation]]:
    folder = tmp_path_factory.mktemp("federation")
    with running_federation(folder, ["PA", "NY", "NJ"]) as running:
        yield running


@pytest.fixture(scope="module")
def accounts(fed: tuple[Federation, LocalFederation]) -> dict[str, str]:
    federation, _ = fed
    out = {code: open_account(federation, code, "trader1") for code in ("PA", "NY", "NJ")}
    out["PA2"] = open_account(federation, "PA", "trader1")
    fund(federation, "PA", out["PA"], 1_000)
    fund(federation, "NY", out["NY"], 500)
    return out


def client(federation: Federation, code: str, **kw: Any) -> RegistryClient:
    return RegistryClient(federation, code, **kw)


def held(federation: Federation, code: str, account: str) -> int:
    with client(federation, code) as c:
        return sum(
            b["end"] - b["start"] + 1 for b in c.holdings(account) if b.get("state") == "held"
        )


def test_interstate_both_ways_and_intrastate_settle(
    fed: tuple[Federation, LocalFederation], accounts: dict[str, str]
) -> None:
    federation, _ = fed
    with client(federation, "PA") as pa, client(federation, "NY") as ny:
        out = pa.propose(accounts["PA"], accounts["NY"], quantity=100)
        back = ny.propose(accounts["NY"], accounts["PA"], quantity=40)
        local = pa.propose(accounts["PA"], accounts["PA2"], quantity=10)
        assert local["side"] == "local" and local["settled"]
        for c, t in ((pa, out), (ny, back)):
            # The long poll is woken by the settling commit, not by its (90 s) deadline.
            began = time.monotonic()
            done = c.wait_settled(t["transfer_id"], 90)
            assert time.monotonic() - began < 60, "the settlement did not wake the long poll"
            assert (done["status"], done["settled"]) == ("completed", True), done
    for tid in (out["transfer_id"], back["transfer_id"]):
        sides = statuses(federation, tid)
        assert set(sides.values()) == {("completed", True)}, sides
    assert held(federation, "NY", accounts["NY"]) == 500 - 40 + 100
    assert audit(federation) == []


def test_a_proposal_can_wait_for_its_own_settlement(
    fed: tuple[Federation, LocalFederation], accounts: dict[str, str]
) -> None:
    federation, local = fed
    with client(federation, "PA") as pa:
        began = time.monotonic()
        t = pa.propose(accounts["PA"], accounts["NY"], quantity=2, request_id="wait-1", wait_s=90)
        assert time.monotonic() - began < 60, "the settlement did not wake the proposal"
        assert (t["status"], t["settled"]) == ("completed", True), t
        assert pa.get(t["transfer_id"]) == t  # the answer is what the node has recorded
        again = pa.propose(
            accounts["PA"], accounts["NY"], quantity=2, request_id="wait-1", wait_s=5
        )
        assert (again["transfer_id"], again["settled"]) == (t["transfer_id"], True)
    local.kill("NJ")  # nothing can settle: the wait ends at its deadline, as it stands
    try:
        with client(federation, "PA") as pa:
            began = time.monotonic()
            stuck = pa.propose(accounts["PA"], accounts["NJ"], quantity=1, wait_s=1.5)
            assert time.monotonic() - began >= 1.5
            assert (stuck["status"], stuck["settled"]) == ("proposed", False), stuck
            assert pa.cancel(stuck["transfer_id"])["status"] == "cancelled"
    finally:
        local.start(["NJ"])
    assert statuses(federation, t["transfer_id"]) == {
        "PA": ("completed", True),
        "NY": ("completed", True),
    }


def test_retry_with_the_same_request_id_moves_units_once(
    fed: tuple[Federation, LocalFederation], accounts: dict[str, str]
) -> None:
    federation, _ = fed
    before = held(federation, "PA", accounts["PA"])
    with client(federation, "PA") as pa:
        first = pa.propose(accounts["PA"], accounts["NJ"], quantity=7, request_id="retry-e2e")
        again = pa.propose(accounts["PA"], accounts["NJ"], quantity=7, request_id="retry-e2e")
        assert again["transfer_id"] == first["transfer_id"]
        with pytest.raises(TransferFailed) as refused:
            pa.propose(accounts["PA"], accounts["NJ"], quantity=8, request_id="retry-e2e")
        assert refused.value.code == "REQUEST_ID_CONFLICT"
        assert refused.value.status == "ALREADY_EXISTS"
        pa.wait_settled(first["transfer_id"], 30)
    assert held(federation, "PA", accounts["PA"]) == before - 7


def test_refusals_reach_the_trader_with_reasons(
    fed: tuple[Federation, LocalFederation], accounts: dict[str, str]
) -> None:
    federation, _ = fed
    with client(federation, "PA") as pa:
        broke = pa.propose(accounts["PA"], accounts["NY"], quantity=10**9)
        assert (broke["status"], broke["error_code"]) == ("rejected", "INSUFFICIENT_HOLDINGS")
        with pytest.raises(TransferFailed) as other:
            pa.holdings(accounts["NY"])
        assert other.value.code == "ACCOUNT_IN_OTHER_REGISTRY"
    with client(federation, "NY") as ny, pytest.raises(TransferFailed) as foreign:
        ny.propose(accounts["PA"], accounts["NY"], quantity=1)
    assert foreign.value.code == "ACCOUNT_IN_OTHER_REGISTRY"


def test_many_traders_race_for_the_same_blocks_across_two_destinations(
    fed: tuple[Federation, LocalFederation], accounts: dict[str, str]
) -> None:
    federation, _ = fed
    racer = open_account(federation, "PA", "trader1")
    fund(federation, "PA", racer, 50)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def race(index: int) -> None:
        to = accounts["NY"] if index % 2 else accounts["NJ"]
        with client(federation, "PA") as pa:
            t = pa.propose(racer, to, quantity=10)
            if not t["settled"]:
                t = pa.wait_settled(t["transfer_id"], 30)
        with lock:
            results.append(t)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    completed = [t for t in results if t["status"] == "completed"]
    rejected = [t for t in results if t["status"] == "rejected"]
    assert len(completed) == 5 and len(rejected) == 7, [t["status"] for t in results]
    assert {t["error_code"] for t in rejected} == {"INSUFFICIENT_HOLDINGS"}
    assert held(federation, "PA", racer) == 0
    assert audit(federation) == []


def test_cancel_before_commit_and_too_late_after(
    fed: tuple[Federation, LocalFederation], accounts: dict[str, str]
) -> None:
    federation, local = fed
    local.kill("NJ")  # the proposal cannot be accepted while NJ is down
    try:
        with client(federation, "PA") as pa:
            t = pa.propose(accounts["PA"], accounts["NJ"], quantity=3)
            cancelled = pa.cancel(t["transfer_id"])
            assert cancelled["status"] == "cancelled"
    finally:
        local.start(["NJ"])
    with client(federation, "PA") as pa:
        done = pa.wait_settled(t["transfer_id"], 30)
        assert (done["status"], done["settled"]) == ("cancelled", True)
        finished = pa.propose(accounts["PA"], accounts["NJ"], quantity=1)
        pa.wait_settled(finished["transfer_id"], 30)
        with pytest.raises(TransferFailed) as late:
            pa.cancel(finished["transfer_id"])
        assert late.value.code == "TOO_LATE"
    assert audit(federation) == []


def test_oversight_reads_but_cannot_write(
    fed: tuple[Federation, LocalFederation], accounts: dict[str, str]
) -> None:
    federation, _ = fed
    with client(federation, "PA", role=Role.OVERSIGHT) as epa:
        assert epa.holdings(accounts["PA"])
        with pytest.raises(TransferFailed) as write:
            epa.propose(accounts["PA"], accounts["NY"], quantity=1)
        assert (write.value.code, write.value.status) == ("READ_ONLY", "PERMISSION_DENIED")
    with client(federation, "PA", role=Role.REGISTRY) as node_cert:
        with pytest.raises(TransferFailed) as wrong:
            node_cert.holdings(accounts["PA"])
        assert wrong.value.code == "WRONG_ROLE"


def test_health_service_answers_for_the_node_and_its_apis(
    fed: tuple[Federation, LocalFederation],
) -> None:
    federation, _ = fed
    chain, key = federation.credential("PA", Role.TRADER)
    creds = channel_credentials(federation.ca.read_bytes(), chain.read_bytes(), key.read_bytes())
    with grpc.secure_channel(federation.endpoint("PA"), creds) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "regfed.peer.v1.Peer", "regfed.client.v1.Registry"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        unknown = stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
        assert unknown.status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def test_server_reflection_can_be_switched_on(tmp_path: Path) -> None:
    with running_federation(tmp_path, ["PA"], reflection=True) as (federation, _):
        chain, key = federation.credential("PA", Role.TRADER)
        creds = channel_credentials(
            federation.ca.read_bytes(), chain.read_bytes(), key.read_bytes()
        )
        with grpc.secure_channel(federation.endpoint("PA"), creds) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            [reply] = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in reply.list_services_response.service}
    assert {"regfed.peer.v1.Peer", "regfed.client.v1.Registry", "grpc.health.v1.Health"} <= names
