"""The crash matrix with real processes, generated from the core's list of durable effects.

For every durable effect and every crash phase (after the receive that triggers it but before
the persist, inside the open database transaction, after the commit but before the send), the
node performing it kills itself with SIGKILL at exactly that point; it is restarted; the
transfer settles to a state both nodes agree on; no unit is in two registries, none is lost.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from federation_support import audit, fund, open_account, running_federation, statuses

from regfed.gateway.crash import ARM, POINT
from regfed.gateway.protocol.durable import CRASH_PHASES, DURABLE_EFFECTS
from regfed.local import Federation, LocalFederation, RegistryClient, TransferFailed
from regfed.node.domain.account_numbers import AccountNumber

HOLD_SECONDS = 6.0
#: (durable effect, path that reaches it, node that performs it, final status)
PATHS = [
    ("source-escrow", "commit", "PA", "completed"),
    ("destination-accept", "commit", "NY", "completed"),
    ("source-commit", "commit", "PA", "completed"),
    ("destination-credit", "commit", "NY", "completed"),
    ("source-settle", "commit", "PA", "completed"),
    ("destination-reject", "rejection", "NY", "rejected"),
    ("source-release", "rejection", "PA", "rejected"),
    ("source-void", "cancellation", "PA", "cancelled"),
    ("source-void", "hold-expiry", "PA", "cancelled"),
    ("destination-void", "cancellation", "NY", "cancelled"),
]
_requests = itertools.count(1)


def test_every_durable_effect_is_in_the_matrix() -> None:
    assert {effect for effect, *_ in PATHS} == set(DURABLE_EFFECTS)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Federation, LocalFederation]]:
    folder = tmp_path_factory.mktemp("crash")
    with running_federation(folder, ["PA", "NY"], hold_seconds=HOLD_SECONDS) as running:
        yield running


@pytest.fixture(scope="module")
def accounts(fed: tuple[Federation, LocalFederation]) -> dict[str, str]:
    federation, _ = fed
    pa = open_account(federation, "PA", "trader1")
    fund(federation, "PA", pa, 10_000)
    return {"PA": pa, "NY": open_account(federation, "NY", "trader1")}


def armed(effect: str, phase: str) -> dict[str, str]:
    return {ARM: "1", POINT: f"{effect}:{phase}"}


def propose(
    federation: Federation, accounts: dict[str, str], to: str, request_id: str
) -> dict[str, Any] | None:
    """The proposal, or None when the home node died answering it."""
    with RegistryClient(federation, "PA", timeout=10) as client:
        try:
            return client.propose(accounts["PA"], to, quantity=3, request_id=request_id)
        except TransferFailed as error:
            assert error.status == "UNAVAILABLE", error
            return None


def cancel(federation: Federation, transfer_id: str) -> bool:
    with RegistryClient(federation, "PA", timeout=10) as client:
        try:
            client.cancel(transfer_id)
            return True
        except TransferFailed as error:
            assert error.status == "UNAVAILABLE", error
            return False


def died(local: LocalFederation, code: str, timeout: float = 30.0) -> None:
    status = local.wait_exit(code, timeout)
    assert status == -9, f"node {code} should have crashed (SIGKILL), exit status {status}"


@pytest.mark.parametrize("phase", CRASH_PHASES)
@pytest.mark.parametrize(("effect", "path", "node", "final"), PATHS)
def test_crash_and_restart_settles_and_agrees(
    fed: tuple[Federation, LocalFederation],
    accounts: dict[str, str],
    effect: str,
    path: str,
    node: str,
    final: str,
    phase: str,
) -> None:
    federation, local = fed
    request_id = f"crash-{next(_requests)}"
    to = accounts["NY"]
    if path == "rejection":
        to = str(AccountNumber.make("NY", 9_000 + next(_requests)))
    if path in {"commit", "rejection"}:
        local.restart(node, env=armed(effect, phase))
        proposal = propose(federation, accounts, to, request_id)
        died(local, node)
        local.start([node])
        # A trader whose call failed retries with the same request id: never moved twice.
        proposal = proposal or propose(federation, accounts, to, request_id)
        assert proposal is not None
    else:
        local.kill("NY")  # the proposal cannot be accepted: it stays before the commit point
        if node == "PA":
            local.restart("PA", env=armed(effect, phase))
        proposal = propose(federation, accounts, to, request_id)
        assert proposal is not None and proposal["status"] == "proposed"
        tid = proposal["transfer_id"]
        if path == "cancellation" and node == "PA":
            if not cancel(federation, tid):
                died(local, "PA")
                local.start(["PA"])
                if phase != "after-commit":
                    assert cancel(federation, tid)  # the crash lost the cancel: ask again
            else:
                pytest.fail("the armed node answered the cancel instead of crashing")
        elif path == "hold-expiry":
            died(local, "PA", timeout=HOLD_SECONDS + 20)
            local.start(["PA"])
        else:  # destination-void: the void reaches NY first
            assert cancel(federation, tid)
        if node == "NY":
            local.start(["NY"], env=armed(effect, phase))
            died(local, "NY")
        local.start(["NY"])
    tid = proposal["transfer_id"]
    with RegistryClient(federation, "PA") as client:
        done = client.wait_settled(tid, 60)
    assert (done["status"], done["settled"]) == (final, True), done
    sides = statuses(federation, tid)
    assert sides.get("PA") == (final, True), sides
    if "NY" in sides:
        assert sides["NY"][0] == final, sides
    else:
        assert final == "cancelled", sides
    assert audit(federation) == []
