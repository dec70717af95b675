"""The credit reports: projects, verifiers, public documents (with their bytes), credit issuance
by project and late or missing compliance certifications. Pure, like :mod:`.build`.

The rules (docs/reports.md):

- a project's sponsor is a party of the project's program (``parties``), and its name is
  shown as its sponsor is (people name projects after themselves);
- a verifier's declared conflicts name projects (always shown) and sponsor accounts (shown
  under ``parties`` of every program the account touched);
- only documents submitted as public are published, never anything of another one: not its
  title, hash or bytes, and not its hash where another report names it. A compliance
  certification is about its account's holder: under a program that keeps ``parties`` private
  it is withheld whole. A project's public document is published as its submitter chose;
- every public document's bytes must hash to its identity, or nothing is published
  (:class:`DocumentAltered`);
- credit issuance is read from the issuing registry's provenance records (origin ``issued``),
  serials per ``serials``;
- credit provenance lists every copy a registry received with credits from another one, checked
  field by field against the issuing registry's own record (``PROVENANCE_CHECKS``): a copy that
  differs or that its issuer never wrote is how a forged or corrupted record shows;
- a certification is late when the registry recorded it so (submitted after March 1 following
  the control period), missing when none was submitted and that day has passed; rows follow
  the program's ``compliance``, accounts its ``parties``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import date

from .judge import Judge
from .records import DocumentRecord, ProvenanceRecord, RegistryRecords
from .tables import WITHHELD, Cell, Report

CERTIFICATION = "compliance-certification"
#: Where a publication keeps the documents' bytes.
DOCUMENTS_DIR = "documents"
#: File extensions by content type; anything else is served as ``.bin`` (a submitted HTML page
#: must not run as part of the site).
EXTENSIONS = {
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/csv": ".csv",
    "application/json": ".json",
    "application/xml": ".xml",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "application/zip": ".zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
}


class DocumentAltered(Exception):
    """A public document's bytes do not hash to its identity: nothing is published."""

    def __init__(self, registry: str, sha256: str, title: str, actual: str) -> None:
        super().__init__(
            f"document {sha256} ({title!r}) of registry {registry}: its stored bytes hash to "
            f"{actual}, not to its identity; they were altered after submission"
        )
        self.registry = registry
        self.sha256 = sha256


def document_file(d: DocumentRecord) -> str:
    return f"{DOCUMENTS_DIR}/{d.sha256}{EXTENSIONS.get(d.content_type, '.bin')}"


def check_documents(records: Iterable[RegistryRecords]) -> None:
    """Every public document's bytes hash to its sha256 (or :class:`DocumentAltered`)."""
    for registry in records:
        for d in registry.documents:
            if not d.public:
                continue
            actual = hashlib.sha256(registry.contents.get(d.sha256, b"")).hexdigest()
            if actual != d.sha256 or d.sha256 not in registry.contents:
                raise DocumentAltered(registry.registry, d.sha256, d.title, actual)


def _program_of(registry: RegistryRecords, d: DocumentRecord) -> str:
    if d.kind == CERTIFICATION:
        return str(d.fact("program") or "")
    return next((p.program for p in registry.projects if p.id == d.subject), "")


def published_documents(
    judge: Judge, records: Iterable[RegistryRecords]
) -> dict[tuple[str, str], DocumentRecord]:
    """The documents a publication shows, by (registry, sha256): the public ones, less the
    certifications whose account's holder the program keeps private."""
    shown: dict[tuple[str, str], DocumentRecord] = {}
    for registry in records:
        for d in registry.documents:
            if not d.public:
                continue
            if d.kind == CERTIFICATION:
                programs = {_program_of(registry, d)} | judge.programs_of(d.subject)
                if judge.policies.refusing("parties", programs):
                    continue
            shown[(registry.registry, d.sha256)] = d
    return shown


def _projects(judge: Judge, records: Sequence[RegistryRecords], report: Report) -> None:
    tally = report.withheld
    for registry in records:
        for p in registry.projects:
            report.rows.append(
                {
                    "registry": p.registry,
                    "project": p.id,
                    "name": judge.text_of(p.name, p.sponsor, p.program, tally, "project name"),
                    "sponsor": judge.party(p.sponsor, p.program, tally),
                    "category": p.category,
                    "kind": p.kind,
                    "unit_type": p.unit_type,
                    "program": p.program,
                    "location": p.location,
                    "capacity_mw": p.capacity_mw or None,
                    "status": p.status,
                    "registered_at": p.registered_at,
                }
            )
    report.rows.sort(key=lambda r: (str(r["registry"]), str(r["project"])))


