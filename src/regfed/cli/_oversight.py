"""``regfed oversight run/check/health``: the oversight node (EPA) from one file and the
environment, as a registry node is run with ``regfed node``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from regfed.local import Federation
from regfed.oversight.node import run

from . import _node_config, _oversight_queries
from ._output import EXIT_FAILED


def register(commands: Any) -> None:
    oversight = commands.add_parser(
        "oversight",
        help="run the oversight node; ask it for federation-wide figures (supply, compliance, "
        "flows, in-transit, credits, bank, reconciliation)",
    )
    sub = oversight.add_subparsers(dest="oversight_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "run", help="serve the oversight node until SIGTERM/Ctrl-C, from --config FILE"
    )
    _node_config.add_config_option(p)
    p.add_argument(
        "--federation",
        type=Path,
        default=None,
        help="or: the oversight node of a local federation (the federation.json of `regfed up`)",
    )
    p.add_argument("--reflection", action="store_true", help="switch gRPC server reflection on")
    p.set_defaults(handler=_run)
    _node_config.register(sub, _node_config.OVERSIGHT)
    _oversight_queries.register(sub)


def _run(args: argparse.Namespace) -> int:
    overrides = {"reflection": True} if args.reflection else {}
    if args.federation is not None:
        if args.config is not None:
            raise ValueError("--config and --federation do not mix: give one")
        return run(Federation.load(args.federation).oversight_config(**overrides))
    loaded = _node_config.load_oversight(args, **overrides)
    return EXIT_FAILED if loaded is None else run(loaded.config)
