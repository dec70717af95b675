"""Typed refusals with stable codes.

Every refusal the ledger can give is a subclass of :class:`RegistryError` with a stable string
``code`` and a stable number (documented in ``docs/errors.md``; a test keeps the two in step).
Errors name what they refuse: the account, the blocks, the operation id. A refusal changes
nothing: the unit of work that raised it is rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class RegistryError(Exception):
    """Base of every refusal. ``retryable`` says whether the same request may succeed later."""

    code: ClassVar[str] = "REGISTRY_ERROR"
    number: ClassVar[int] = 1000
    retryable: ClassVar[bool] = False
    hint: ClassVar[str] = ""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "number": self.number, "message": self.message}
        if self.details:
            out["details"] = self.details
        if self.hint:
            out["hint"] = self.hint
        return out

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidArgument(RegistryError):
    code = "INVALID_ARGUMENT"
    number = 1001
    hint = "Check the request's fields against `regfed --help` or docs/ledger.md."


class AccountNumberMalformed(RegistryError):
    code = "ACCOUNT_NUMBER_MALFORMED"
    number = 1101
    hint = "Account numbers look like PA-000017-49: registry code, six digits, two check digits."


class AccountNumberCheckFailed(RegistryError):
    code = "ACCOUNT_NUMBER_CHECK_FAILED"
    number = 1102
    hint = "The check digits do not match: the number was probably mistyped; copy it again."


class AccountInOtherRegistry(RegistryError):
    code = "ACCOUNT_IN_OTHER_REGISTRY"
    number = 1103
    hint = "Interstate transfers go through the federation gateway, not the local ledger."


class AccountNotFound(RegistryError):
    code = "ACCOUNT_NOT_FOUND"
    number = 1104


class AccountClosed(RegistryError):
    code = "ACCOUNT_CLOSED"
    number = 1105


class AccountRestricted(RegistryError):
    code = "ACCOUNT_RESTRICTED"
    number = 1106
    hint = "The registry administrator can lift the restriction."


class AccountNotEmpty(RegistryError):
    code = "ACCOUNT_NOT_EMPTY"
    number = 1107
    hint = "Transfer or retire the remaining units before closing the account."


class AccountTypeMismatch(RegistryError):
    code = "ACCOUNT_TYPE_MISMATCH"
    number = 1108


class SourceAlreadyHasAccount(RegistryError):
    code = "SOURCE_ALREADY_HAS_ACCOUNT"
    number = 1109


class ProgramForbidsSend(RegistryError):
    code = "PROGRAM_FORBIDS_SEND"
    number = 1110
    hint = "Under this program only the state's compliance deduction removes units from it."


class NotAuthorized(RegistryError):
    code = "NOT_AUTHORIZED"
    number = 1201
    hint = "Act as a representative of the account holding the right, or as the administrator."


class RepresentativeConflict(RegistryError):
    code = "REPRESENTATIVE_CONFLICT"
    number = 1202


class RepresentativeNotFound(RegistryError):
    code = "REPRESENTATIVE_NOT_FOUND"
    number = 1203


class UnknownProgram(RegistryError):
    code = "UNKNOWN_PROGRAM"
    number = 1301
    hint = "List the registry's programs with `regfed ledger programs`."


class InsufficientHoldings(RegistryError):
    code = "INSUFFICIENT_HOLDINGS"
    number = 1401


class UnitsNotHeld(RegistryError):
    """Some named serials are not held, spendable, by the account (after EU code 7027)."""

    code = "UNITS_NOT_HELD"
    number = 1402


class IssuanceOverlap(RegistryError):
    code = "ISSUANCE_OVERLAP"
    number = 1403


class UnitsQuarantined(UnitsNotHeld):
    """Named serials are held but quarantined: reconciliation disputes them (not spendable)."""

    code = "UNITS_QUARANTINED"
    number = 1404
    hint = (
        "A reconciliation run found these serials disputed; `regfed reconcile show latest` names "
        "the discrepancy. A later clean run releases them."
    )


class StaleVerdict(RegistryError):
    """A reconciliation verdict older than one this registry already applied."""

    code = "STALE_VERDICT"
    number = 1601


class UnitNotAccepted(RegistryError):
    """The registry's program rules do not take this unit type or issuer (on issuance, or on
    arrival from another registry)."""

    code = "UNIT_NOT_ACCEPTED"
    number = 1405
    hint = "`regfed ledger programs` lists each program's accepted unit types and issuers."


class CreditShareExceeded(RegistryError):
    code = "CREDIT_SHARE_EXCEEDED"
    number = 1406
    hint = (
        "The program limits how much of an obligation this unit type may cover; surrender "
        "allowances for the rest."
    )


class ProjectNotFound(RegistryError):
    code = "PROJECT_NOT_FOUND"
    number = 1701


class ProjectNotApproved(RegistryError):
    code = "PROJECT_NOT_APPROVED"
    number = 1702
    hint = "The administrator approves a project with `regfed credits project-status`."


class VerifierNotFound(RegistryError):
    code = "VERIFIER_NOT_FOUND"
    number = 1703


class VerifierNotAccredited(RegistryError):
    """The verifier holds no accreditation for the project's category on the report's date,
    or declared a conflict of interest with the project or its sponsor."""

    code = "VERIFIER_NOT_ACCREDITED"
    number = 1704
    hint = "`regfed credits verifiers` lists accreditations, their categories and dates."


class DocumentNotFound(RegistryError):
    code = "DOCUMENT_NOT_FOUND"
    number = 1711


class DocumentTampered(RegistryError):
    """A stored document's bytes no longer hash to its identity: they were altered after
    submission. Nothing that depends on it proceeds."""

    code = "DOCUMENT_TAMPERED"
    number = 1712
    hint = (
        "Restore the document's bytes from a backup or have it resubmitted; `regfed ledger "
        "verify` lists every document whose bytes fail their hash."
    )


class DocumentImmutable(RegistryError):
    """A submission that would replace an approved document, or reuse a document's identity
    for different content or metadata."""

    code = "DOCUMENT_IMMUTABLE"
    number = 1713
    hint = "Approved documents are final; submit a new document (a new series) instead."


class ReviewConflict(RegistryError):
    """A review decision the document's current status does not allow."""

    code = "REVIEW_CONFLICT"
    number = 1714


