"""``regfed bench ...``: measured figures, never asserted by tests."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._output import emit_json

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/"


def register(commands: Any) -> None:
    bench = commands.add_parser("bench", help="run a benchmark and print its figures")
    sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    p = sub.add_parser("ledger", help="intra-registry transfer rate and quantity-cost ratio")
    p.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help="server to create a throwaway database on (default: %(default)s)",
    )
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--transfers", type=int, default=300)
    p.add_argument("--repeats", type=int, default=25)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_ledger)
    t = sub.add_parser("transfers", help="settled interstate transfers/s on a local federation")
    t.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    t.add_argument("--traders", type=int, default=32, help="concurrent traders (default 32)")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(handler=_transfers)


def _ledger(args: argparse.Namespace) -> int:
    from regfed.bench.ledger import run_ledger_bench  # noqa: PLC0415 - heavy, on demand

    def progress(text: str) -> None:
        print(f"... {text}", file=sys.stderr, flush=True)

    figures = run_ledger_bench(
        None if args.no_postgres else args.postgres,
        transfers=args.transfers,
        repeats=args.repeats,
        progress=progress,
    )
    if args.json:
        emit_json(figures)
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")
    return 0


def _transfers(args: argparse.Namespace) -> int:
    from regfed.bench.transfers import run_transfer_bench  # noqa: PLC0415 - heavy, on demand

    def progress(text: str) -> None:
        print(f"... {text}", file=sys.stderr, flush=True)

    figures = run_transfer_bench(args.duration, args.traders, progress)
    if args.json:
        emit_json(figures)
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")
    return 0 if not figures["audit_problems"] else 1
