"""``regfed scenario``: conformance scenarios against a fresh federation of real nodes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from regfed.gateway.protocol.durable import crash_points
from regfed.scenario import DatabaseChoiceError, ScenarioError, load_scenario, run_scenario

from ._output import EXIT_FAILED, emit_json


def register(commands: Any) -> None:
    p = commands.add_parser(
        "scenario",
        help="run conformance scenarios against a fresh local federation",
        description="Conformance scenarios (docs/scenarios.md): a JSON file names registries, "
        "accounts and steps; the runner starts one real node process per registry, runs the "
        "steps, and checks the outcome.",
    )
    sub = p.add_subparsers(dest="scenario_command", required=True, metavar="SUBCOMMAND")
    run = sub.add_parser(
        "run",
        help="run one scenario file; exit 0 when every step met its "
        "expectation and every invariant holds",
    )
    run.add_argument("file", type=Path)
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument(
        "--db",
        default="sqlite",
        metavar="sqlite|postgresql://HOST/",
        help="where the registries keep their data: SQLite files (default) or one fresh "
        "database per registry on this PostgreSQL server, dropped afterwards",
    )
    run.add_argument(
        "--keep", type=Path, help="run in this folder and leave it (logs, databases) afterwards"
    )
    run.set_defaults(handler=_run)
    points = sub.add_parser("crash-points", help="list every crash point a scenario can arm")
    points.add_argument("--json", action="store_true", help="print a JSON list")
    points.set_defaults(handler=_points)


def _run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.file)
    except ScenarioError as error:
        print(f"error: {error}", file=sys.stderr)
        print("  what to do: fix the file (format: docs/scenarios.md)", file=sys.stderr)
        return EXIT_FAILED

    def say(text: str) -> None:
        if not args.json:
            print(text, flush=True)

    say(f"scenario {args.file}: {len(scenario.steps)} steps on {', '.join(scenario.registries)}")
    try:
        outcome = run_scenario(scenario, say, keep=args.keep, db=args.db)
    except DatabaseChoiceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        emit_json(outcome)
    else:
        failed = [s for s in outcome["steps"] if s["outcome"] != "ok"]
        print(f"  steps: {len(outcome['steps']) - len(failed)} ok, {len(failed)} failed")
        for step in failed:  # final outcomes: a crash or a cancel can settle a step later
            print(f"    [{step['index']}] {step['op']}: {step['outcome']}")
        for check in outcome["invariants"]:
            print(f"  check {check['name']}: {'ok' if check['ok'] else 'FAILED'}")
            if not check["ok"]:
                print(f"    {check['problems']}")
        print("scenario passed" if outcome["ok"] else "scenario FAILED")
    return 0 if outcome["ok"] else EXIT_FAILED


def _points(args: argparse.Namespace) -> int:
    points = crash_points()
    if args.json:
        emit_json([{k: p[k] for k in ("name", "side", "path", "paths")} for p in points])
    else:
        for p in points:
            print(p["name"])
    return 0
