"""Requests to the ledger. Each carries a client-made ``operation_id`` (idempotency key).

The same id submitted again with the same content is answered from the stored result and
changes nothing; the same id with different content is refused (``IDEMPOTENCY_CONFLICT``).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from .errors import InvalidArgument
from .prices import Price
from .serials import UnitBlock

_OPERATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", re.ASCII)


def checked_text(value: str, what: str, limit: int, *, required: bool = True) -> str:
    """Free text a person typed: at most ``limit`` characters, no control characters (NUL
    included), and not blank when required. Both engines then store exactly the same thing:
    SQLite would keep an over-long name that PostgreSQL refuses."""
    if required and not value.strip():
        raise InvalidArgument(f"{what} must not be empty")
    if len(value) > limit:
        raise InvalidArgument(f"{what} is {len(value)} characters long; at most {limit}")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise InvalidArgument(f"{what} must not contain control characters")
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, kw_only=True)
class Command:
    kind: ClassVar[str] = "command"
    operation_id: str

    def __post_init__(self) -> None:
        if not _OPERATION_ID.fullmatch(self.operation_id):
            raise InvalidArgument(
                f"operation id {self.operation_id!r} must be 1-128 of [A-Za-z0-9._:-]",
                operation_id=self.operation_id,
            )

    def content(self) -> dict[str, Any]:
        body = {k: _jsonable(v) for k, v in asdict(self).items() if k != "operation_id"}
        return {"kind": self.kind, **body}

    def fingerprint(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class RepresentativeSpec:
    person: str
    role: str
    rights: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        checked_text(self.person, "a representative's name", 128)


@dataclass(frozen=True, kw_only=True)
class OpenAccount(Command):
    kind: ClassVar[str] = "open-account"
    account_type: str
    name: str
    representatives: tuple[RepresentativeSpec, ...] = ()
    source_id: str | None = None
    purpose: str | None = None
    set_aside: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_text(self.name, "the account name", 200)
        if self.source_id is not None:
            checked_text(self.source_id, "the source id", 64)
        if self.set_aside is not None:
            checked_text(self.set_aside, "the set-aside name", 64)


@dataclass(frozen=True, kw_only=True)
class SetAccountStatus(Command):
    kind: ClassVar[str] = "set-account-status"
    account: str
    status: str
    reason: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_text(self.reason, "the reason", 500, required=False)


@dataclass(frozen=True, kw_only=True)
class AppointRepresentative(Command):
    """Appoint a representative; appointing a new primary or alternate replaces the old one."""

    kind: ClassVar[str] = "appoint-representative"
    account: str
    representative: RepresentativeSpec


@dataclass(frozen=True, kw_only=True)
class RemoveRepresentative(Command):
    kind: ClassVar[str] = "remove-representative"
    account: str
    person: str

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_text(self.person, "a representative's name", 128)


@dataclass(frozen=True, kw_only=True)
class Selection:
    """What to move: a ``quantity`` (with optional filters) or exact ``blocks``."""

    quantity: int | None = None
    program: str | None = None
    unit_type: str | None = None
    vintage: int | None = None
    blocks: tuple[UnitBlock, ...] = ()

    def __post_init__(self) -> None:
        if (self.quantity is None) == (not self.blocks):
            raise InvalidArgument("name either a quantity or serial blocks, not both or neither")
        if self.quantity is not None and self.quantity <= 0:
            raise InvalidArgument(f"quantity must be positive, got {self.quantity}")
        if self.blocks and (self.program or self.unit_type or self.vintage is not None):
            raise InvalidArgument("filters apply to a quantity; blocks already name their class")


@dataclass(frozen=True, kw_only=True)
class Issue(Command):
    kind: ClassVar[str] = "issue"
    program: str
    unit_type: str
    vintage: int
    quantity: int
    to_account: str
    #: First serial; by default the next serial after every earlier issuance of the class.
    start: int | None = None


@dataclass(frozen=True, kw_only=True)
class Transfer(Command):
    """Move units between two accounts of this registry (``allocation`` from a state account)."""

    kind: ClassVar[str] = "transfer"
    from_account: str
    to_account: str
    selection: Selection
    memo: str = ""
    #: The price per unit agreed, if the parties gave one (the source registry reports it).
    price: Price | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_text(self.memo, "the memo", 500, required=False)
        if self.price is not None and not isinstance(self.price, Price):
            raise InvalidArgument("a transfer's price is a Price (see Price.parse)")

    def content(self) -> dict[str, Any]:
        body = super().content()
        # Absent rather than null: a transfer stored before prices existed keeps its
        # fingerprint, so retrying it with its operation id still answers the stored result.
        if self.price is None:
            body.pop("price")
        return body


@dataclass(frozen=True, kw_only=True)
class Retire(Command):
    kind: ClassVar[str] = "retire"
    from_account: str
    selection: Selection
    reason: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_text(self.reason, "the reason", 500, required=False)


def _without_absent(body: dict[str, Any], *names: str) -> dict[str, Any]:
    """Optional fields added later are left out while unset, so an operation stored before
    they existed keeps its fingerprint (a retry with its id still gets the stored answer)."""
    for name in names:
        if body.get(name) in (None, ()):
            body.pop(name, None)
    return body


@dataclass(frozen=True, kw_only=True)
class RecordEmissions(Command):
    """Tons under a mass-based program; under a rate-based one, ``tons`` is CO2 in lb and
    ``mwh`` and ``standard`` (lb/MWh) are required."""

    kind: ClassVar[str] = "record-emissions"
    account: str
    program: str
    period: str
    tons: int
    mwh: int | None = None
    standard: str | None = None

    def content(self) -> dict[str, Any]:
        return _without_absent(super().content(), "mwh", "standard")


@dataclass(frozen=True, kw_only=True)
class DeductCompliance(Command):
    """Deduct for every source with emissions in the period, or only ``accounts``; with
    ``blocks``, exactly those units of the one account named (a source choosing what it
    surrenders), within the program's share limits."""

    kind: ClassVar[str] = "deduct-compliance"
    program: str
    period: str
    accounts: tuple[str, ...] = field(default_factory=tuple)
    blocks: tuple[UnitBlock, ...] = ()

    def content(self) -> dict[str, Any]:
        return _without_absent(super().content(), "blocks")


