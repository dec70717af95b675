"""The federation directory: who the members are, where, and which keys are theirs.

Signed by the federation authority (ECDSA P-256 with the CA key) over the exact payload bytes;
nodes verify it against the CA certificate they already trust, never a key the file brings. The
version only increases: a node remembers the highest it has seen and refuses an older one, so a
removed member cannot be reinstated by replaying an old directory.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .identity import Role


class MemberStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REMOVED = "removed"


class DirectoryError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Member:
    code: str
    role: Role
    endpoint: str
    certificate_pem: str
    signing_key: str  # base64 of the raw Ed25519 public key
    status: MemberStatus = MemberStatus.ACTIVE

    @property
    def public_key(self) -> ed25519.Ed25519PublicKey:
        return ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(self.signing_key))

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "role": self.role.value,
            "endpoint": self.endpoint,
            "certificate": self.certificate_pem,
            "signing_key": self.signing_key,
            "status": self.status.value,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Member:
        return cls(
            str(d["code"]),
            Role(d["role"]),
            str(d["endpoint"]),
            str(d["certificate"]),
            str(d["signing_key"]),
            MemberStatus(d["status"]),
        )


@dataclass(frozen=True, slots=True)
class Directory:
    version: int
    members: tuple[Member, ...]

    def member(self, code: str) -> Member | None:
        return next((m for m in self.members if m.code == code), None)

    def payload(self) -> bytes:
        body = {"version": self.version, "members": [m.to_dict() for m in self.members]}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def sign(self, ca_key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
        payload = self.payload()
        signature = ca_key.sign(payload, ec.ECDSA(hashes.SHA256()))
        return {
            "payload": base64.b64encode(payload).decode(),
            "signature": base64.b64encode(signature).decode(),
        }

    @classmethod
    def verify(cls, signed: dict[str, str], ca_certificate: x509.Certificate) -> Directory:
        """Check the authority's signature over the payload bytes, then parse them."""
        try:
            payload = base64.b64decode(signed["payload"], validate=True)
            signature = base64.b64decode(signed["signature"], validate=True)
        except (KeyError, ValueError, TypeError):
            raise DirectoryError("DIRECTORY_MALFORMED", "not a signed directory") from None
        public = ca_certificate.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise DirectoryError("DIRECTORY_MALFORMED", "the CA key is not ECDSA")
        try:
            public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise DirectoryError(
                "DIRECTORY_BAD_SIGNATURE", "the directory is not signed by the federation CA"
            ) from None
        body = json.loads(payload)
        return cls(int(body["version"]), tuple(Member.from_dict(m) for m in body["members"]))

    def replacing(self, highest_seen: int) -> Directory:
        """Refuse a directory older than one this node has already accepted."""
        if self.version < highest_seen:
            raise DirectoryError(
                "DIRECTORY_STALE",
                f"directory version {self.version} is older than version {highest_seen} "
                "already accepted",
            )
        return self


def accept(
    signed: dict[str, str], ca_certificate: x509.Certificate, highest_seen: int
) -> Directory:
    """What a node does with a directory it receives: verify the signature, refuse an older one.

    Pure, so a node can keep ``highest_seen`` wherever it keeps its state (its database) and
    store ``result.version`` in the same transaction that starts using the directory.
    """
    return Directory.verify(signed, ca_certificate).replacing(highest_seen)


class DirectoryState:
    """The highest directory version accepted, kept in a small file (for tools without a DB)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def highest(self) -> int:
        if not self.path.exists():
            return 0
        return int(self.path.read_text().strip() or 0)

    def accept(self, signed: dict[str, str], ca_certificate: x509.Certificate) -> Directory:
        directory = accept(signed, ca_certificate, self.highest())
        if directory.version > self.highest():
            # Write then rename: a crash leaves the old number or the new, never an empty file.
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(f"{directory.version}\n")
            tmp.replace(self.path)
        return directory
