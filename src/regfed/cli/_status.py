"""``regfed status``: every node's health, release, transfers in flight and their age."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from regfed.certs.identity import Role
from regfed.local import Federation
from regfed.local.status import DEFAULT_TIMEOUT, SERVING, federation_status

from ._node import add_federation_option
from ._output import EXIT_FAILED, EXIT_REFUSED, emit_json, table

ROLES = {
    "oversight": Role.OVERSIGHT,
    "admin": Role.ADMINISTRATOR,
    "administrator": Role.ADMINISTRATOR,
    "registry": Role.REGISTRY,
}


def register(commands: Any) -> None:
    p = commands.add_parser(
        "status",
        help="every node's health, release and transfers in flight (exit 1 if one is down)",
    )
    add_federation_option(p)
    p.add_argument(
        "--as",
        dest="role",
        choices=list(ROLES),
        default="oversight",
        help="which credential to present at each node: oversight (default, works at every "
        "node), admin (each registry's administrator) or registry (each node's own certificate)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for each node, all asked at once (default {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    federation = Federation.load(args.federation)
    report = federation_status(federation, ROLES[args.role], max(args.timeout, 0.1))
    if args.json:
        emit_json(report)
    else:
        _print(report)
    if report["ok"]:
        return 0
    # A node down or not serving is a failure of the federation; a refused credential (every
    # node serving) is a refusal, as elsewhere.
    return EXIT_FAILED if any(n["health"] != SERVING for n in report["nodes"]) else EXIT_REFUSED


def duration(seconds: float | None) -> str:
    """``12.3s``, ``4m 05s``, ``2h 03m``, ``3d 04h``: for people; JSON keeps seconds."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def _print(report: dict[str, Any]) -> None:
    nodes = report["nodes"]
    rows = [
        {
            "registry": n["registry"],
            "endpoint": n["endpoint"],
            "health": n["health"],
            "version": n["version"] or "",
            "uptime": duration(n["uptime_seconds"]),
            "in_flight": "" if n["in_flight"] is None else str(n["in_flight"]),
            "oldest": duration(n["oldest_in_flight_seconds"]),
        }
        for n in nodes
    ]
    print(table(rows))
    flights = [{"registry": n["registry"], **t} for n in nodes for t in n["transfers"]]
    if flights:
        print("\ntransfers in flight (age on each node's own clock):")
        print(
            table(
                [{**t, "age": duration(t["age_seconds"])} for t in flights],
                ["registry", "transfer_id", "side", "status", "peer", "quantity", "age"],
            )
        )
    for n in nodes:
        shown = len(n["transfers"])
        if n["in_flight"] and n["in_flight"] > shown:
            print(f"  {n['registry']}: {n['in_flight']} in flight, the oldest {shown} shown")
    serving = sum(1 for n in nodes if n["health"] == SERVING)
    print(f"\n{serving} of {len(nodes)} nodes serving, {report['in_flight']} transfers in flight")
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
