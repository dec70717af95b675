"""What a registry node says about itself for the public reports, as plain values.

One :class:`RegistryRecords` per registry, read from its ``PublicRecords`` stream
(:mod:`.stream`). Nothing here is public yet: the disclosure policies (:mod:`.policy`) decide
what of it the reports (:mod:`.build`) may show. No I/O, no gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Price:
    """A price per unit as its source registry recorded it: the canonical amount (``12.50``,
    checked by the node when the transfer was made, regfed.node.domain.prices) and currency."""

    amount: str
    currency: str


@dataclass(frozen=True, slots=True)
class Serials:
    """A block of units: one class, serials ``start`` to ``end`` inclusive."""

    issuer: str
    program: str
    unit_type: str
    vintage: int
    start: int
    end: int

    @property
    def quantity(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True, slots=True)
class AccountRecord:
    registry: str
    number: str
    type: str
    purpose: str
    set_aside: str
    name: str
    status: str
    source_id: str
    opened_at: str
    #: Every program whose units it held, sent or received, or whose emissions it reported.
    programs: tuple[str, ...]
    #: (person, role), as the node lists them.
    representatives: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class EmissionRecord:
    registry: str
    account: str
    source_id: str
    program: str
    period: str
    tons: int


@dataclass(frozen=True, slots=True)
class ComplianceRecord:
    registry: str
    account: str
    source_id: str
    program: str
    period: str
    emissions: int
    obligation: int
    surrendered: int
    shortfall: int
    deducted: bool


@dataclass(frozen=True, slots=True)
class IssuanceRecord:
    registry: str
    serials: Serials
    account: str
    issued_at: str
    seq: int


@dataclass(frozen=True, slots=True)
class MovementRecord:
    """One block moved inside a registry: ``allocation``, ``transfer`` or ``retirement``."""

    registry: str
    kind: str
    seq: int
    recorded_at: str
    operation_id: str
    from_account: str
    to_account: str
    serials: Serials
    price: Price | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class InterstateRecord:
    """One block of an interstate transfer, as one of its two registries recorded it."""

    registry: str
    transfer_id: str
    side: str
    status: str
    settled: bool
    from_registry: str
    from_account: str
    to_registry: str
    to_account: str
    serials: Serials
    created_at: str
    updated_at: str
    price: Price | None = None


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    """A project that earns credits; ``sponsor`` is its sponsor's general account number."""

    registry: str
    id: str
    name: str
    sponsor: str
    category: str
    kind: str
    unit_type: str
    program: str
    location: str
    capacity_mw: str
    status: str
    registered_at: str


@dataclass(frozen=True, slots=True)
class AccreditationRecord:
    """One accreditation of a verifier, as recorded (a verifier may have several)."""

    registry: str
    verifier: str
    name: str
    categories: tuple[str, ...]
    valid_from: str
    valid_to: str
    conflicts: tuple[str, ...]
    recorded_at: str


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """What a registry says about a document; its bytes (public ones only) are in
    :attr:`RegistryRecords.contents`, unchecked until published."""

    registry: str
    sha256: str
    kind: str
    subject: str
    title: str
    content_type: str
    size: int
    public: bool
    series: str
    version: int
    supersedes: str
    submitted_at: str
    status: str
    reviewer: str
    reviewed_at: str
    #: The kind's facts as submitted (a JSON object's values).
    facts: tuple[tuple[str, str | int | bool], ...] = ()

    def fact(self, name: str) -> str | int | bool | None:
        return dict(self.facts).get(name)


@dataclass(frozen=True, slots=True)
class ProvenanceRecord:
    """Where a credit block came from: ``origin`` is ``issued`` at the issuing registry."""

    registry: str
    serials: Serials
    project: str
    project_name: str
    category: str
    sponsor: str
    report_sha256: str
    verifier: str
    verifier_name: str
    monitoring_period: str
    issued_at: str
    origin: str


@dataclass
class RegistryRecords:
    """Everything one registry streamed, from one consistent read at ``journal_position``."""

    registry: str
    journal_position: int
    read_at: str
    accounts: list[AccountRecord] = field(default_factory=list)
    emissions: list[EmissionRecord] = field(default_factory=list)
    compliance: list[ComplianceRecord] = field(default_factory=list)
    issuances: list[IssuanceRecord] = field(default_factory=list)
    movements: list[MovementRecord] = field(default_factory=list)
    interstate: list[InterstateRecord] = field(default_factory=list)
    projects: list[ProjectRecord] = field(default_factory=list)
    verifiers: list[AccreditationRecord] = field(default_factory=list)
    documents: list[DocumentRecord] = field(default_factory=list)
    #: The bytes of the public documents, by sha256, as the registry stored them.
    contents: dict[str, bytes] = field(default_factory=dict)
    provenance: list[ProvenanceRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One reconciliation run as the oversight node keeps it; ``verified`` when its signed
    result was checked against the oversight key pinned in the directory (a run without a
    result, running or failed, has none to check)."""

    run_id: str
    sequence: int
    trigger: str
    status: str
    started_at: str
    finished_at: str
    registries: tuple[str, ...]
    missing: tuple[str, ...]
    discrepancies: int
    #: Discrepancies of the signed result by kind (empty without one).
    kinds: tuple[tuple[str, int], ...]
    verified: bool


__all__ = [
    "AccountRecord",
    "AccreditationRecord",
    "ComplianceRecord",
    "DocumentRecord",
    "EmissionRecord",
    "InterstateRecord",
    "IssuanceRecord",
    "MovementRecord",
    "Price",
    "ProjectRecord",
    "ProvenanceRecord",
    "RegistryRecords",
    "RunRecord",
    "Serials",
]
