"""Re-verifying a transfer's receipts: every signature against the pinned keys, every link.

Run by whoever reads the receipts (``regfed transfer show``), against the directory they trust,
not against anything the node says about itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature

from regfed.certs.directory import Directory

from .envelope import Envelope
from .protocol import Kind, Message


@dataclass(frozen=True, slots=True)
class CheckedReceipt:
    direction: str
    recorded_at: str
    envelope: Envelope
    message: Message | None
    signature_ok: bool
    link_ok: bool
    problem: str

    @property
    def ok(self) -> bool:
        return self.signature_ok and self.link_ok

    def to_dict(self) -> dict[str, Any]:
        m = self.message
        return {
            "direction": self.direction,
            "recorded_at": self.recorded_at,
            "step": m.step if m else None,
            "kind": m.kind.value if m else None,
            "sender": self.envelope.sender,
            "receiver": m.receiver if m else None,
            "key_id": self.envelope.key_id,
            "digest": m.digest if m else None,
            "prev_hash": m.prev_hash if m else None,
            "signature_ok": self.signature_ok,
            "link_ok": self.link_ok,
            "problem": self.problem,
        }


def _signature(envelope: Envelope, directory: Directory) -> str:
    member = directory.member(envelope.sender)
    if member is None:
        return f"{envelope.sender} is not in directory version {directory.version}"
    if member.key_id != envelope.key_id:
        return f"key {envelope.key_id} is not the key pinned for {member.code}"
    try:
        member.public_key.verify(envelope.signature, envelope.payload)
    except InvalidSignature:
        return "signature does not verify"
    return ""


def check_receipts(
    transfer_id: str, receipts: list[tuple[str, str, Envelope]], directory: Directory
) -> list[CheckedReceipt]:
    """``receipts``: (direction, recorded_at, envelope) in the order stored."""
    decoded: list[Message | None] = []
    for _direction, _at, envelope in receipts:
        try:
            decoded.append(Message.decode(envelope.payload))
        except (KeyError, TypeError, ValueError):
            decoded.append(None)
    digests_by_step: dict[int, set[str]] = {}
    for m in decoded:
        if m is not None:
            digests_by_step.setdefault(m.step, set()).add(m.digest)
    checked = []
    for (direction, at, envelope), message in zip(receipts, decoded, strict=True):
        problem = _signature(envelope, directory)
        signature_ok = not problem
        link_ok = True
        if message is None:
            problem, link_ok = problem or "payload is not a protocol message", False
        elif message.transfer_id != transfer_id:
            problem, link_ok = problem or f"message of transfer {message.transfer_id}", False
        elif message.kind is not Kind.STATUS and message.step > 1:
            # VOID may follow the proposal (step 1) or the acceptance (step 2).
            allowed = set(digests_by_step.get(message.step - 1, set()))
            if message.kind is Kind.VOID:
                allowed |= digests_by_step.get(1, set())
            if message.kind is Kind.VOIDED or message.kind is Kind.CREDITED:
                allowed = digests_by_step.get(3, set())
            if message.prev_hash not in allowed:
                link_ok = False
                problem = problem or "does not follow any earlier message of this transfer"
        elif message.kind is Kind.PROPOSE and message.prev_hash:
            link_ok, problem = False, problem or "a proposal follows no earlier message"
        checked.append(
            CheckedReceipt(direction, at, envelope, message, signature_ok, link_ok, problem)
        )
    return checked