class ReportNotApproved(RegistryError):
    """Credits issued without the approved documents they rest on."""

    code = "REPORT_NOT_APPROVED"
    number = 1715
    hint = (
        "ERCs and offsets are issued by approving an accredited verifier's verification report "
        "(`regfed credits review --decision approved`), after the project's plan and the "
        "monitoring report it verifies are approved."
    )


class DoubleIssuance(RegistryError):
    code = "DOUBLE_ISSUANCE"
    number = 1716
    hint = "Credits for this project and period were issued already; see `regfed credits issuance`."


class ProvenanceMissing(RegistryError):
    """Credits arriving from another registry without the record of their issuance."""

    code = "PROVENANCE_MISSING"
    number = 1717


class IdempotencyConflict(RegistryError):
    code = "IDEMPOTENCY_CONFLICT"
    number = 1501
    hint = "An operation id names one request forever: use a new id for a different request."


class ConcurrentModification(RegistryError):
    code = "CONCURRENT_MODIFICATION"
    number = 1502
    retryable = True
    hint = "Another operation changed the same blocks first; retry with the same operation id."


class RegistryBusy(RegistryError):
    code = "REGISTRY_BUSY"
    number = 1503
    retryable = True
    hint = "The database stayed locked by other writers; retry with the same operation id."


class InvariantViolation(RegistryError):
    """A ledger invariant failed at a transaction boundary: the transaction was refused.

    Seeing one means a bug or tampering; the registry refuses rather than commit a wrong state.
    """

    code = "INVARIANT_VIOLATION"
    number = 1901
    hint = "Nothing was committed. Run `regfed ledger verify` and report the details."


def all_error_types() -> list[type[RegistryError]]:
    """Every concrete error type, for documentation and the code-table test."""
    seen: list[type[RegistryError]] = []
    stack: list[type[RegistryError]] = [RegistryError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return sorted(seen, key=lambda c: c.number)


def error_from_dict(data: Mapping[str, Any]) -> RegistryError:
    """Rebuild a typed error from :meth:`RegistryError.to_dict` (stored idempotent answers)."""
    by_code = {cls.code: cls for cls in all_error_types()}
    cls = by_code.get(str(data.get("code")), RegistryError)
    return cls(str(data.get("message", "")), **dict(data.get("details", {})))
