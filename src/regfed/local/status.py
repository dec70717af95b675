"""The status of every node of a federation: health, release, transfers in flight and their age.

Every node is asked at once (one thread each) with a short deadline, so one node that hangs or
is gone costs the whole report at most ``timeout`` seconds. A node is first asked the standard
health check (``grpc.health.v1.Health/Check``), then, if it answers, its own status
(``regfed.client.v1.Registry/GetStatus``). Ages come from each node's own clock.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from regfed.certs.identity import Role

from .client import RegistryClient, TransferFailed
from .federation import Federation
from .processes import node_log

SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"
UNREACHABLE = "UNREACHABLE"
#: Health check failures that mean "nobody answered" (refused connection, no TLS, deadline).
_NO_ANSWER = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
DEFAULT_TIMEOUT = 3.0


def node_status(
    federation: Federation, code: str, role: Role = Role.OVERSIGHT, timeout: float = 3.0
) -> dict[str, Any]:
    """One node's line of the report; never raises for what the node does or does not do."""
    deadline = time.monotonic() + timeout
    node: dict[str, Any] = {
        "registry": code,
        "endpoint": federation.endpoint(code),
        "health": "UNKNOWN",
        "version": None,
        "uptime_seconds": None,
        "in_flight": None,
        "oldest_in_flight_seconds": None,
        "transfers": [],
        "node_time": None,
        "directory_version": None,
        "error": None,
    }
    try:
        client = RegistryClient(federation, code, role, timeout=timeout)
    except (OSError, ValueError) as error:
        node["error"] = {"status": "", "code": "NO_CREDENTIAL", "message": str(error)}
        return node
    with client:
        try:
            node["health"] = client.health(timeout=timeout)
        except TransferFailed as failed:
            node["health"] = UNREACHABLE if failed.status in _NO_ANSWER else "UNKNOWN"
            node["error"] = failed.to_dict()
            return node
        try:
            status = client.status(timeout=max(deadline - time.monotonic(), 0.2))
        except TransferFailed as failed:
            node["error"] = failed.to_dict()
            return node
    transfers = [
        {
            "transfer_id": t["transfer_id"],
            "side": t["side"],
            "status": t["status"],
            "peer": t["peer"],
            "quantity": t["quantity"],
            "created_at": t["created_at"],
            "age_seconds": round(t["age_seconds"], 3),
        }
        for t in status["transfers"]
    ]
    node.update(
        version=status["version"],
        uptime_seconds=round(status["uptime_seconds"], 3),
        in_flight=status["in_flight"],
        oldest_in_flight_seconds=transfers[0]["age_seconds"] if transfers else None,
        transfers=transfers,
        node_time=status["node_time"],
        directory_version=status["directory_version"],
    )
    if status["registry"] != code:
        node["error"] = {
            "status": "",
            "code": "WRONG_REGISTRY",
            "message": f"the node at {node['endpoint']} is registry {status['registry']}",
        }
    return node


def federation_status(
    federation: Federation, role: Role = Role.OVERSIGHT, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Any]:
    """Every node's status, asked concurrently: ``ok`` when every node serves and answered."""
    codes = federation.registries
    with ThreadPoolExecutor(max_workers=max(len(codes), 1)) as pool:
        nodes = list(pool.map(lambda c: node_status(federation, c, role, timeout), codes))
    for node in nodes:
        node["ok"] = node["health"] == SERVING and node["error"] is None
        node["problem"] = problem(federation, node)
    return {
        "federation": str(federation.file),
        "as": role.value,
        "nodes": nodes,
        "in_flight": sum(n["in_flight"] or 0 for n in nodes),
        "warnings": [n["problem"] for n in nodes if n["problem"]],
        "ok": all(n["ok"] for n in nodes),
    }


def problem(federation: Federation, node: dict[str, Any]) -> str | None:
    """What is wrong with a node and what to do about it, in one line; None when it is fine."""
    code, health, error = node["registry"], node["health"], node["error"]
    log = node_log(federation, code)
    look = f"look at its log ({log})" if log.is_file() else "look at its log"
    restart = f"`regfed node run --registry {code}` (or `regfed up DIR` for a local federation)"
    if health == UNREACHABLE:
        why = f" ({error['code']})" if error else ""
        return (
            f"{code} is UNREACHABLE at {node['endpoint']}{why}: is its process running? "
            f"{look} and restart it with {restart}"
        )
    if health == NOT_SERVING:
        return (
            f"{code} is NOT_SERVING (stopping, or unable to serve): {look}; "
            f"if it does not come back, restart it with {restart}"
        )
    if error is None:
        return None if health == SERVING else f"{code} reports health {health}: {look}"
    if error["code"] == "NO_CREDENTIAL":
        return f"{code}: {error['message']}"
    if error["status"] == "UNIMPLEMENTED":
        return f"{code} runs a regfed release without the status API: upgrade it"
    if error["status"] in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        return (
            f"{code} refused this credential ({error['code']}: {error['message']}): "
            "use --as oversight (the default) or that registry's --as admin"
        )
    return f"{code} answered its health check but not its status ({error['code']}): {look}"
