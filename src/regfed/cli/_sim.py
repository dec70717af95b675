"""``regfed sim``: the seeded fault simulator of the two-phase transfer protocol."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from regfed.gateway.sim import BREAKABLE, simulate

from ._output import emit_json


def register(commands: Any) -> None:
    p = commands.add_parser(
        "sim",
        help="run the protocol core through seeded faults",
        description="Drive the real two-phase protocol core with a network that drops, "
        "duplicates, reorders and delays messages and crashes nodes between effects, checking "
        "the invariants after every step. Any failing seed replays exactly with --start SEED "
        "--seeds 1.",
    )
    p.add_argument("--seeds", type=int, default=100, help="how many seeds (default: 100)")
    p.add_argument("--start", type=int, default=0, help="first seed (default: 0)")
    p.add_argument("--steps", type=int, default=300, help="events per seed before healing")
    p.add_argument("--fault-rate", type=float, default=0.2)
    p.add_argument(
        "--break",
        dest="broken",
        choices=BREAKABLE,
        help="remove one guard on purpose: the run must then fail",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    faults: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    violations: list[dict[str, Any]] = []
    crashes = transfers = steps = 0
    interactive = sys.stderr.isatty() and not args.json
    for n, seed in enumerate(range(args.start, args.start + args.seeds), start=1):
        report = simulate(seed, steps=args.steps, fault_rate=args.fault_rate, broken=args.broken)
        faults.update(report.faults)
        outcomes.update(report.outcomes)
        crashes += report.crashes
        transfers += report.transfers
        steps += report.steps
        violations.extend({"seed": seed, "violation": v} for v in report.violations)
        if interactive and (n % 25 == 0 or n == args.seeds):
            print(
                f"\r{n}/{args.seeds} seeds, {len(violations)} violations",
                end="",
                file=sys.stderr,
                flush=True,
            )
    if interactive:
        print(file=sys.stderr)
    summary = {
        "seeds": args.seeds,
        "first_seed": args.start,
        "broken": args.broken,
        "steps": steps,
        "transfers": transfers,
        "outcomes": dict(sorted(outcomes.items())),
        "faults": dict(sorted(faults.items())),
        "fault_density": round(sum(faults.values()) / max(steps, 1), 3),
        "crashes": crashes,
        "violations": violations,
        "failing_seeds": sorted({v["seed"] for v in violations}),
    }
    if args.json:
        emit_json(summary)
    else:
        print(
            f"{args.seeds} seeds from {args.start}, {transfers} transfers "
            f"({', '.join(f'{k} {v}' for k, v in summary['outcomes'].items())})"
        )
        print(
            "faults: "
            + ", ".join(f"{k} {v}" for k, v in summary["faults"].items())
            + f" (density {summary['fault_density']} per step)"
        )
        for v in violations[:20]:
            print(f"VIOLATION seed {v['seed']}: {v['violation']}")
            print(
                f"  replay: regfed sim --start {v['seed']} --seeds 1"
                + (f" --break {args.broken}" if args.broken else "")
            )
        print("no violations" if not violations else f"{len(violations)} violations")
    return 1 if violations else 0
