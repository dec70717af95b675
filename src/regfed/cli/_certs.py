"""``regfed certs ...``: federation credentials."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from regfed.certs.local import init_federation

from ._output import emit_json, table


def register(commands: Any) -> None:
    certs = commands.add_parser("certs", help="federation certificates and keys")
    sub = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "init",
        help="create a local federation's CA, node certificates, signing keys and directory",
    )
    p.add_argument("dir", type=Path)
    p.add_argument("--registries", required=True, help="comma-separated codes, e.g. PA,NY,NJ")
    p.add_argument("--oversight", default="EPA", help="the oversight node's code")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_init)


def _init(args: argparse.Namespace) -> int:
    codes = [c.strip().upper() for c in args.registries.split(",") if c.strip()]
    summary = init_federation(args.dir, codes, args.oversight.upper())
    if args.json:
        emit_json(summary)
    else:
        print(f"federation credentials in {summary['folder']} (private keys 0600: never commit)")
        print(table(summary["members"], ["code", "role", "endpoint", "key_id"]))
        print(f"signed directory: {summary['directory']} (version {summary['version']})")
    return 0
