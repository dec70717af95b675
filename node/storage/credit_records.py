"""Persistence of projects, accreditations, documents, reviews and provenance.

Reached as ``tx.credits`` inside a ledger transaction; domain objects in and out. Documents,
their bytes, reviews, accreditations and provenance are only ever inserted (the schema's
triggers refuse anything else); a project's status is the one record updated in place.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.engine import Row

from ..domain.credits import Accreditation, Project, ProjectStatus
from ..domain.documents import Document, DocumentKind, ReviewStatus
from ..domain.provenance import Provenance
from ..domain.serials import SerialRange, UnitBlock, UnitClass
from . import schema as t


class CreditRecords:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- projects ------------------------------------------------------------------------------

    def next_project_number(self) -> int:
        p = t.projects
        return (
            int(self.conn.execute(select(func.coalesce(func.max(p.c.number), 0))).scalar_one()) + 1
        )

    def insert_project(self, project: Project, number: int, seq: int) -> None:
        self.conn.execute(
            insert(t.projects).values(
                id=project.id,
                number=number,
                name=project.name,
                sponsor_account_id=project.sponsor_account_id,
                category=project.category,
                program=project.program,
                location=project.location,
                capacity_mw=project.capacity_mw,
                baseline=project.baseline,
                status=project.status.value,
                registered_seq=seq,
            )
        )

    def set_project_status(self, project_id: str, status: ProjectStatus) -> None:
        p = t.projects
        self.conn.execute(update(p).where(p.c.id == project_id).values(status=status.value))

    def project(self, project_id: str) -> Project | None:
        rows = self._projects(t.projects.c.id == project_id)
        return rows[0] if rows else None

    def projects(self) -> list[Project]:
        return self._projects(None)

    def _projects(self, where: Any) -> list[Project]:
        p, a = t.projects, t.accounts
        query = (
            select(p, a.c.number.label("sponsor"))
            .join(a, a.c.id == p.c.sponsor_account_id)
            .order_by(p.c.number)
        )
        if where is not None:
            query = query.where(where)
        return [
            Project(
                id=r.id,
                name=r.name,
                sponsor_account_id=r.sponsor_account_id,
                sponsor=r.sponsor,
                category=r.category,
                program=r.program,
                location=r.location,
                capacity_mw=r.capacity_mw,
                baseline=r.baseline,
                status=ProjectStatus(r.status),
            )
            for r in self.conn.execute(query)
        ]

    # -- verifiers -----------------------------------------------------------------------------

    def insert_accreditation(self, accreditation: Accreditation, seq: int) -> None:
        a = accreditation
        self.conn.execute(
            insert(t.accreditations).values(
                verifier=a.verifier,
                name=a.name,
                person=a.person,
                categories=json.dumps(list(a.categories)),
                valid_from=a.valid_from.isoformat(),
                valid_to=a.valid_to.isoformat(),
                conflicts=json.dumps(list(a.conflicts)),
                seq=seq,
            )
        )

    def accreditations(self, verifier: str | None = None) -> list[Accreditation]:
        a = t.accreditations
        query = select(a).order_by(a.c.verifier, a.c.id)
        if verifier is not None:
            query = query.where(a.c.verifier == verifier)
        return [
            Accreditation(
                verifier=r.verifier,
                name=r.name,
                person=r.person,
                categories=tuple(json.loads(r.categories)),
                valid_from=date.fromisoformat(r.valid_from),
                valid_to=date.fromisoformat(r.valid_to),
                conflicts=tuple(json.loads(r.conflicts)),
            )
            for r in self.conn.execute(query)
        ]

    # -- documents -----------------------------------------------------------------------------

    def insert_document(self, document: Document, content: bytes, seq: int) -> None:
        d = document
        self.conn.execute(
            insert(t.documents).values(
                sha256=d.sha256,
                kind=d.kind.value,
                subject=d.subject,
                title=d.title,
                content_type=d.content_type,
                size=d.size,
                public=d.public,
                series=d.series,
                version=d.version,
                supersedes=d.supersedes,
                submitted_by=d.submitted_by,
                submitted_at=d.submitted_at,
                facts=json.dumps(dict(d.facts), sort_keys=True),
                seq=seq,
            )
        )
        self.conn.execute(insert(t.document_contents).values(sha256=d.sha256, content=content))

    def insert_review(
        self, sha256: str, status: ReviewStatus, reviewer: str, reasons: str, at: str, seq: int
    ) -> None:
        self.conn.execute(
            insert(t.document_reviews).values(
                sha256=sha256,
                status=status.value,
                reviewer=reviewer,
                reasons=reasons,
                reviewed_at=at,
                seq=seq,
            )
        )

    def document(self, sha256: str) -> Document | None:
        found = self._documents(t.documents.c.sha256 == sha256)
        return found[0] if found else None

    def documents(
        self, *, subject: str | None = None, kind: DocumentKind | None = None
    ) -> list[Document]:
        d = t.documents
        where = []
        if subject is not None:
            where.append(d.c.subject == subject)
        if kind is not None:
            where.append(d.c.kind == kind.value)
        return self._documents(*where)

    def latest_in_series(self, series: str) -> Document | None:
        found = self._documents(t.documents.c.series == series)
        return max(found, key=lambda doc: doc.version) if found else None

    def content(self, sha256: str) -> bytes | None:
        c = t.document_contents
        value = self.conn.execute(select(c.c.content).where(c.c.sha256 == sha256)).scalar()
        return None if value is None else bytes(value)

    def _documents(self, *where: Any) -> list[Document]:
        d, r = t.documents, t.document_reviews
        rows = list(self.conn.execute(select(d).where(*where).order_by(d.c.seq, d.c.sha256)))
        if not rows:
            return []
        reviews: dict[str, Row[Any]] = {}
        query = select(r).where(r.c.sha256.in_([row.sha256 for row in rows])).order_by(r.c.id)
        for review in self.conn.execute(query):
            reviews[review.sha256] = review  # the last review is the status
        return [_document(row, reviews.get(row.sha256)) for row in rows]

    # -- provenance ----------------------------------------------------------------------------

    def insert_provenance(self, record: Provenance, origin: str, seq: int) -> None:
        i = record.issuance
        self.conn.execute(
            insert(t.provenance).values(
                issuer=i.unit_class.issuer,
                program=i.unit_class.program,
                unit_type=i.unit_class.unit_type,
                vintage=i.unit_class.vintage,
                start_serial=i.serials.start,
                end_serial=i.serials.end,
                **{k: v for k, v in record.to_dict().items() if k != "issuance"},
                origin=origin,
                seq=seq,
            )
        )

    def provenance_of(self, block: UnitBlock) -> Provenance | None:
        """The issuance record a credit block descends from, if known here."""
        p, uc = t.provenance, block.unit_class
        row = self.conn.execute(
            select(p).where(
                p.c.issuer == uc.issuer,
                p.c.program == uc.program,
                p.c.unit_type == uc.unit_type,
                p.c.vintage == uc.vintage,
                p.c.start_serial <= block.serials.start,
                p.c.end_serial >= block.serials.end,
            )
        ).first()
        return None if row is None else _provenance(row)

    def provenance_by_report(self, report_sha256: str) -> Provenance | None:
        p = t.provenance
        row = self.conn.execute(select(p).where(p.c.report_sha256 == report_sha256)).first()
        return None if row is None else _provenance(row)

    def issued_for_project(self, project_id: str, issuer: str) -> list[Provenance]:
        p = t.provenance
        rows = self.conn.execute(
            select(p).where(p.c.project == project_id, p.c.issuer == issuer).order_by(p.c.id)
        )
        return [_provenance(r) for r in rows]

    def all_provenance(self) -> list[tuple[Provenance, str]]:
        p = t.provenance
        return [(_provenance(r), r.origin) for r in self.conn.execute(select(p).order_by(p.c.id))]


def _document(row: Row[Any], review: Row[Any] | None) -> Document:
    return Document(
        sha256=row.sha256,
        kind=DocumentKind(row.kind),
        subject=row.subject,
        title=row.title,
        content_type=row.content_type,
        size=row.size,
        public=bool(row.public),
        series=row.series,
        version=row.version,
        supersedes=row.supersedes,
        submitted_by=row.submitted_by,
        submitted_at=row.submitted_at,
        facts=json.loads(row.facts),
        status=ReviewStatus(review.status) if review else ReviewStatus.SUBMITTED,
        reviewer=review.reviewer if review else None,
        reasons=review.reasons if review else "",
        reviewed_at=review.reviewed_at if review else None,
    )


def _provenance(row: Row[Any]) -> Provenance:
    uc = UnitClass(row.issuer, row.program, row.unit_type, row.vintage)
    return Provenance(
        issuance=UnitBlock(uc, SerialRange(row.start_serial, row.end_serial)),
        project=row.project,
        project_name=row.project_name,
        category=row.category,
        sponsor=row.sponsor,
        report_sha256=row.report_sha256,
        verifier=row.verifier,
        verifier_name=row.verifier_name,
        monitoring_period=row.monitoring_period,
        issued_at=row.issued_at,
    )
