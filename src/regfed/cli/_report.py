"""``regfed report publish DIR``: the public reports, by the oversight operator.

    regfed report publish DIR [--federation F | --config oversight.toml] [--policy FILE]
                              [--allow-missing] [--timeout S] [--json]

Reads every registry's public records and the oversight node's reconciliation runs as the
oversight node (its certificate), applies each program's disclosure policy and writes the
reports as CSV, JSON and a static site into DIR, all at once. Exit 0 when published; 1 when a
registry or the oversight node did not answer (nothing written, unless --allow-missing) or the
federation cannot be read; 2 when the policy file or DIR is refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from regfed.local import Federation
from regfed.reports import (
    DocumentAltered,
    PolicyRefused,
    PublishRefused,
    load_policies,
    provenance_findings,
)
from regfed.reports.fetch import Source, source_from_config, source_from_federation
from regfed.reports.publish import MissingMembers, publish

from ._node import add_oversight_source_options, oversight_config_of
from ._output import EXIT_FAILED, EXIT_REFUSED, emit_json, table

POLICY_ENV = "REGFED_DISCLOSURE_POLICY"


def register(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="publish the public reports (the oversight node's certificate)"
    )
    sub = report.add_subparsers(dest="report_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "publish",
        help="read every registry, apply each program's disclosure policy, write CSV, JSON "
        "and a static HTML site into DIR",
        description="Read every registry's public records and the oversight node's "
        "reconciliation runs, apply each program's disclosure policy (docs/reports.md) and "
        "write the reports into DIR as CSV, JSON and a static site; DIR is replaced at once, "
        "never left half-written.",
    )
    p.add_argument("dir", type=Path, help="the folder to publish into (new, empty, or earlier)")
    add_oversight_source_options(p)
    p.add_argument(
        "--policy",
        type=Path,
        default=os.environ.get(POLICY_ENV) or None,
        help="a TOML (.toml) or JSON file overriding the built-in disclosure policies per "
        f"program (default: ${POLICY_ENV}, else the built-in ones)",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="publish even when a registry or the oversight node does not answer; every page "
        "then names what is missing",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for each member to answer (default 10)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(handler=_publish)


def _source(args: argparse.Namespace) -> Source:
    config = oversight_config_of(args)
    if config is not None:
        return source_from_config(config, args.timeout)
    return source_from_federation(Federation.load(args.federation), args.timeout)


def _refused(as_json: bool, code: str, message: str, hint: str, **details: Any) -> None:
    if as_json:
        emit_json({"ok": False, "error": {"code": code, "message": message, **details}})
    print(f"error: {code}: {message}", file=sys.stderr)
    for name, why in details.get("missing", {}).items():
        print(f"  {name}: {why}", file=sys.stderr)
    print(f"  what to do: {hint}", file=sys.stderr)


def _publish(args: argparse.Namespace) -> int:
    try:
        policies = load_policies(args.policy)
    except PolicyRefused as error:
        _refused(
            args.json,
            "POLICY_REFUSED",
            str(error),
            "fix the policy file (docs/reports.md shows one) or leave --policy out",
        )
        return EXIT_REFUSED
    source = _source(args)

    def progress(code: str, what: str) -> None:
        said = "records read" if what == "records" else "did not answer"
        print(f"  {code}: {said}", file=sys.stderr, flush=True)

    print(f"reading {len(source.endpoints)} registries as the oversight node", file=sys.stderr)
    try:
        publication, files = publish(
            source,
            args.dir,
            policies,
            allow_missing=args.allow_missing,
            timeout=args.timeout,
            progress=progress,
        )
    except MissingMembers as error:
        _refused(
            args.json,
            "MEMBERS_MISSING",
            str(error),
            "start the missing nodes (`regfed status` says which are down), or publish with "
            "--allow-missing to say on every page what is missing",
            missing=error.missing,
        )
        return EXIT_FAILED
    except PublishRefused as error:
        _refused(args.json, "TARGET_REFUSED", str(error), "publish into another folder")
        return EXIT_REFUSED
    except DocumentAltered as error:
        _refused(
            args.json,
            "DOCUMENT_ALTERED",
            str(error),
            f"nothing was published: have registry {error.registry} restore the document's "
            "bytes from its backup, then publish again",
            registry=error.registry,
            document=error.sha256,
        )
        return EXIT_FAILED
    summary = {"ok": True, "dir": str(args.dir), **publication.summary()}
    summary["files"] = [str(f) for f in files]
    findings = provenance_findings(publication.reports)
    summary["findings"] = [{"report": "credit-provenance", **f} for f in findings]
    if args.json:
        emit_json(summary)
        return 0
    rows = [
        {"report": r.name, "rows": len(r.rows), "withheld": "; ".join(r.withheld.sentences())}
        for r in publication.reports
    ]
    print(table(rows, ["report", "rows", "withheld"]))
    for code, why in publication.missing.items():
        print(f"MISSING {code}: {why} (every page says so)")
    for f in findings:
        print(
            f"FINDING credit-provenance: registry {f['registry']} holds a record of "
            f"{f['issuer']}'s credits for project {f['project']} (verifier {f['verifier']}): "
            f"{f['check']}; ask both registries for their records of that issuance",
            file=sys.stderr,
        )
    print(f"published {len(files)} files into {args.dir}; open {args.dir / 'index.html'}")
    return 0
