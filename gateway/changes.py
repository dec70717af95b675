"""A transfer's status changes at this node, as committed: one log line each, and the counts.

The gateway's records note a change in the open transaction (a new transfer, a new status, or
settlement); :class:`Gateway` hands them over only after the commit, so a rolled-back input
leaves no line and no count. Re-sends and duplicates change nothing and so say nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("regfed.transfers")


@dataclass(frozen=True, slots=True)
class TransferChange:
    transfer_id: str
    side: str  # source, destination or local
    peer: str
    status: str
    settled: bool
    #: The status before this transaction; None for the transfer's first record here.
    previous: str | None
    reason: str | None = None

    @property
    def status_changed(self) -> bool:
        return self.status != self.previous


def describe(change: TransferChange) -> str:
    """What happened, in words, for the log line (the status and side are fields too)."""
    side, status, peer = change.side, change.status, change.peer
    why = f": {change.reason}" if change.reason else ""
    if side == "local":
        return f"intrastate transfer {status}{why}"
    if side == "source":
        if status == "proposed":
            return f"units escrowed, proposed to {peer}"
        if status == "completed":
            if not change.status_changed:
                return f"settled: {peer} acknowledged the credit"
            return f"committed: units debited, commit sent to {peer}"
        if change.previous is None:
            return f"{status} here before any message{why}"
        if status in ("rejected", "cancelled"):
            return f"{status}{why}: escrow released"
        return f"{status}{why}"
    if status == "accepted":
        return f"accepted from {peer}: credit pinned"
    if status == "completed":
        return f"credited: units from {peer} held"
    if status == "cancelled":
        return f"cancelled by {peer}{why}: pinned credit dropped"
    return f"{status} (from {peer}){why}"


def log_changes(changes: tuple[TransferChange, ...]) -> None:
    for change in changes:
        log.info(
            "%s %s: %s",
            change.side,
            change.status,
            describe(change),
            extra={
                "transfer_id": change.transfer_id,
                "side": change.side,
                "status": change.status,
                "settled": change.settled,
                "peer": change.peer,
            },
        )
