"""Helpers for tests of the signed reconciliation streams."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from regfed.reconciliation import Block, RegistrySnapshot, TransferRecord


def trailer_after_blocks(snapshot: RegistrySnapshot) -> RegistrySnapshot:
    """A streamed snapshot as today's core can take it: the core reads the totals right after
    the blocks and does not consume the transfers yet (check 5), so the transfers are read as
    the blocks end, and the trailer (which fills the totals) is verified by then."""
    transfers: list[TransferRecord] = []

    def blocks() -> Iterator[Block]:
        yield from snapshot.blocks
        transfers.extend(snapshot.transfers)

    return dataclasses.replace(snapshot, blocks=blocks(), transfers=transfers)
