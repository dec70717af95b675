"""``regfed bench ...``: measured figures, never asserted by tests."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from ._output import emit_json, whole_number

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
    r = sub.add_parser(
        "reconcile",
        help="reconcile a generated federation through real nodes and signed streams",
    )
    r.add_argument("--registries", type=whole_number, default=10, help="(default 10)")
    r.add_argument(
        "--blocks", type=whole_number, default=1_000_000, help="blocks in all (default 1000000)"
    )
    r.add_argument(
        "--overlaps", type=whole_number, default=100, help="injected overlaps (default 100)"
    )
    r.add_argument("--seed", type=whole_number, default=0, help="generator seed (default 0)")
    r.add_argument(
        "--dir",
        type=Path,
        help="build the federation here and keep it (a later run of the same shape reuses it); "
        "default: a temporary folder, removed afterwards",
    )
    r.add_argument("--no-naive", action="store_true", help="skip the naive per-serial check")
    r.add_argument(
        "--node-nice",
        type=whole_number,
        default=0,
        help="niceness of the node processes while measuring (default 0: equal priority; 10 "
        "approximates nodes on machines of their own)",
    )
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(handler=_reconcile)
    e = sub.add_parser(
        "epa-import",
        help="import all of EPA's ARP file (49 node processes): time, peak memory, figures",
    )
    e.add_argument(
        "--file",
        type=Path,
        default=Path("data/camd/ARPComplianceData-StateLevel.csv"),
        help="the ARP file (default: the repository's copy, %(default)s)",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(handler=_epa_import)


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


def _reconcile(args: argparse.Namespace) -> int:
    from regfed.bench.reconcile import run_reconcile_bench  # noqa: PLC0415 - heavy, on demand

    def progress(text: str) -> None:
        print(f"... {text}", file=sys.stderr, flush=True)

    def terminated(_signum: int, _frame: object) -> None:
        raise SystemExit(128 + signal.SIGTERM)  # unwinds: every node and worker is stopped

    signal.signal(signal.SIGTERM, terminated)
    if args.registries < 3 or args.blocks < 1000 or args.overlaps < 0:
        print(
            "regfed bench reconcile: at least 3 registries and 1000 blocks, overlaps >= 0",
            file=sys.stderr,
        )
        return 2
    figures = run_reconcile_bench(
        args.blocks,
        registries=args.registries,
        overlaps=args.overlaps,
        seed=args.seed,
        folder=args.dir,
        naive=not args.no_naive,
        node_nice=args.node_nice,
        progress=progress,
    )
    if args.json:
        emit_json(figures)
    else:
        for key, value in figures.items():
            shown = json.dumps(value) if isinstance(value, dict | list) else value
            print(f"{key}: {shown}")
    clean = figures["overlaps_found"] == figures["overlaps_injected"]
    return 0 if clean and not figures["false_positives"] else 1


def _epa_import(args: argparse.Namespace) -> int:
    from regfed.bench.epa_import import run_epa_import_bench  # noqa: PLC0415 - heavy

    def progress(text: str) -> None:
        print(f"... {text}", file=sys.stderr, flush=True)

    figures = run_epa_import_bench(args.file, progress)
    if args.json:
        emit_json(figures)
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")
    ok = figures["issued_matches_epa"] and figures["surrendered_matches_epa"]
    return 0 if ok and figures["reconciliation"] == "completed" else 1
