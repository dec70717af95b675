"""What a transfer moves: serial blocks from one account to an account in another registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regfed.node.domain.serials import UnitBlock


@dataclass(frozen=True, slots=True)
class Lot:
    blocks: tuple[UnitBlock, ...]
    from_account: str
    to_account: str

    @property
    def quantity(self) -> int:
        return sum(b.quantity for b in self.blocks)

    def to_body(self) -> dict[str, Any]:
        return {
            "blocks": [b.to_dict() for b in self.blocks],
            "from_account": self.from_account,
            "to_account": self.to_account,
        }

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Lot:
        blocks = tuple(UnitBlock.from_dict(b) for b in body["blocks"])
        return cls(blocks, str(body["from_account"]), str(body["to_account"]))


EMPTY_LOT = Lot((), "", "")
