"""``regfed credits ...``: projects, verifiers, documents and credit issuance on one registry's
database, as its operator (like ``regfed ledger``). Approving a verification report issues
the credits it verifies: that is the only way ERCs and offsets of a verification program are
created (docs/credits.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from regfed.node import (
    AccreditVerifier,
    RegisterProject,
    ReviewDocument,
    SetProjectStatus,
    SubmitDocument,
    errors,
)
from regfed.node.domain.documents import digest, require_intact

from ._ledger import _actor, _actor_and_op, _done, _op, _registry, ledger_command
from ._output import emit_json, table

FACTS = ("period", "verifier", "quantity", "mv_report", "program", "official")


def register(commands: Any) -> None:
    credits = commands.add_parser("credits", help="projects, verifiers, documents and credits")
    sub = credits.add_subparsers(dest="credits_command", required=True, metavar="ACTION")
    cmd = ledger_command(sub)

    p = cmd("register-project", "register a project under a sponsor's general account", _project)
    p.add_argument("--sponsor", required=True, help="the sponsor's general account number")
    p.add_argument("--name", required=True)
    p.add_argument(
        "--category",
        required=True,
        help="renewable-generation, energy-efficiency (ERCs); landfill-methane, "
        "agricultural-manure-methane, reforestation (offsets)",
    )
    p.add_argument("--program", required=True, help="e.g. CPPR for ERCs, RGGI for offsets")
    p.add_argument("--location", required=True)
    p.add_argument("--capacity-mw")
    p.add_argument("--baseline", default="")
    _actor_and_op(p)

    p = cmd("project-status", "approve, suspend or terminate a project (administrator)", _status)
    p.add_argument("--project", required=True)
    p.add_argument("--status", required=True, choices=["approved", "suspended", "terminated"])
    p.add_argument("--reason", default="")
    _actor_and_op(p)

    p = cmd("accredit", "record a verifier's accreditation (administrator)", _accredit)
    p.add_argument("--verifier", required=True, help="verifier id, e.g. VER-GREEN")
    p.add_argument("--name", required=True)
    p.add_argument("--person", required=True, help="the person id who signs its reports")
    p.add_argument("--category", action="append", required=True, dest="categories")
    p.add_argument("--valid-from", required=True, help="YYYY-MM-DD")
    p.add_argument("--valid-to", required=True, help="YYYY-MM-DD")
    p.add_argument("--conflict", action="append", default=[], help="project or account")
    _actor_and_op(p)

    p = cmd("submit", "submit a document (its SHA-256 is its identity)", _submit)
    p.add_argument("file", type=Path)
    p.add_argument(
        "--kind",
        required=True,
        choices=[
            "emv-plan", "mv-report", "verification-report", "consistency-application",
            "compliance-certification",
        ],
    )  # fmt: skip
    p.add_argument("--subject", required=True, help="project id, or a compliance account")
    p.add_argument("--title", required=True)
    p.add_argument("--content-type", default="application/pdf")
    p.add_argument("--private", action="store_true", help="not published (default: public)")
    p.add_argument("--supersedes", help="SHA-256 of the version this one replaces")
    for fact in FACTS:
        p.add_argument(f"--{fact.replace('_', '-')}", dest=fact)
    _actor_and_op(p)

    p = cmd("review", "review a document; approving a verification report issues", _review)
    p.add_argument("--document", required=True, help="its SHA-256")
    p.add_argument("--decision", required=True, choices=["under-review", "approved", "rejected"])
    p.add_argument("--reasons", default="")
    _actor_and_op(p)

    cmd("projects", "the registry's projects", _projects)
    cmd("verifiers", "verifier accreditations", _verifiers)
    p = cmd("documents", "documents and their review status", _documents)
    p.add_argument("--subject")
    p = cmd("download", "write a document's bytes, checked against its hash", _download)
    p.add_argument("--document", required=True)
    p.add_argument("--out", type=Path, required=True)
    cmd("issuance", "credits issued here and received, with their provenance", _issuance)


def _project(args: argparse.Namespace) -> int:
    reg = _registry(args)
    result = reg.credits.register_project(
        RegisterProject(
            operation_id=_op(args), sponsor_account=args.sponsor, name=args.name,
            category=args.category, program=args.program, location=args.location,
            capacity_mw=args.capacity_mw, baseline=args.baseline,
        ),
        _actor(reg, args.actor),
    )  # fmt: skip
    reg.close()
    return _done(args, result, f"registered project {result.detail['project']} (proposed)")


def _status(args: argparse.Namespace) -> int:
    reg = _registry(args)
    result = reg.credits.set_project_status(
        SetProjectStatus(
            operation_id=_op(args), project=args.project, status=args.status, reason=args.reason
        ),
        _actor(reg, args.actor),
    )
    reg.close()
    return _done(args, result, f"project {args.project} is {args.status}")


def _accredit(args: argparse.Namespace) -> int:
    reg = _registry(args)
    result = reg.credits.accredit_verifier(
        AccreditVerifier(
            operation_id=_op(args), verifier=args.verifier, name=args.name, person=args.person,
            categories=tuple(args.categories), valid_from=args.valid_from,
            valid_to=args.valid_to, conflicts=tuple(args.conflict),
        ),
        _actor(reg, args.actor),
    )  # fmt: skip
    reg.close()
    return _done(args, result, f"accredited {args.verifier}")


def _submit(args: argparse.Namespace) -> int:
    try:
        content = args.file.read_bytes()
    except OSError as error:
        raise errors.InvalidArgument(f"cannot read {args.file}: {error.strerror}") from None
    facts = tuple((f, str(getattr(args, f))) for f in FACTS if getattr(args, f) is not None)
    reg = _registry(args)
    result = reg.credits.submit_document(
        SubmitDocument(
            operation_id=_op(args), document_kind=args.kind, subject=args.subject,
            title=args.title, content_sha256=digest(content), content_type=args.content_type,
            public=not args.private, supersedes=args.supersedes, facts=facts,
        ),
        content,
        _actor(reg, args.actor),
    )  # fmt: skip
    reg.close()
    d = result.detail
    return _done(args, result, f"submitted {d['kind']} {d['sha256']} (version {d['version']})")


def _review(args: argparse.Namespace) -> int:
    reg = _registry(args)
    result = reg.credits.review_document(
        ReviewDocument(
            operation_id=_op(args), document=args.document, decision=args.decision,
            reasons=args.reasons,
        ),
        _actor(reg, args.actor),
    )  # fmt: skip
    reg.close()
    issued = result.detail.get("issued")
    summary = f"document {args.document} is {args.decision}"
    if issued:
        block = issued["issuance"]
        summary += (
            f"; issued {result.detail['quantity']:,} {block['unit_type']} to "
            f"{result.detail['to']} for project {issued['project']}"
        )
    return _done(args, result, summary)


def _read(args: argparse.Namespace, what: Any) -> Any:
    reg = _registry(args)
    try:
        with reg.ledger.store.read() as tx:
            return what(tx)
    finally:
        reg.close()


def _projects(args: argparse.Namespace) -> int:
    rows = _read(args, lambda tx: [p.to_dict() for p in tx.credits.projects()])
    return _show(args, {"projects": rows}, rows, ["project", "name", "sponsor", "category",
                                                  "unit_type", "program", "status"])  # fmt: skip


def _verifiers(args: argparse.Namespace) -> int:
    rows = _read(args, lambda tx: [a.to_dict() for a in tx.credits.accreditations()])
    shown = [{**r, "categories": ",".join(r["categories"])} for r in rows]
    return _show(args, {"verifiers": rows}, shown,
                 ["verifier", "name", "categories", "valid_from", "valid_to"])  # fmt: skip


def _documents(args: argparse.Namespace) -> int:
    rows = _read(args, lambda tx: [d.to_dict() for d in tx.credits.documents(subject=args.subject)])
    return _show(args, {"documents": rows}, rows,
                 ["sha256", "kind", "subject", "version", "status", "public"])  # fmt: skip


def _download(args: argparse.Namespace) -> int:
    def fetch(tx: Any) -> bytes:
        document = tx.credits.document(args.document)
        if document is None:
            raise errors.DocumentNotFound(f"no document {args.document} here")
        return require_intact(document.sha256, tx.credits.content(document.sha256) or b"")

    content = _read(args, fetch)
    args.out.write_bytes(content)
    if args.json:
        emit_json({"ok": True, "document": args.document, "out": str(args.out),
                   "size": len(content)})  # fmt: skip
    else:
        print(f"wrote {len(content):,} bytes to {args.out}; they match {args.document}")
    return 0


def _issuance(args: argparse.Namespace) -> int:
    records = _read(args, lambda tx: tx.credits.all_provenance())
    rows = [{**p.to_dict(), "origin": origin} for p, origin in records]
    shown = [
        {
            "block": f"{r['issuance']['issuer']}/{r['issuance']['program']}/"
            f"{r['issuance']['unit_type']}/{r['issuance']['vintage']}:"
            f"{r['issuance']['start']}-{r['issuance']['end']}",
            "project": r["project"],
            "verifier": r["verifier"],
            "period": r["monitoring_period"],
            "origin": r["origin"],
        }
        for r in rows
    ]
    return _show(args, {"issuance": rows}, shown, None)


def _show(
    args: argparse.Namespace, data: dict[str, Any], rows: list[Any], columns: list[str] | None
) -> int:
    if args.json:
        emit_json(data)
    elif not rows:
        print("none")
    else:
        print(table(rows, columns) if columns else table(rows))
    return 0