def _conflict(judge: Judge, registry: RegistryRecords, name: str, report: Report) -> str:
    if any(p.id == name for p in registry.projects):
        return name
    return str(judge.holder(name, report.withheld))


def _verifiers(judge: Judge, records: Sequence[RegistryRecords], report: Report) -> None:
    for registry in records:
        for a in registry.verifiers:
            conflicts = [_conflict(judge, registry, c, report) for c in a.conflicts]
            report.rows.append(
                {
                    "registry": a.registry,
                    "verifier": a.verifier,
                    "name": a.name,
                    "categories": ", ".join(a.categories),
                    "valid_from": a.valid_from,
                    "valid_to": a.valid_to,
                    "conflicts": ", ".join(conflicts) or None,
                    "recorded_at": a.recorded_at,
                }
            )
    report.rows.sort(key=lambda r: tuple(str(r[c]) for c in ("registry", "verifier")))


def _documents(judge: Judge, records: Sequence[RegistryRecords], report: Report) -> None:
    shown = published_documents(judge, records)
    for registry in records:
        for d in registry.documents:
            if not d.public:
                continue  # not counted either: a private document is no one's to mention
            if (registry.registry, d.sha256) not in shown:
                program = _program_of(registry, d)
                report.withheld.add(
                    judge.policies.refusing("parties", {program} | judge.programs_of(d.subject)),
                    "document",
                )
                continue
            path = document_file(d)
            report.files[path] = registry.contents[d.sha256]
            report.rows.append(
                {
                    "registry": d.registry,
                    "kind": d.kind,
                    "subject": d.subject,
                    "title": d.title,
                    "version": d.version,
                    "series": d.series,
                    "status": d.status,
                    "reviewer": d.reviewer or None,
                    "submitted_at": d.submitted_at,
                    "reviewed_at": d.reviewed_at or None,
                    "content_type": d.content_type,
                    "size": d.size,
                    "sha256": d.sha256,
                    "file": path,
                }
            )
    report.rows.sort(key=lambda r: tuple(str(r[c]) for c in ("registry", "submitted_at", "sha256")))


def _credit_issuance(judge: Judge, records: Sequence[RegistryRecords], report: Report) -> None:
    shown = published_documents(judge, records)
    for registry in records:
        for p in registry.provenance:
            if p.origin != "issued":  # a receiving registry's copy: counted where it was issued
                continue
            cells, _key = judge.serials(p.serials, report.withheld)
            report.rows.append(
                {
                    "issued_at": p.issued_at,
                    "registry": p.registry,
                    "project": p.project,
                    "program": p.serials.program,
                    "unit_type": p.serials.unit_type,
                    "vintage": p.serials.vintage,
                    **cells,
                    "monitoring_period": p.monitoring_period,
                    "verifier": p.verifier,
                    "report_sha256": p.report_sha256
                    if (p.registry, p.report_sha256) in shown
                    else None,
                }
            )
    report.rows.sort(key=lambda r: tuple(str(r[c]) for c in ("project", "issued_at", "registry")))


#: What a received provenance record's ``check`` says, against its issuing registry's record.
AGREES = "agrees"
PROVENANCE_CHECKS = {
    AGREES: "the issuing registry holds the same record",
    "differs": "the issuing registry's record of that report differs (the fields are named)",
    "unknown to its issuer": "the issuing registry has no record of that verification report",
    "issuer not read": "the issuing registry is not among the registries this publication read",
}
#: The fields a copy must carry unchanged: all but its holding registry and origin, which are
#: its own, and the report hash it is matched by.
_OWN = {"registry", "origin", "report_sha256"}
_COPIED = tuple(f.name for f in fields(ProvenanceRecord) if f.name not in _OWN)


