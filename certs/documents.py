"""Documents signed by a federation member: canonical JSON bytes and an Ed25519 signature.

The oversight node signs reconciliation results and each registry's verdict this way; a reader
verifies against the key pinned for the signer in the directory (never a key the document
brings) before it parses a byte, exactly as envelopes between registries are checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from .directory import Member, MemberStatus, key_id

#: A verdict or a run's result; larger results are refused unread.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


class DocumentRefused(ValueError):
    """Why a signed document was not accepted; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True, slots=True)
class SignedDocument:
    payload: bytes
    signature: bytes
    key_id: str


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_document(body: dict[str, Any], key: ed25519.Ed25519PrivateKey) -> SignedDocument:
    payload = canonical_json(body)
    return SignedDocument(payload, key.sign(payload), key_id(key.public_key()))


def open_document(document: SignedDocument, signer: Member | None) -> dict[str, Any]:
    """The verified body, or :class:`DocumentRefused` (UNSIGNED, UNKNOWN_SIGNER, UNKNOWN_KEY,
    BAD_SIGNATURE, OVERSIZED, MALFORMED)."""
    if signer is None or signer.status is MemberStatus.REMOVED:
        raise DocumentRefused("UNKNOWN_SIGNER", "the signer is not a member of the directory")
    if len(document.payload) > MAX_DOCUMENT_BYTES:
        raise DocumentRefused("OVERSIZED", f"document of {len(document.payload)} bytes")
    if not document.signature:
        raise DocumentRefused("UNSIGNED", "the document carries no signature")
    if document.key_id != signer.key_id:
        raise DocumentRefused(
            "UNKNOWN_KEY", f"key {document.key_id!r} is not the one pinned for {signer.code}"
        )
    try:
        signer.public_key.verify(document.signature, document.payload)
    except InvalidSignature:
        raise DocumentRefused("BAD_SIGNATURE", f"not signed by {signer.code}'s key") from None
    try:
        body = json.loads(document.payload)
    except ValueError as error:
        raise DocumentRefused("MALFORMED", f"not JSON: {error}") from None
    if not isinstance(body, dict):
        raise DocumentRefused("MALFORMED", "not a JSON object")
    return body
