"""End to end: `regfed status` against real node processes: healthy, a transfer left in flight,
a node gone, a node that accepts connections and never answers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from federation_support import fund, open_account, running_federation

from regfed import __version__
from regfed.certs.identity import Role
from regfed.local import Federation, LocalFederation, RegistryClient, TransferFailed
from regfed.local.status import federation_status

Running = tuple[Federation, LocalFederation]


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_federation(tmp_path_factory.mktemp("status"), ["PA", "NY"]) as running:
        yield running


def status(
    federation: Federation, *args: str, expect: int | None = 0, env: bool = False
) -> subprocess.CompletedProcess[str]:
    """`regfed status`, the federation file given by --federation or (env) $REGFED_FEDERATION."""
    where = [] if env else ["--federation", str(federation.file)]
    environment = {**os.environ, "REGFED_FEDERATION": str(federation.file)} if env else None
    result = subprocess.run(
        [sys.executable, "-m", "regfed.cli", "status", *where, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
    )
    assert expect is None or result.returncode == expect, (result.stdout, result.stderr)
    return result


def status_json(federation: Federation, *args: str, expect: int | None = 0) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(status(federation, "--json", *args, expect=expect).stdout)
    return report


def nodes(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["registry"]: n for n in report["nodes"]}


def test_a_healthy_federation_reports_every_node_serving(fed: Running) -> None:
    federation, _ = fed
    pa, ny = open_account(federation, "PA", "trader1"), open_account(federation, "NY", "trader1")
    fund(federation, "PA", pa, 50)
    with RegistryClient(federation, "PA") as client:
        done = client.propose(pa, ny, quantity=5, wait_s=30)
    assert (done["status"], done["settled"]) == ("completed", True), done
    for role in ("oversight", "admin"):
        report = status_json(federation, "--as", role)
        assert report["ok"] is True and report["warnings"] == [], report
        by_code = nodes(report)
        assert list(by_code) == ["PA", "NY"]
        for code, node in by_code.items():
            assert node["health"] == "SERVING", node
            assert node["version"] == __version__
            assert node["endpoint"] == federation.endpoint(code)
            assert (node["in_flight"], node["transfers"]) == (0, [])
            assert node["oldest_in_flight_seconds"] is None
            assert node["uptime_seconds"] > 0
    # For people: a table naming every registry; the federation file from the environment.
    table = status(federation, env=True)
    assert "PA" in table.stdout and "NY" in table.stdout and "SERVING" in table.stdout
    assert "2 of 2 nodes serving" in table.stdout and table.stderr == ""


def test_who_may_ask_a_node_for_its_status(fed: Running) -> None:
    federation, _ = fed
    for role in (Role.OVERSIGHT, Role.ADMINISTRATOR, Role.REGISTRY):
        with RegistryClient(federation, "PA", role) as client:
            assert client.status()["registry"] == "PA"
    with (
        RegistryClient(federation, "PA", Role.TRADER) as trader,
        pytest.raises(TransferFailed) as refused,
    ):
        trader.status()
    assert (refused.value.status, refused.value.code) == ("PERMISSION_DENIED", "WRONG_ROLE")


def test_a_transfer_left_in_flight_and_a_node_gone(fed: Running) -> None:
    federation, local = fed
    pa, ny = open_account(federation, "PA", "trader1"), open_account(federation, "NY", "trader1")
    fund(federation, "PA", pa, 50)
    local.kill("NY")
    try:
        with RegistryClient(federation, "PA") as client:
            proposed = client.propose(pa, ny, quantity=7)
        assert (proposed["status"], proposed["settled"]) == ("proposed", False)
        time.sleep(1.1)
        began = time.monotonic()
        report = status_json(federation, expect=1)
        assert time.monotonic() - began < 30
        assert report["ok"] is False
        by_code = nodes(report)
        assert by_code["NY"]["health"] == "UNREACHABLE" and not by_code["NY"]["ok"]
        assert by_code["NY"]["in_flight"] is None
        here = by_code["PA"]
        assert here["ok"] and here["health"] == "SERVING" and here["in_flight"] == 1
        [flight] = here["transfers"]
        assert (flight["transfer_id"], flight["side"], flight["status"], flight["peer"]) == (
            proposed["transfer_id"],
            "source",
            "proposed",
            "NY",
        )
        assert flight["quantity"] == 7
        assert flight["age_seconds"] >= 1.0
        assert here["oldest_in_flight_seconds"] == flight["age_seconds"]
        [warning] = report["warnings"]
        assert warning.startswith("NY is UNREACHABLE") and "log" in warning
        # For people: the table shows the transfer and the node; a warning says what to do.
        readable = status(federation, expect=1)
        assert proposed["transfer_id"] in readable.stdout
        assert "UNREACHABLE" in readable.stdout and "1 of 2 nodes serving" in readable.stdout
        [line] = readable.stderr.splitlines()
        assert line.startswith("warning: NY is UNREACHABLE")
        assert str(federation.folder / "NY" / "node.log") in line and "restart" in line
    finally:
        local.start(["NY"])
    with RegistryClient(federation, "PA") as client:
        settled = client.wait_settled(proposed["transfer_id"], 60)
    assert (settled["status"], settled["settled"]) == ("completed", True)
    deadline = time.monotonic() + 30
    while True:  # the destination settles once the source's commit reaches it
        report = status_json(federation, expect=None)
        if (report["ok"] and report["in_flight"] == 0) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert report["ok"] and report["in_flight"] == 0, report


def test_a_node_that_never_answers_costs_one_deadline(fed: Running) -> None:
    federation, local = fed
    host, port = federation.endpoint("NY").rsplit(":", 1)
    local.kill("NY")
    try:
        # The kernel completes the TCP handshake for a listening socket; nothing answers TLS.
        with socket.socket() as silent:
            silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            silent.bind((host, int(port)))
            silent.listen(8)
            began = time.monotonic()
            report = federation_status(federation, timeout=1.0)
            took = time.monotonic() - began
    finally:
        local.start(["NY"])
    assert took < 5, took
    by_code = nodes(report)
    assert by_code["NY"]["health"] == "UNREACHABLE", by_code["NY"]
    assert by_code["NY"]["error"]["status"] == "DEADLINE_EXCEEDED"
    assert by_code["PA"]["ok"] and not report["ok"]