def provenance_check(
    copy: ProvenanceRecord,
    read: Collection[str],
    originals: Mapping[tuple[str, str], ProvenanceRecord],
) -> str:
    """A received copy against its issuer's record of the same verification report.
    ``read``: the registries this publication read; ``originals``: their own records (origin
    ``issued``) by registry and report hash."""
    issuer = copy.serials.issuer
    if issuer not in read:
        return "issuer not read"
    original = originals.get((issuer, copy.report_sha256))
    if original is None:
        return "unknown to its issuer"
    differing = [f for f in _COPIED if getattr(copy, f) != getattr(original, f)]
    return f"differs: {', '.join(differing)}" if differing else AGREES


def _credit_provenance(judge: Judge, records: Sequence[RegistryRecords], report: Report) -> None:
    shown = published_documents(judge, records)
    read = {r.registry for r in records}
    originals = {
        (r.registry, p.report_sha256): p
        for r in records
        for p in r.provenance
        if p.origin == "issued"
    }
    for registry in records:
        for p in registry.provenance:
            if p.origin == "issued":  # the original: the credit-issuance report lists it
                continue
            cells, _key = judge.serials(p.serials, report.withheld)
            issuer = p.serials.issuer
            report.rows.append(
                {
                    "registry": p.registry,
                    "issuer": issuer,
                    "project": p.project,
                    "program": p.serials.program,
                    "unit_type": p.serials.unit_type,
                    "vintage": p.serials.vintage,
                    **cells,
                    "verifier": p.verifier,
                    "report_sha256": p.report_sha256
                    if (issuer, p.report_sha256) in shown
                    else None,
                    "check": provenance_check(p, read, originals),
                }
            )
    report.rows.sort(key=lambda r: tuple(str(r[c]) for c in ("registry", "issuer", "project")))


def provenance_findings(reports: Iterable[Report]) -> list[dict[str, Cell]]:
    """The rows of ``credit-provenance`` whose check is not ``agrees``: what the publisher is
    told beside the pages."""
    return [
        row
        for report in reports
        if report.name == "credit-provenance"
        for row in report.rows
        if row["check"] != AGREES
    ]


def due_of(period: str) -> str:
    """March 1 after the control period's last year (``2025`` or ``2024-2026``)."""
    return date(int(period[-4:]) + 1, 3, 1).isoformat()


def _certifications(judge: Judge, records: Sequence[RegistryRecords], report: Report) -> None:
    shown = published_documents(judge, records)
    for registry in records:
        first: dict[tuple[str, str, str], DocumentRecord] = {}
        for d in sorted(registry.documents, key=lambda d: d.submitted_at):
            if d.kind == CERTIFICATION:
                key = (d.subject, str(d.fact("program")), str(d.fact("period")))
                first.setdefault(key, d)
        for e in registry.emissions:
            cert = first.get((e.account, e.program, e.period))
            due = str(cert.fact("due")) if cert is not None else due_of(e.period)
            if cert is not None:
                status = "late" if cert.fact("late") is True else ""
            else:
                status = "missing" if judge.as_of > due else ""
            if not status:
                continue
            if not judge.policies.of(e.program).compliance:
                report.withheld.add([e.program], "compliance")
                continue
            published = cert is not None and (registry.registry, cert.sha256) in shown
            row: dict[str, Cell] = {
                "registry": e.registry,
                "program": e.program,
                "period": e.period,
                "source_id": e.source_id or None,
                "account": judge.party(e.account, e.program, report.withheld),
                "due": due,
                "status": status,
                "submitted_at": cert.submitted_at if cert is not None else None,
                "document": cert.sha256 if cert is not None and published else None,
            }
            report.rows.append(row)
    report.rows.sort(
        key=lambda r: tuple("" if r[c] is WITHHELD else str(r[c]) for c in ("program", "period"))
    )


CREDIT_BUILDERS: dict[str, Callable[[Judge, Sequence[RegistryRecords], Report], None]] = {
    "projects": _projects,
    "verifiers": _verifiers,
    "documents": _documents,
    "credit-issuance": _credit_issuance,
    "credit-provenance": _credit_provenance,
    "certifications": _certifications,
}


__all__ = [
    "AGREES",
    "CREDIT_BUILDERS",
    "DOCUMENTS_DIR",
    "PROVENANCE_CHECKS",
    "DocumentAltered",
    "check_documents",
    "document_file",
    "due_of",
    "provenance_check",
    "provenance_findings",
    "published_documents",
]
