"""``regfed import epa-arp FILE --dir DIR [--states AL,TX] [--years 2000-2005] [--json]``:
EPA's Acid Rain Program file into a new local federation of real node processes (one registry
per state), year by year; then ``regfed up DIR`` serves it again. The plan comes first: a subset
that cannot cover its deductions is refused (exit 2) before anything is started or written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from regfed.epa import ArpDataError, InfeasibleSubset, plan_import, read_arp
from regfed.local.epa_import import ImportFailed, import_arp
from regfed.node.domain.programs import ControlPeriod

from ._output import EXIT_FAILED, EXIT_REFUSED, emit_json, table


def register(commands: Any) -> None:
    p = commands.add_parser("import", help="load real data into a new local federation")
    sub = p.add_subparsers(dest="import_command", required=True, metavar="SOURCE")
    arp = sub.add_parser(
        "epa-arp",
        help="EPA's Acid Rain Program state-level compliance data (data/camd/), one registry "
        "node per state",
    )
    arp.add_argument("file", type=Path, help="ARPComplianceData-StateLevel.csv")
    arp.add_argument("--dir", type=Path, required=True, help="a new folder for the federation")
    arp.add_argument("--states", help="only these states (comma-separated codes)")
    arp.add_argument("--years", help="only these years, YYYY or YYYY-YYYY (empty bank at start)")
    arp.add_argument("--plan-only", action="store_true", help="print the plan; import nothing")
    arp.add_argument("--json", action="store_true")
    arp.set_defaults(handler=_epa_arp)


def _refuse(message: str, as_json: bool, **detail: Any) -> int:
    if as_json:
        emit_json({"error": {"message": message, **detail}})
    else:
        print(f"error: {message}", file=sys.stderr)
    return EXIT_REFUSED


def _epa_arp(args: argparse.Namespace) -> int:
    states = None
    if args.states:
        states = sorted({s.strip().upper() for s in args.states.split(",") if s.strip()})
    years = None
    if args.years:
        period = ControlPeriod.parse(args.years)
        years = (period.first_year, period.last_year)
    folder = args.dir.resolve()
    if (folder / "federation.json").exists():
        return _refuse(
            f"{folder} already holds a federation: import into a new folder "
            f"(or serve this one with `regfed up {folder}`)",
            args.json,
            code="FOLDER_IN_USE",
        )
    try:
        plan = plan_import(read_arp(args.file), states, years)
    except InfeasibleSubset as error:
        if args.json:
            emit_json({"error": error.to_dict()})
        else:
            print(f"error: INFEASIBLE_SUBSET: {error}", file=sys.stderr)
            print("nothing was imported", file=sys.stderr)
        return EXIT_REFUSED
    except (ArpDataError, ValueError) as error:
        return _refuse(str(error), args.json, code="BAD_INPUT")
    summary = {
        "states": len(plan.states),
        "years": f"{plan.years[0]}-{plan.years[-1]}",
        "purchases": len(plan.purchases),
        "lowest_bank": plan.lowest_bank,
    }
    if args.plan_only:
        if args.json:
            emit_json(
                {
                    "plan": summary,
                    "purchases": [_purchase(p) for p in plan.purchases],
                }
            )
        else:
            _print_plan(plan)
        return 0

    def progress(text: str) -> None:  # stderr, so --json's stdout stays one document
        print(text, file=sys.stderr, flush=True)

    progress(
        f"plan: {summary['states']} states, {summary['years']}, {summary['purchases']} "
        f"interstate purchases; lowest bank {plan.lowest_bank[1]:,} in {plan.lowest_bank[0]}"
    )
    try:
        report = import_arp(plan, folder, progress=progress)
    except ImportFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    document = report.to_dict()
    if args.json:
        emit_json(document)
        return 0
    print(table(document["balances"]))
    print(
        f"\nimported {document['issued']:,} allowances issued and {document['deducted']:,} "
        f"deducted in {len(plan.states)} registries, {document['interstate_transfers']} "
        f"interstate transfers, in {document['seconds']:.0f} s"
    )
    print(
        "balance: each state's compliance account after the last year; epa_carried_over: EPA's "
        "figure, which also counts accounts outside this model (reported, not forced)"
    )
    print(f"serve it again: regfed up {folder}")
    return 0


def _purchase(p: Any) -> dict[str, Any]:
    return {"year": p.year, "seller": p.seller, "buyer": p.buyer, "quantity": p.quantity}


def _print_plan(plan: Any) -> None:
    rows = [_purchase(p) for p in plan.purchases]
    print(table(rows) if rows else "no purchases needed")
    print(
        f"\n{len(plan.states)} states, {plan.years[0]}-{plan.years[-1]}, {len(rows)} purchases, "
        f"lowest bank {plan.lowest_bank[1]:,} in {plan.lowest_bank[0]}"
    )
