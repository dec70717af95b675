"""The gateway's typed refusals, and the status each maps to at the gRPC boundary.

Every refusal has a stable ``code`` (docs/protocol.md lists them) and a ``status``: the name of
the gRPC status code the transport answers with. The domain never imports grpc; the transport
turns the name into ``grpc.StatusCode[status]`` and puts the code in the trailing metadata.
"""

from __future__ import annotations

from typing import Any

from regfed.node.domain.errors import RegistryError

#: Status names (grpc.StatusCode members) by ledger error code; anything else is
#: FAILED_PRECONDITION (a business refusal of a well-formed request).
LEDGER_STATUS = {
    "INVALID_ARGUMENT": "INVALID_ARGUMENT",
    "ACCOUNT_NUMBER_MALFORMED": "INVALID_ARGUMENT",
    "ACCOUNT_NUMBER_CHECK_FAILED": "INVALID_ARGUMENT",
    "UNKNOWN_PROGRAM": "INVALID_ARGUMENT",
    "ACCOUNT_NOT_FOUND": "NOT_FOUND",
    "NOT_AUTHORIZED": "PERMISSION_DENIED",
    "IDEMPOTENCY_CONFLICT": "ALREADY_EXISTS",
    "CONCURRENT_MODIFICATION": "ABORTED",
    "REGISTRY_BUSY": "UNAVAILABLE",
    "INVARIANT_VIOLATION": "INTERNAL",
}

#: Status names by gateway refusal code.
GATEWAY_STATUS = {
    # envelope and identity checks: who is talking
    "NO_CLIENT_CERTIFICATE": "UNAUTHENTICATED",
    "CERTIFICATE_REFUSED": "UNAUTHENTICATED",
    "WRONG_ROLE": "PERMISSION_DENIED",
    "SENDER_MISMATCH": "PERMISSION_DENIED",
    "UNKNOWN_SENDER": "PERMISSION_DENIED",
    "UNKNOWN_KEY": "UNAUTHENTICATED",
    "BAD_SIGNATURE": "UNAUTHENTICATED",
    "MEMBER_SUSPENDED": "PERMISSION_DENIED",
    "READ_ONLY": "PERMISSION_DENIED",
    # what the message says
    "OVERSIZED": "RESOURCE_EXHAUSTED",
    "MALFORMED_MESSAGE": "INVALID_ARGUMENT",
    "WRONG_RECEIVER": "INVALID_ARGUMENT",
    "MESSAGE_EXPIRED": "FAILED_PRECONDITION",
    # where it falls in its transfer (the protocol core's refusals)
    "WRONG_PARTY": "PERMISSION_DENIED",
    "WRONG_STEP": "FAILED_PRECONDITION",
    "BROKEN_CHAIN": "FAILED_PRECONDITION",
    "CONFLICTING_DUPLICATE": "ALREADY_EXISTS",
    "UNKNOWN_TRANSFER": "NOT_FOUND",
    "TOO_LATE": "FAILED_PRECONDITION",
    # client API
    "REQUEST_ID_CONFLICT": "ALREADY_EXISTS",
    "UNKNOWN_REGISTRY": "NOT_FOUND",
    "TRANSFER_NOT_FOUND": "NOT_FOUND",
    # the oversight node's reconciliation API
    "RUN_IN_PROGRESS": "FAILED_PRECONDITION",
    "UNKNOWN_RUN": "NOT_FOUND",
    "NO_VERDICT": "NOT_FOUND",
    "NOT_INCONSISTENT": "FAILED_PRECONDITION",
    "INVALID_REQUEST": "INVALID_ARGUMENT",
}


class GatewayError(Exception):
    """A refused request: nothing changed (beyond a line in the security log)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(f"{code}: {message}")
        if code not in GATEWAY_STATUS:
            raise ValueError(f"undocumented gateway refusal code {code}")
        self.code = code
        self.message = message
        self.details = details

    @property
    def status(self) -> str:
        return GATEWAY_STATUS[self.code]


def status_of(error: Exception) -> tuple[str, str, str]:
    """(gRPC status name, stable code, message) for any refusal the gateway can raise."""
    if isinstance(error, GatewayError):
        return error.status, error.code, error.message
    if isinstance(error, RegistryError):
        return LEDGER_STATUS.get(error.code, "FAILED_PRECONDITION"), error.code, error.message
    return "INTERNAL", "INTERNAL", "internal error"
