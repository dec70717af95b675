"""Protocol messages between a transfer's source and destination registries.

Every message names its transfer, its step, the message it follows (by hash) and, before the
commit point, an absolute expiry on the source's clock. ``encode`` gives the exact bytes that are
hashed (and, over the wire, signed); they are canonical JSON here so that the core and the
simulator need no transport. The gRPC adapter carries these bytes inside a signed envelope.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    PROPOSE = "propose"
    ACCEPT = "accept"
    REJECT = "reject"
    COMMIT = "commit"
    VOID = "void"
    CREDITED = "credited"
    VOIDED = "voided"
    STATUS = "status"


#: The step of each kind in a transfer's conversation. STATUS queries stand outside the chain.
STEP = {
    Kind.PROPOSE: 1,
    Kind.ACCEPT: 2,
    Kind.REJECT: 2,
    Kind.COMMIT: 3,
    Kind.VOID: 3,
    Kind.CREDITED: 4,
    Kind.VOIDED: 4,
    Kind.STATUS: 0,
}
FROM_SOURCE = frozenset({Kind.PROPOSE, Kind.COMMIT, Kind.VOID})
FROM_DESTINATION = frozenset({Kind.ACCEPT, Kind.REJECT, Kind.CREDITED, Kind.VOIDED})
#: A rejection's words travel beside its code (body ``detail``), cut to this length: they are
#: for people, and a peer's text must not grow the source's records without bound.
MAX_DETAIL = 500
#: A rejection's code (body ``reason``) is cut to this length: the records keep it as a code.
MAX_REASON = 48


@dataclass(frozen=True, slots=True)
class Message:
    transfer_id: str
    kind: Kind
    sender: str
    receiver: str
    prev_hash: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    # The encoding, made once: a message is signed, hashed, stored and compared by it, several
    # times per step. Messages are never changed after they are made.
    _encoded: bytes = field(default=b"", init=False, compare=False, repr=False)

    @property
    def step(self) -> int:
        return STEP[self.kind]

    def encode(self) -> bytes:
        if not self._encoded:
            object.__setattr__(self, "_encoded", self._encode())
        return self._encoded

    def _encode(self) -> bytes:
        return json.dumps(
            {
                "transfer_id": self.transfer_id,
                "kind": self.kind.value,
                "step": self.step,
                "sender": self.sender,
                "receiver": self.receiver,
                "prev_hash": self.prev_hash,
                "body": self.body,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.encode()).hexdigest()

    @classmethod
    def decode(cls, data: bytes) -> Message:
        raw = json.loads(data)
        message = cls(
            transfer_id=str(raw["transfer_id"]),
            kind=Kind(raw["kind"]),
            sender=str(raw["sender"]),
            receiver=str(raw["receiver"]),
            prev_hash=str(raw["prev_hash"]),
            body=dict(raw["body"]),
        )
        if raw["step"] != message.step:
            raise ValueError(f"step {raw['step']} does not match kind {message.kind}")
        return message
