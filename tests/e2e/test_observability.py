"""End to end: real node processes log JSON lines naming each transfer and serve Prometheus
metrics on loopback that count what they did; the gRPC port still speaks mutual TLS only."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from federation_support import fund, open_account, running_federation, statuses
from prometheus_client.parser import text_string_to_metric_families

from regfed.gateway._generated.health.v1 import health_pb2, health_pb2_grpc
from regfed.local import Federation, LocalFederation, RegistryClient
from regfed.local.processes import node_log

Fed = tuple[Federation, LocalFederation]
LOG_KEYS = {"ts", "level", "logger", "registry", "message"}


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    folder = tmp_path_factory.mktemp("observed")
    with running_federation(folder, ["PA", "NY"], log_format="json") as running:
        yield running


@pytest.fixture(scope="module")
def transfers(fed: Fed) -> dict[str, Any]:
    """Three PA -> NY transfers and one back, all completed; one refused at PA."""
    federation, _ = fed
    pa_account = open_account(federation, "PA", "trader1")
    ny_account = open_account(federation, "NY", "trader1")
    fund(federation, "PA", pa_account, 100)
    fund(federation, "NY", ny_account, 100)
    done: list[str] = []
    with RegistryClient(federation, "PA") as pa, RegistryClient(federation, "NY") as ny:
        for _ in range(3):
            t = pa.propose(pa_account, ny_account, quantity=5, wait_s=60)
            assert (t["status"], t["settled"]) == ("completed", True), t
            done.append(t["transfer_id"])
        back = ny.propose(ny_account, pa_account, quantity=2, wait_s=60)
        assert back["status"] == "completed", back
        broke = pa.propose(pa_account, ny_account, quantity=10**6)
        assert broke["status"] == "rejected", broke
    for tid in done:
        assert set(statuses(federation, tid).values()) == {("completed", True)}
    return {"out": done, "back": back["transfer_id"], "rejected": broke["transfer_id"]}


def get(url: str, method: str = "GET") -> tuple[int, str, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.headers.get("Content-Type", ""), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def scrape(federation: Federation, code: str) -> dict[tuple[str, frozenset[Any]], float]:
    """Every sample of the node's metrics, by (name, labels)."""
    status, _, text = get(f"http://{federation.metrics(code)}/metrics")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def log_lines(federation: Federation, code: str) -> list[dict[str, Any]]:
    """The node's stderr log: every line must be one JSON object with the common keys."""
    lines = []
    for raw in node_log(federation, code).read_text().splitlines():
        line = json.loads(raw)  # a line that is not JSON fails the test here
        assert isinstance(line, dict) and line.keys() >= LOG_KEYS, raw
        assert line["registry"] == code, raw
        lines.append(line)
    return lines


def test_metrics_count_transfers_on_both_sides_and_nothing_stays_in_flight(
    fed: Fed, transfers: dict[str, Any]
) -> None:
    federation, _ = fed
    deadline = time.monotonic() + 30
    while True:  # the source settles when the credit's acknowledgement arrives
        pa, ny = scrape(federation, "PA"), scrape(federation, "NY")
        in_flight = [
            sample(s, "regfed_transfers_in_flight", side=side)
            for s in (pa, ny)
            for side in ("source", "destination")
        ]
        if in_flight == [0, 0, 0, 0] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert in_flight == [0, 0, 0, 0]
    assert sample(pa, "regfed_transfers_oldest_in_flight_age_seconds", side="source") == 0
    total = "regfed_transfers_total"
    assert sample(pa, total, side="source", status="completed") >= 3
    assert sample(ny, total, side="destination", status="completed") >= 3
    assert sample(ny, total, side="source", status="completed") >= 1
    assert sample(pa, total, side="destination", status="completed") >= 1
    assert sample(pa, total, side="source", status="rejected") >= 1
    assert sample(pa, "regfed_transfers_started_total", side="source") >= 4
    assert sample(pa, "regfed_transfers_settled_total", side="source") >= 4
    # Every peer call and every client call is timed, by method and outcome.
    exchanges = sample(
        ny, "regfed_rpc_duration_seconds_count", service="peer", method="Exchange", code="OK"
    )
    assert exchanges >= 3 * 2  # a proposal and a commit for each of PA's transfers
    proposals = sample(
        pa,
        "regfed_rpc_duration_seconds_count",
        service="client",
        method="ProposeTransfer",
        code="OK",
    )
    assert proposals >= 4
    assert sample(pa, "regfed_directory_version") >= 1


def test_every_log_line_is_json_and_names_its_transfer(fed: Fed, transfers: dict[str, Any]) -> None:
    federation, _ = fed
    tid = transfers["out"][0]
    expected = {"PA": {"proposed", "completed"}, "NY": {"accepted", "completed"}}
    for code, wanted in expected.items():
        deadline = time.monotonic() + 10
        while True:
            lines = log_lines(federation, code)
            about = [line for line in lines if line.get("transfer_id") == tid]
            if {line.get("status") for line in about} >= wanted or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert {line.get("status") for line in about} >= wanted, about
        # Every status change is a line with its transfer's id; every line names a transfer
        # only by a real one.
        changes = [line for line in lines if line["logger"] == "regfed.transfers"]
        assert changes and all(line.get("transfer_id") for line in changes)
        assert all(line["level"] == "INFO" for line in changes)
        assert all(line["ts"].endswith("Z") for line in lines)
    settled = [
        line
        for line in log_lines(federation, "PA")
        if line.get("transfer_id") == tid and line.get("settled")
    ]
    assert [line["status"] for line in settled] == ["completed"]  # settled once, said once
    rejected = [
        line
        for line in log_lines(federation, "PA")
        if line.get("transfer_id") == transfers["rejected"]
    ]
    assert [line["status"] for line in rejected] == ["rejected"]


def test_the_grpc_port_refuses_plaintext(fed: Fed) -> None:
    federation, _ = fed
    with grpc.insecure_channel(federation.endpoint("PA")) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN)
    time.sleep(0.5)
    log_lines(federation, "PA")  # whatever the refused handshake logged is JSON too


def _listening(port: int) -> list[str]:
    """Addresses (hex, as /proc/net shows them) listening on ``port``, IPv4 and IPv6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found


def test_the_metrics_port_serves_only_metrics_and_only_on_loopback(fed: Fed) -> None:
    federation, _ = fed
    listen = federation.metrics("PA")
    assert listen is not None
    host, port = listen.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert _listening(int(port)) == ["0100007F"]  # 127.0.0.1, and nothing else
    status, content_type, body = get(f"http://{listen}/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    assert "regfed_transfers_total" in body
    assert get(f"http://{listen}/")[0] == 404
    assert get(f"http://{listen}/anything")[0] == 404
    assert get(f"http://{listen}/metrics", method="POST")[0] == 405
    assert federation.node_config("PA").metrics_listen == listen
