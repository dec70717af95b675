"""The core's durable effects, by name: what each decision persists.

The names drive the crash matrix: for each one, a node is killed inside the open transaction,
after the commit but before the send, and after the receive that triggers it but before the
persist. Adapters call :func:`effect_of` on every decision they apply.
"""

from __future__ import annotations

from .destination import DestinationRecord
from .effects import Decision, LedgerOp
from .source import SourceRecord
from .status import TransferStatus

#: Every durable effect the two state machines can ask for, with the path that leads to it.
DURABLE_EFFECTS: dict[str, str] = {
    "source-escrow": "the intent and the escrow, before the first message (every path)",
    "destination-accept": "acceptance: the credit pinned, not credited (commit path)",
    "destination-reject": "the destination's refusal (rejection path)",
    "source-commit": "the debit: the commit point (commit path)",
    "destination-credit": "the credit (commit path)",
    "source-release": "escrow released after the destination's refusal (rejection path)",
    "source-void": "void by trader cancel, hold expiry or suspended member (cancellation path)",
    "destination-void": "pinned credit dropped, or a tombstone for a void that came first",
    "source-settle": "the destination's acknowledgement recorded: settled",
}

#: The phases a crash hook can stop a node at, around each durable effect.
CRASH_PHASES = ("after-receive", "in-transaction", "after-commit")

#: The protocol paths on which each durable effect is reached (the escrow starts every path).
EFFECT_PATHS: dict[str, tuple[str, ...]] = {
    "source-escrow": ("commit", "reject", "cancel", "expiry"),
    "destination-accept": ("commit",),
    "destination-reject": ("reject",),
    "source-commit": ("commit",),
    "destination-credit": ("commit",),
    "source-release": ("reject",),
    "source-void": ("cancel", "expiry"),
    "destination-void": ("cancel", "in-doubt"),
    "source-settle": ("commit",),
}


def crash_point_name(effect: str, phase: str) -> str:
    """The public name of a crash point: ``source.escrow.in-transaction``."""
    side, _, what = effect.partition("-")
    return f"{side}.{what}.{phase}"


def crash_points() -> list[dict[str, object]]:
    """Every crash point: name, side, the first path that reaches it and all of them, and the
    hook's internal ``effect:phase``."""
    return [
        {
            "name": crash_point_name(effect, phase),
            "side": effect.partition("-")[0],
            "path": EFFECT_PATHS[effect][0],
            "paths": list(EFFECT_PATHS[effect]),
            "hook": f"{effect}:{phase}",
        }
        for effect in DURABLE_EFFECTS
        for phase in CRASH_PHASES
    ]


def source_effect(before: SourceRecord | None, decision: Decision[SourceRecord]) -> str | None:
    after = decision.record
    if before is None:
        return "source-escrow"
    if decision.ledger is LedgerOp.DEBIT:
        return "source-commit"
    if decision.ledger is LedgerOp.RELEASE:
        rejected = after.status is TransferStatus.REJECTED
        return "source-release" if rejected else "source-void"
    if after.settled and not before.settled:
        return "source-settle"
    return None


def destination_effect(
    before: DestinationRecord | None, decision: Decision[DestinationRecord]
) -> str | None:
    after = decision.record
    if before is not None and after.known == before.known and after.status is before.status:
        return None  # a duplicate answered from what is stored
    if decision.ledger is LedgerOp.PIN:
        return "destination-accept"
    if decision.ledger is LedgerOp.CREDIT:
        return "destination-credit"
    if after.status is TransferStatus.REJECTED:
        return "destination-reject"
    if after.status is TransferStatus.CANCELLED:
        return "destination-void"
    return None
