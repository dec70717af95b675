"""Documents as first-class records: content-addressed, immutable, versioned, reviewed.

A document's identity is the SHA-256 of its bytes. Once submitted, neither the bytes nor what
was said about them change; a correction is a new version (new bytes, new identity) in the same
series, and only while no version of that series is approved. Reviews are appended, never
rewritten: a document's status is its last review.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from .errors import DocumentImmutable, DocumentTampered, InvalidArgument, ReviewConflict

#: Larger documents belong in a document system; the registry keeps what it must publish.
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
SHA256 = re.compile(r"^[0-9a-f]{64}$", re.ASCII)
CONTENT_TYPE = re.compile(r"^[a-z]+/[a-z0-9.+-]+$", re.ASCII)


class DocumentKind(StrEnum):
    EMV_PLAN = "emv-plan"
    MV_REPORT = "mv-report"
    VERIFICATION_REPORT = "verification-report"
    CONSISTENCY_APPLICATION = "consistency-application"
    COMPLIANCE_CERTIFICATION = "compliance-certification"


#: Kinds whose subject is a project (the others: a source's compliance account).
PROJECT_KINDS = frozenset(
    {
        DocumentKind.EMV_PLAN,
        DocumentKind.MV_REPORT,
        DocumentKind.VERIFICATION_REPORT,
        DocumentKind.CONSISTENCY_APPLICATION,
    }
)


class ReviewStatus(StrEnum):
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under-review"
    APPROVED = "approved"
    REJECTED = "rejected"


REVIEW_TRANSITIONS: Mapping[ReviewStatus, frozenset[ReviewStatus]] = {
    ReviewStatus.SUBMITTED: frozenset(
        {ReviewStatus.UNDER_REVIEW, ReviewStatus.APPROVED, ReviewStatus.REJECTED}
    ),
    ReviewStatus.UNDER_REVIEW: frozenset({ReviewStatus.APPROVED, ReviewStatus.REJECTED}),
    ReviewStatus.APPROVED: frozenset(),
    ReviewStatus.REJECTED: frozenset(),
}


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def check_content(content: bytes) -> str:
    if not content:
        raise InvalidArgument("a document has content: the file is empty")
    if len(content) > MAX_DOCUMENT_BYTES:
        raise InvalidArgument(
            f"document of {len(content):,} bytes is over the limit of {MAX_DOCUMENT_BYTES:,}",
            size=len(content),
        )
    return digest(content)


def require_intact(sha256: str, content: bytes) -> bytes:
    """The stored bytes, if they still hash to the document's identity."""
    actual = digest(content)
    if actual != sha256:
        raise DocumentTampered(
            f"document {sha256} was altered after submission: its stored bytes hash to {actual}",
            document=sha256,
            stored_hash=actual,
        )
    return content


@dataclass(frozen=True, slots=True)
class MonitoringPeriod:
    """The days a monitoring or verification report covers, inclusive."""

    first: date
    last: date

    @classmethod
    def parse(cls, text: str) -> MonitoringPeriod:
        first, sep, last = text.partition("..")
        if not sep:
            raise InvalidArgument(f"period {text!r} is FIRST..LAST, e.g. 2025-01-01..2025-12-31")
        try:
            period = cls(date.fromisoformat(first), date.fromisoformat(last))
        except ValueError:
            raise InvalidArgument(f"period {text!r}: days are YYYY-MM-DD") from None
        if period.last < period.first:
            raise InvalidArgument(f"period {text!r} ends before it starts")
        if period.first.year != period.last.year:
            raise InvalidArgument(
                f"period {text!r} spans years: credits have one vintage, so report each year "
                "separately"
            )
        return period

    def overlaps(self, other: MonitoringPeriod) -> bool:
        return self.first <= other.last and other.first <= self.last

    @property
    def vintage(self) -> int:
        return self.last.year

    def __str__(self) -> str:
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


def certification_due(period_last_year: int) -> date:
    """A compliance certification report is due by March 1 after the control period."""
    return date(period_last_year + 1, 3, 1)


@dataclass(frozen=True, slots=True)
class Document:
    sha256: str
    kind: DocumentKind
    #: A project id, or the compliance account a certification is for.
    subject: str
    title: str
    content_type: str
    size: int
    public: bool
    #: The first version's identity: the document across its versions.
    series: str
    version: int
    supersedes: str | None
    submitted_by: str
    submitted_at: str
    #: What the kind requires: a report's period, verifier, quantity and the report it
    #: verifies; a certification's program, control period and responsible official.
    facts: Mapping[str, Any] = field(default_factory=dict)
    status: ReviewStatus = ReviewStatus.SUBMITTED
    reviewer: str | None = None
    reasons: str = ""
    reviewed_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "kind": self.kind.value,
            "subject": self.subject,
            "title": self.title,
            "content_type": self.content_type,
            "size": self.size,
            "public": self.public,
            "series": self.series,
            "version": self.version,
            "supersedes": self.supersedes,
            "submitted_by": self.submitted_by,
            "submitted_at": self.submitted_at,
            **dict(self.facts),
            "status": self.status.value,
            "reviewer": self.reviewer,
            "reasons": self.reasons,
            "reviewed_at": self.reviewed_at,
        }


def check_review(document: Document, to: ReviewStatus, reasons: str) -> None:
    if to is ReviewStatus.SUBMITTED:
        raise InvalidArgument("a review decides under-review, approved or rejected")
    if to not in REVIEW_TRANSITIONS[document.status]:
        raise ReviewConflict(
            f"document {document.sha256} is {document.status.value}; it cannot become "
            f"{to.value}" + (" (reviews of it are final)" if document.status in FINAL else ""),
            document=document.sha256,
            status=document.status.value,
        )
    if to is ReviewStatus.REJECTED and not reasons.strip():
        raise InvalidArgument("a rejection gives its reasons (--reasons)")


FINAL = frozenset({ReviewStatus.APPROVED, ReviewStatus.REJECTED})


def check_resubmission(previous: Document, kind: DocumentKind, subject: str) -> None:
    """A new version may follow ``previous`` only for the same kind and subject, and only
    while it is not approved: an approved document is final."""
    if previous.status is ReviewStatus.APPROVED:
        raise DocumentImmutable(
            f"document {previous.sha256} (version {previous.version} of series "
            f"{previous.series}) is approved and final; it cannot be replaced",
            document=previous.sha256,
        )
    if (previous.kind, previous.subject) != (kind, subject):
        raise InvalidArgument(
            f"a new version of {previous.sha256} is a {previous.kind.value} for "
            f"{previous.subject}, not a {kind.value} for {subject}"
        )


def submitted_day(submitted_at: str) -> date:
    return datetime.fromisoformat(submitted_at.replace("Z", "+00:00")).date()
