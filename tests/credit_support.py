"""Helpers for tests of projects, verifiers, documents and credits (plain functions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from regfed.node import Registry
from regfed.node.domain.commands import (
    AccreditVerifier,
    RegisterProject,
    ReviewDocument,
    SetProjectStatus,
    SubmitDocument,
)
from regfed.node.domain.documents import digest
from regfed.node.ledger import OperationResult
from support import op_id, open_general, person

PERIOD = "2025-01-01..2025-12-31"


def register(
    reg: Registry,
    sponsor: str,
    by: str,
    *,
    category: str = "renewable-generation",
    program: str = "CPPR",
    name: str = "Ridge Wind",
) -> str:
    result = reg.credits.register_project(
        RegisterProject(
            operation_id=op_id("project"),
            sponsor_account=sponsor,
            name=name,
            category=category,
            program=program,
            location="Somerset County, PA",
            capacity_mw="120.5",
            baseline="grid average 2020-2024",
        ),
        person(by) if by != "admin" else reg.ledger.administrator,
    )
    return str(result.detail["project"])


def approve_project(reg: Registry, project: str, status: str = "approved") -> OperationResult:
    return reg.credits.set_project_status(
        SetProjectStatus(operation_id=op_id("status"), project=project, status=status),
        reg.ledger.administrator,
    )


def accredit(
    reg: Registry,
    verifier: str = "VER-1",
    *,
    categories: tuple[str, ...] = ("renewable-generation",),
    valid: tuple[str, str] = ("2020-01-01", "2099-12-31"),
    conflicts: tuple[str, ...] = (),
) -> OperationResult:
    return reg.credits.accredit_verifier(
        AccreditVerifier(
            operation_id=op_id("accredit"),
            verifier=verifier,
            name=f"{verifier} Verification LLC",
            person=verifier.lower(),
            categories=categories,
            valid_from=valid[0],
            valid_to=valid[1],
            conflicts=conflicts,
        ),
        reg.ledger.administrator,
    )


def submit(
    reg: Registry,
    kind: str,
    subject: str,
    content: bytes,
    by: str,
    *,
    public: bool = True,
    supersedes: str | None = None,
    **facts: Any,
) -> str:
    result = reg.credits.submit_document(
        SubmitDocument(
            operation_id=op_id("doc"),
            document_kind=kind,
            subject=subject,
            title=f"{kind} for {subject}",
            content_sha256=digest(content),
            public=public,
            supersedes=supersedes,
            facts=tuple((k, str(v)) for k, v in sorted(facts.items())),
        ),
        content,
        person(by) if by != "admin" else reg.ledger.administrator,
    )
    return str(result.detail["sha256"])


def review(
    reg: Registry, sha256: str, decision: str = "approved", reasons: str = ""
) -> OperationResult:
    return reg.credits.review_document(
        ReviewDocument(
            operation_id=op_id("review"), document=sha256, decision=decision, reasons=reasons
        ),
        reg.ledger.administrator,
    )


@dataclass
class Chain:
    sponsor: str
    project: str
    plan: str
    mv_report: str
    report: str


def credit_chain(
    reg: Registry,
    *,
    sponsor_person: str = "sol",
    verifier: str = "VER-1",
    quantity: int = 500,
    period: str = PERIOD,
    category: str = "renewable-generation",
    program: str = "CPPR",
    approve_report: bool = True,
    sponsor: str | None = None,
) -> Chain:
    """A project taken from registration to (optionally) the approval that issues its credits."""
    sponsor = sponsor or open_general(reg, sponsor_person, "Ridge Wind LLC")
    project = register(reg, sponsor, sponsor_person, category=category, program=program)
    approve_project(reg, project)
    plan_kind = (
        "emv-plan"
        if category in ("renewable-generation", "energy-efficiency")
        else ("consistency-application")
    )
    plan = submit(reg, plan_kind, project, f"plan of {project}".encode(), sponsor_person)
    review(reg, plan)
    mv = submit(
        reg, "mv-report", project, f"{project} metered {quantity} MWh {period}".encode(),
        sponsor_person,
        period=period,
    )  # fmt: skip
    review(reg, mv)
    report = submit(
        reg, "verification-report", project, f"verified {quantity} {period} {mv}".encode(),
        verifier.lower(), period=period, verifier=verifier, quantity=quantity, mv_report=mv,
    )  # fmt: skip
    if approve_report:
        review(reg, report)
    return Chain(sponsor, project, plan, mv, report)


def issue_credits(
    reg: Registry, sponsor: str, category: str, program: str, quantity: int, year: int = 2025
) -> str:
    """Credits of ``quantity`` issued to ``sponsor`` through the whole path (:func:`credit_chain`,
    the administrator acting for the sponsor, a verifier accredited for the category); the
    project's id."""
    verifier = f"V-{category[:8].upper()}"
    accredit(reg, verifier, categories=(category,))
    chain = credit_chain(
        reg, sponsor=sponsor, sponsor_person="admin", verifier=verifier, quantity=quantity,
        period=f"{year}-01-01..{year}-12-31", category=category, program=program,
    )  # fmt: skip
    return chain.project


def tamper(reg: Registry, sha256: str, content: bytes) -> None:
    """Edit a document's stored bytes as the database's owner could."""
    rewrite(
        reg,
        "UPDATE document_contents SET content = :c WHERE sha256 = :s",
        {"c": content, "s": sha256},
    )


def rewrite(reg: Registry, update: str, params: dict[str, Any]) -> None:
    """Rewrite rows of an append-only table as the database's owner could: lift its trigger,
    run ``update`` (an ``UPDATE <table> ...``)."""
    table = update.split()[1]
    postgres = reg.engine.dialect.name == "postgresql"
    with reg.engine.begin() as conn:
        if postgres:
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        else:
            conn.execute(text(f"DROP TRIGGER {table}_append_only_update"))
        conn.execute(text(update), params)
        if postgres:
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
