"""``regfed oversight supply|compliance|flows|in-transit|credits|bank|reconciliation``:
federation-wide figures from the oversight node, a table for people and
``{"rows": [...], "missing": [...]}`` for scripts.

Filters are the view's key columns (``--issuer PA,NY --vintage 2000-2005``), ``--by`` sums the
rows to some of them. When a registry does not answer, its figures are not in the rows: the
command says which registries are missing (a warning line, the ``missing`` list) and exits 1, so
a partial total is never taken for the whole.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from regfed.local import TransferFailed
from regfed.local.oversight import FederationAnswer
from regfed.reconciliation.views import VIEWS, YEAR_KEYS, View, net_flows

from ._node import add_oversight_source_options
from ._output import EXIT_FAILED, emit_json, table
from ._reconcile import _client, _refused

#: The command's name for each view, where it differs.
COMMANDS = {"supply": "supply", "compliance": "compliance", "flows": "flows"}
COMMANDS["in-transit"] = "in_transit"
COMMANDS.update(credits="credits", bank="bank")
#: Options spelled for people where the key's own name reads badly.
ALIASES = {("flows", "year"): "period"}


def _common(p: argparse.ArgumentParser) -> None:
    """As `regfed reconcile`'s options, but the credential's registry is ``--admin-of``:
    ``--registry`` is a filter here."""
    add_oversight_source_options(p)
    p.add_argument(
        "--admin-of",
        dest="registry",
        metavar="CODE",
        default=None,
        help="ask as this registry's administrator instead of as the oversight node",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(role="oversight")


def _admin(args: argparse.Namespace) -> None:
    if args.registry is not None:
        args.role = "admin"


def _option(view: View, key: str) -> str:
    return "--" + ALIASES.get((view.name, key), key).replace("_", "-")


def register(sub: Any) -> None:
    for command, name in COMMANDS.items():
        view = VIEWS[name]
        p = sub.add_parser(command, help=view.help)
        _common(p)
        for key in view.keys:
            years = " (YYYY or YYYY-YYYY)" if key in YEAR_KEYS else ""
            p.add_argument(
                _option(view, key),
                dest=f"filter_{key}",
                metavar="VALUE[,VALUE...]",
                help=f"only rows whose {key} is one of these{years}",
            )
        if not view.per_item:
            p.add_argument(
                "--by",
                default=None,
                metavar="KEY[,KEY...]",
                help=f"sum the rows to these keys (of: {', '.join(view.keys)})",
            )
        p.set_defaults(handler=_query, view=name)
    runs = sub.add_parser(
        "reconciliation", help="reconciliation runs and their discrepancies (--run RUN)"
    )
    _common(runs)
    runs.add_argument("--run", help="one run's discrepancies (a run id, or latest)")
    runs.add_argument("--limit", type=int, default=20, help="runs listed (default 20)")
    runs.set_defaults(handler=_reconciliation)


def _filters(args: argparse.Namespace, view: View) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key in view.keys:
        text = getattr(args, f"filter_{key}", None)
        if text is not None:
            values = [v.strip() for v in text.split(",") if v.strip()]
            if not values:
                raise ValueError(f"{_option(view, key)} needs at least one value")
            out[key] = values
    return out


def _query(args: argparse.Namespace) -> int:
    view = VIEWS[args.view]
    by = [k.strip().replace("-", "_") for k in (getattr(args, "by", None) or "").split(",")]
    by = [k for k in by if k]
    _admin(args)
    try:
        with _client(args) as client:
            answer = client.query(view.name, _filters(args, view), by)
    except TransferFailed as error:
        return _refused(error, args.json)
    document = answer.to_dict()
    if view.name == "flows" and _has_pairs(answer):
        document["net"] = net_flows(answer.rows)
    if args.json:
        emit_json(document)
    else:
        _print(answer, view, document.get("net"))
    return EXIT_FAILED if answer.missing else 0


def _has_pairs(answer: FederationAnswer) -> bool:
    return all("from_registry" in r and "to_registry" in r for r in answer.rows)


def _print(answer: FederationAnswer, view: View, net: list[dict[str, Any]] | None) -> None:
    rows = answer.rows
    if rows and not view.per_item:
        totals: dict[str, Any] = dict.fromkeys(rows[0], "")
        first = next(iter(totals))
        totals[first] = "total"
        for value in view.values:
            totals[value] = sum(int(r[value]) for r in rows)
        rows = [*rows, totals]
    print(table(rows) if rows else "(no rows)")
    if net:
        print("\nnet flow per registry (units in minus units out)")
        print(table(net))
    registries = ", ".join(answer.registries) or "none"
    print(f"\n{len(answer.rows)} rows from {len(answer.registries)} registries ({registries})")
    for code, why in answer.missing.items():
        print(f"warning: {code} is MISSING from these figures: {why}", file=sys.stderr)
    if answer.missing:
        print(
            "warning: the totals above leave the missing registries out; start them "
            "(`regfed status` shows which are down) and ask again",
            file=sys.stderr,
        )


def _reconciliation(args: argparse.Namespace) -> int:
    _admin(args)
    try:
        with _client(args) as client:
            if args.run is not None:
                document = client.show(args.run)
                rows = _discrepancies(document)
            else:
                rows = [_run_row(client.show(r["run_id"])) for r in client.runs(args.limit)]
    except TransferFailed as error:
        return _refused(error, args.json)
    if args.json:
        # The runs are the oversight node's own records: nothing can be missing from them.
        emit_json({"rows": rows, "missing": []})
    elif args.run is not None:
        print(f"run {document['run_id']}: {document['status']}")
        print(table(rows) if rows else "no discrepancies")
    else:
        print(table(rows) if rows else "no runs yet: `regfed reconcile` runs one now")
    return 0


def _run_row(document: dict[str, Any]) -> dict[str, Any]:
    result = document.get("result") or {}
    return {
        "run_id": document["run_id"],
        "trigger": document.get("trigger"),
        "status": document["status"],
        "started_at": document.get("started_at"),
        "registries": len(document.get("registries", [])),
        "missing": ",".join(m["registry"] for m in document.get("missing") or []) or "-",
        "discrepancies": len(result.get("discrepancies", [])),
        "in_transit": len(result.get("in_transit", [])),
    }


def _discrepancies(document: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for d in (document.get("result") or {}).get("discrepancies", []):
        out.append(
            {
                "kind": d.get("kind"),
                "registries": ",".join(d.get("registries", [])),
                "issuer": d.get("issuer"),
                "program": d.get("program"),
                "unit_type": d.get("unit_type"),
                "vintage": d.get("vintage"),
                "start": d.get("start"),
                "end": d.get("end"),
                "transfers": ",".join(d.get("transfer_ids", [])) or "-",
            }
        )
    return out
