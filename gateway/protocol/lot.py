"""What a transfer moves: serial blocks from one account to an account in another registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regfed.node.domain.provenance import Provenance
from regfed.node.domain.serials import UnitBlock


@dataclass(frozen=True, slots=True)
class Lot:
    blocks: tuple[UnitBlock, ...]
    from_account: str
    to_account: str
    #: The issuance records of any credits among the blocks, carried to the destination.
    provenance: tuple[Provenance, ...] = ()

    @property
    def quantity(self) -> int:
        return sum(b.quantity for b in self.blocks)

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "blocks": [b.to_dict() for b in self.blocks],
            "from_account": self.from_account,
            "to_account": self.to_account,
        }
        # Absent for allowances: messages and records of earlier transfers stay byte for byte.
        if self.provenance:
            body["provenance"] = [p.to_dict() for p in self.provenance]
        return body

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Lot:
        blocks = tuple(UnitBlock.from_dict(b) for b in body["blocks"])
        provenance = tuple(Provenance.from_dict(p) for p in body.get("provenance", ()))
        return cls(blocks, str(body["from_account"]), str(body["to_account"]), provenance)


EMPTY_LOT = Lot((), "", "")
