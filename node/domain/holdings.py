"""Block records as the ledger holds them, and the states a block can be in."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .serials import SerialRange, UnitBlock, UnitClass


class BlockState(StrEnum):
    """The state of a block row. One table for the whole project: docs/ledger.md.

    ``held``: spendable by its account (unless quarantined).
    ``escrowed``: reserved for an outgoing interstate transfer (still this registry's).
    ``incoming``: accepted from another registry, pinned but not yet credited.
    ``surrendered``: deducted for compliance; kept forever, attributed to the account it left.
    ``retired``: voluntarily retired; kept forever, attributed to the account it left.
    """

    HELD = "held"
    ESCROWED = "escrowed"
    INCOMING = "incoming"
    SURRENDERED = "surrendered"
    RETIRED = "retired"


FINAL_STATES = frozenset({BlockState.SURRENDERED, BlockState.RETIRED})


@dataclass(frozen=True, slots=True)
class Holding:
    """One stored block row. ``version`` guards compare-and-set updates."""

    id: int
    block: UnitBlock
    account_id: int
    state: BlockState
    version: int
    attributed_account_id: int | None = None
    transfer_id: str | None = None
    quarantined: bool = False

    @property
    def unit_class(self) -> UnitClass:
        return self.block.unit_class

    @property
    def serials(self) -> SerialRange:
        return self.block.serials

    @property
    def spendable(self) -> bool:
        return self.state is BlockState.HELD and not self.quarantined
