"""Signed envelopes: the exact payload bytes, who sent them, with which key, and the signature.

The receiver checks everything before it parses a byte of the payload: the TLS peer is a
registry node, the registry its certificate names is the envelope's sender, the sender is an
active member of the federation directory, the key id is the one pinned there for it, and the
Ed25519 signature verifies against that pinned key (never a key the message brings).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from regfed.certs.directory import Directory, Member, key_id
from regfed.certs.identity import Identity, Role

MAX_PAYLOAD = 64 * 1024


class EnvelopeRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Envelope:
    payload: bytes
    sender: str
    key_id: str
    signature: bytes


def seal(payload: bytes, sender: str, key: ed25519.Ed25519PrivateKey) -> Envelope:
    return Envelope(payload, sender, key_id(key.public_key()), key.sign(payload))


def open_envelope(envelope: Envelope, directory: Directory, peer: Identity) -> tuple[bytes, Member]:
    """The verified payload bytes and their sender, or :class:`EnvelopeRefused` with a code.

    A suspended or removed member's messages still verify: transfers past the commit point with
    it must roll forward. Refusing new transfers with it is the caller's policy.
    """
    if len(envelope.payload) > MAX_PAYLOAD:
        raise EnvelopeRefused("OVERSIZED", f"payload of {len(envelope.payload)} bytes")
    if peer.role is not Role.REGISTRY:
        raise EnvelopeRefused(
            "WRONG_ROLE", f"a {peer.role.value} certificate may not use the peer API"
        )
    if peer.registry != envelope.sender:
        raise EnvelopeRefused(
            "SENDER_MISMATCH",
            f"certificate names {peer.registry}, envelope claims {envelope.sender}",
        )
    member = directory.member(envelope.sender)
    if member is None or member.role is not Role.REGISTRY:
        raise EnvelopeRefused("UNKNOWN_SENDER", f"{envelope.sender} is not a federation member")
    if envelope.key_id != member.key_id:
        raise EnvelopeRefused(
            "UNKNOWN_KEY", f"key {envelope.key_id} is not pinned for {member.code}"
        )
    try:
        member.public_key.verify(envelope.signature, envelope.payload)
    except InvalidSignature:
        raise EnvelopeRefused("BAD_SIGNATURE", "signature does not verify") from None
    return envelope.payload, member
