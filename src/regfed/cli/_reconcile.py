"""``regfed reconcile``: run reconciliation now at the oversight node, or read past runs.

    regfed reconcile [--json]                  run now (a progress line in a terminal)
    regfed reconcile list [--limit N] [--json]
    regfed reconcile show RUN|latest [--json]
    regfed reconcile resolve RUN --by NAME --note TEXT [--json]

Exit 0 when the run is clean (completed, or completed after intervention); 1 when it is
inconsistent, incomplete or failed; 2 when the oversight node refused the request.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from regfed.certs.identity import Role
from regfed.local import Federation, TransferFailed
from regfed.local.oversight import OversightClient

from ._node import add_oversight_source_options, oversight_config_of
from ._output import EXIT_FAILED, EXIT_REFUSED, emit_json, table

CLEAN = ("completed", "completed_after_intervention")
ROLES = {"oversight": Role.OVERSIGHT, "admin": Role.ADMINISTRATOR, "registry": Role.REGISTRY}


def register(commands: Any) -> None:
    p = commands.add_parser(
        "reconcile",
        help="prove no serial is in two registries and every issued unit is accounted for "
        "(run now at the oversight node; list, show or resolve past runs)",
    )
    _common(p)
    p.set_defaults(handler=_run)
    sub = p.add_subparsers(dest="reconcile_command", metavar="ACTION")
    lst = sub.add_parser("list", help="past runs, newest first")
    _common(lst)
    lst.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    lst.set_defaults(handler=_list)
    show = sub.add_parser("show", help="one run's signed result, verified")
    _common(show)
    show.add_argument("run", help="a run id, or latest")
    show.set_defaults(handler=_show)
    resolve = sub.add_parser(
        "resolve",
        help="record an administrator's resolution of an inconsistent run (the next clean run "
        "then completes after intervention)",
    )
    _common(resolve)
    resolve.add_argument("run", help="the inconsistent run's id")
    resolve.add_argument("--by", required=True, help="who resolved it")
    resolve.add_argument("--note", required=True, help="what was found and done")
    resolve.set_defaults(handler=_resolve)


def _common(p: argparse.ArgumentParser) -> None:
    add_oversight_source_options(p)
    p.add_argument(
        "--as",
        dest="role",
        choices=list(ROLES),
        default="oversight",
        help="credential: oversight (default; needed to run and resolve), or a registry's admin "
        "or node certificate (reading runs only)",
    )
    p.add_argument("--registry", help="whose admin or node credential, with --as admin|registry")
    p.add_argument("--json", action="store_true")


def _client(args: argparse.Namespace) -> OversightClient:
    config = oversight_config_of(args)
    if config is not None:
        return OversightClient.from_config(config)
    federation = Federation.load(args.federation)
    return OversightClient(federation, ROLES[args.role], args.registry)


def _refused(error: TransferFailed, as_json: bool) -> int:
    if as_json:
        emit_json({"error": error.to_dict()})
    else:
        print(f"error: {error.code} ({error.status}): {error.message}", file=sys.stderr)
        if error.status == "UNAVAILABLE":
            print(
                "the oversight node is not answering: is it running? `regfed up DIR` starts it "
                "with the registries; `regfed oversight run --config FILE` on its own",
                file=sys.stderr,
            )
    return EXIT_FAILED if error.status == "UNAVAILABLE" else EXIT_REFUSED


class _ProgressLine:
    """One line on stderr, rewritten in place, when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last = 0.0

    def __call__(self, stage: str, registry: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if stage == "sweep" and now - self.last < 0.2:
            return
        self.last = now
        if stage == "sweep":
            text = f"sweep: {done:,} blocks read"
        else:
            text = f"{stage}: {registry} ({done + 1}/{total})" if total else f"{stage} {registry}"
        sys.stderr.write(f"\r\x1b[K{text}")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _run(args: argparse.Namespace) -> int:
    progress = _ProgressLine(sys.stderr.isatty() and not args.json)
    try:
        with _client(args) as client:
            document = client.reconcile(progress)
    except TransferFailed as error:
        progress.done()
        return _refused(error, args.json)
    progress.done()
    _print_run(document, args.json)
    return 0 if document["status"] in CLEAN else EXIT_FAILED


def _show(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            document = client.show(args.run)
    except TransferFailed as error:
        return _refused(error, args.json)
    _print_run(document, args.json)
    return 0 if document["status"] in CLEAN else EXIT_FAILED


def _list(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            runs = client.runs(max(1, min(args.limit, 1000)))
    except TransferFailed as error:
        return _refused(error, args.json)
    if args.json:
        emit_json({"runs": runs})
        return 0
    columns = ["run_id", "sequence", "trigger", "status", "started_at", "finished_at", "missing"]
    rows = [{**r, "missing": ",".join(r.get("missing") or []) or "-"} for r in runs]
    print(table(rows, columns) if rows else "no runs yet: `regfed reconcile` runs one now")
    return 0


def _resolve(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            document = client.resolve(args.run, args.by, args.note)
    except TransferFailed as error:
        return _refused(error, args.json)
    if args.json:
        emit_json(document)
    else:
        print(
            f"resolution recorded for {args.run}; the next clean run completes after intervention"
        )
    return 0


def _print_run(document: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(document)
        return
    result = document.get("result") or {}
    counts = result.get("counts", {})
    print(
        f"run {document['run_id']} (#{document.get('sequence')}, {document.get('trigger')}): "
        f"{document['status'].upper()}"
    )
    print(
        f"  {len(document.get('registries', []))} registries, {counts.get('blocks', 0):,} "
        f"blocks, {len(result.get('in_transit', []))} in transit, "
        f"{len(result.get('explained', []))} explained, "
        f"{len(result.get('discrepancies', []))} discrepancies"
    )
    for missing in document.get("missing", []):
        print(f"  missing {missing['registry']}: {missing['reason']}")
    if document.get("follows_resolution_of"):
        print(f"  after the resolution of {document['follows_resolution_of']}")
    rows = [
        {
            "kind": d["kind"],
            "registries": ",".join(d["registries"]),
            "class": f"{d['issuer']}/{d['program']}/{d['unit_type']}/{d['vintage']}",
            "serials": "-" if d["start"] is None else f"{d['start']}-{d['end']}",
            "transfers": ",".join(d["transfer_ids"]) or "-",
        }
        for d in result.get("discrepancies", [])
    ]
    if rows:
        print(table(rows))
    print("  signed by the oversight node " + str(document.get("oversight")) + ", verified")