@dataclass(frozen=True, kw_only=True)
class RegisterProject(Command):
    kind: ClassVar[str] = "register-project"
    sponsor_account: str
    name: str
    category: str
    program: str
    location: str
    capacity_mw: str | None = None
    baseline: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_text(self.name, "the project name", 200)
        checked_text(self.location, "the location", 200)
        checked_text(self.baseline, "the baseline", 2000, required=False)


@dataclass(frozen=True, kw_only=True)
class SetProjectStatus(Command):
    kind: ClassVar[str] = "set-project-status"
    project: str
    status: str
    reason: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_text(self.reason, "the reason", 500, required=False)


@dataclass(frozen=True, kw_only=True)
class AccreditVerifier(Command):
    kind: ClassVar[str] = "accredit-verifier"
    verifier: str
    name: str
    person: str
    categories: tuple[str, ...]
    valid_from: str
    valid_to: str
    conflicts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_text(self.name, "the verifier's name", 200)
        checked_text(self.person, "the verifier's person id", 128)


@dataclass(frozen=True, kw_only=True)
class SubmitDocument(Command):
    """Submit a document's bytes. ``content_sha256`` is what the submitter computed: the
    registry refuses bytes that do not match it (damaged on the way)."""

    kind: ClassVar[str] = "submit-document"
    document_kind: str
    subject: str
    title: str
    content_sha256: str
    content_type: str = "application/pdf"
    public: bool = True
    supersedes: str | None = None
    #: Reports: ``period`` (FIRST..LAST); verification reports also ``verifier``, ``quantity``
    #: and ``mv_report`` (the hash of the report verified). Certifications: ``program``,
    #: ``period`` (control period) and ``official`` (the responsible official who signs).
    facts: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_text(self.title, "the title", 200)


@dataclass(frozen=True, kw_only=True)
class ReviewDocument(Command):
    kind: ClassVar[str] = "review-document"
    document: str
    decision: str
    reasons: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_text(self.reasons, "the reasons", 2000, required=False)


@dataclass(frozen=True, kw_only=True)
class GatewayStep(Command):
    """One step of an interstate transfer applied to this ledger (escrow, pin, credit, ...).

    Its operation id is derived from the transfer id and the step, so a step is applied once.
    """

    kind: ClassVar[str] = "gateway-step"
    transfer_id: str
    step: str


@dataclass(frozen=True, kw_only=True)
class ApplyVerdict(Command):
    """Apply a verified reconciliation verdict: quarantine the registry's disputed ``blocks``,
    or, for a clean run (``release``), release every quarantined block.

    Its operation id is derived from the run id, so a verdict fetched twice applies once.
    """

    kind: ClassVar[str] = "apply-verdict"
    run_id: str
    sequence: int
    status: str
    release: bool
    blocks: tuple[UnitBlock, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sequence <= 0:
            raise InvalidArgument(f"a verdict's sequence is positive, got {self.sequence}")
        if self.release and self.blocks:
            raise InvalidArgument("a releasing verdict names no disputed blocks")
