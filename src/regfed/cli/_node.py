"""``regfed node run`` (one registry node) and ``regfed up`` (a local federation of them)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from regfed.gateway.config import load_config
from regfed.gateway.daemon import run
from regfed.local import FEDERATION_ENV, Federation, LocalFederation, create_federation
from regfed.local.processes import NodeFailed
from regfed.oversight.config import OversightConfig

from . import _node_config
from ._output import EXIT_FAILED, emit_json, table


def add_federation_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--federation",
        type=Path,
        default=None,
        help=f"the federation.json written by `regfed up` (default: ${FEDERATION_ENV})",
    )


def add_oversight_source_options(parser: argparse.ArgumentParser) -> None:
    """Where a command finds the oversight node: a local federation's file, or on the
    oversight host its own configuration (read with :func:`oversight_config_of`)."""
    add_federation_option(parser)
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="on the oversight host: the oversight node's own file (instead of --federation)",
    )


def oversight_config_of(args: argparse.Namespace) -> OversightConfig | None:
    """The oversight node's own configuration when ``--config`` was given, else None (the
    command then uses ``--federation``); both at once are refused."""
    if args.config is None:
        return None
    if args.federation is not None:
        raise ValueError("--config and --federation do not mix: give one")
    return load_config(args.config, schema=OversightConfig).config


def register(commands: Any) -> None:
    node = commands.add_parser("node", help="run one registry node (gRPC gateway over mTLS)")
    sub = node.add_subparsers(dest="node_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "run",
        help="serve one registry until SIGTERM/Ctrl-C: from --config FILE (and REGFED_* "
        "variables), or from a local federation with --federation F --registry CODE",
    )
    _node_config.add_config_option(p)
    add_federation_option(p)
    p.add_argument("--registry", help="with --federation: which registry of the federation")
    p.add_argument("--reflection", action="store_true", help="switch gRPC server reflection on")
    p.set_defaults(handler=_run)
    _node_config.register(sub)

    up = commands.add_parser(
        "up", help="start a local federation: one node process per registry, until Ctrl-C"
    )
    up.add_argument("dir", type=Path, help="where certificates, databases and logs live")
    up.add_argument(
        "--registries",
        default=None,
        help="comma-separated codes for a new federation (default PA,NY,NJ); an existing "
        "federation in DIR is served with its own registries",
    )
    up.add_argument("--oversight", default="EPA")
    up.add_argument("--base-port", type=int, default=50_051)
    up.add_argument(
        "--hold-seconds", type=float, default=None, help="pre-commit hold (default 24 hours)"
    )
    up.add_argument("--reflection", action="store_true", help="switch gRPC server reflection on")
    up.add_argument(
        "--log-format", choices=("text", "json"), default=None, help="node logs (default text)"
    )
    up.add_argument("--json", action="store_true")
    up.set_defaults(handler=_up)


def _run(args: argparse.Namespace) -> int:
    overrides = {"reflection": True} if args.reflection else {}
    if args.registry is None:
        if args.federation is not None:
            raise ValueError("--federation needs --registry CODE (or run from --config FILE)")
        # Not a local federation's node: the deployed form, one file and the environment.
        loaded = _node_config.load(args, **overrides)
        return EXIT_FAILED if loaded is None else run(loaded.config)
    if args.config is not None:
        raise ValueError("--config and --registry do not mix: --registry goes with --federation")
    federation = Federation.load(args.federation)
    return run(federation.node_config(args.registry, **overrides))


def _codes(text: str) -> list[str]:
    codes = [c.strip().upper() for c in text.split(",") if c.strip()]
    if not codes:
        raise ValueError("--registries names at least one registry code")
    return codes


def _up(args: argparse.Namespace) -> int:
    settings: dict[str, Any] = {}
    if args.hold_seconds is not None:
        settings["hold_seconds"] = args.hold_seconds
    if args.reflection:
        settings["reflection"] = True
    if args.log_format is not None:
        settings["log_format"] = args.log_format
    folder = args.dir.resolve()
    if args.registries is None and (folder / "federation.json").is_file():
        codes = Federation.load(folder / "federation.json").registries
    else:
        codes = _codes(args.registries or "PA,NY,NJ")
    federation = create_federation(
        folder,
        codes,
        oversight=args.oversight.upper(),
        base_port=args.base_port,
        settings=settings,
    )
    local = LocalFederation(federation)
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        local.start()
    except NodeFailed as error:
        local.stop()
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    nodes = [
        {
            "registry": code,
            "endpoint": federation.endpoint(code),
            "metrics": federation.metrics(code) or "-",
            "pid": str(local.processes[code].pid),
            "log": str(federation.folder / code / "node.log"),
        }
        for code in federation.registries
    ]
    if federation.oversight is not None:
        code = federation.oversight
        nodes.append(
            {
                "registry": f"{code} (oversight)",
                "endpoint": federation.oversight_config().listen,
                "metrics": "-",
                "pid": str(local.processes[code].pid),
                "log": str(federation.folder / code / "node.log"),
            }
        )
    if args.json:
        emit_json({"federation": str(federation.file), "nodes": nodes})
    else:
        print(table(nodes, ["registry", "endpoint", "metrics", "pid", "log"]))
        print(f"\nfederation file: {federation.file}")
        print(f"  use it: export {FEDERATION_ENV}={federation.file}")
        print("  then e.g. `regfed transfer holdings --registry PA ACCOUNT`; Ctrl-C stops all")
    sys.stdout.flush()
    while not stopping:
        dead = [code for code in local.processes if not local.alive(code)]
        if dead:
            print(f"error: node {', '.join(dead)} exited; stopping the federation", file=sys.stderr)
            local.stop()
            return EXIT_FAILED
        time.sleep(0.2)
    exits = local.stop()
    if not args.json:
        print("stopped: " + ", ".join(f"{c} (exit {rc})" for c, rc in exits.items()))
    return 0
