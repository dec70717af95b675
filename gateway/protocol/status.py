"""Transfer statuses, after the Kyoto DES codes: one table for the whole project.

| status | meaning | final |
|---|---|---|
| proposed | intent recorded and blocks escrowed at the source | no |
| accepted | destination validated and pinned the credit, not yet credited | no |
| completed | source committed (debited); settled once the credit is acknowledged | yes |
| rejected | refused by the destination, or by the home node before any message | yes |
| terminated | failed a check or a protocol error at the source before acceptance | yes |
| cancelled | voided by the source before the commit point (trader cancel, hold expiry, ...) | yes |
"""

from __future__ import annotations

from enum import StrEnum


class TransferStatus(StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    REJECTED = "rejected"
    TERMINATED = "terminated"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset(
    {
        TransferStatus.COMPLETED,
        TransferStatus.REJECTED,
        TransferStatus.TERMINATED,
        TransferStatus.CANCELLED,
    }
)
