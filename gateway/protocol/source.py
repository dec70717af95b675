"""The source side of a two-phase transfer: a pure state machine.

The source writes the intent and escrows the blocks before its first message. Its durable
COMPLETED record (the debit) is the commit point: before it, the source may void (destination
rejection, trader cancel, hold expiry on its own clock); after it, nothing expires and the
transfer only rolls forward, its COMMIT re-sent until the destination's CREDITED arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType

from .effects import Decision, LedgerOp, Refusal, RefusalCode
from .lot import Lot
from .messages import FROM_DESTINATION, MAX_DETAIL, MAX_REASON, Kind, Message
from .status import TransferStatus

SourceDecision = Decision["SourceRecord"]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    transfer_id: str
    source: str
    destination: str
    lot: Lot
    status: TransferStatus
    expires_at: float
    settled: bool = False
    #: Digest of the message at each step of this transfer that this side sent or received.
    known: MappingProxyType[int, str] = field(default_factory=lambda: MappingProxyType({}))
    #: The message re-sent until acknowledged (PROPOSE, COMMIT or VOID).
    outbox: Message | None = None
    void_reason: str = ""
    #: The destination's words for its rejection (untrusted text, cut to ``MAX_DETAIL``).
    void_detail: str = ""

    def knowing(self, message: Message) -> MappingProxyType[int, str]:
        return MappingProxyType({**self.known, message.step: message.digest})


def propose(
    transfer_id: str, source: str, destination: str, lot: Lot, now: float, hold_seconds: float
) -> SourceDecision:
    expires_at = now + hold_seconds
    message = Message(
        transfer_id,
        Kind.PROPOSE,
        source,
        destination,
        "",
        {**lot.to_body(), "expires_at": expires_at},
    )
    record = SourceRecord(
        transfer_id,
        source,
        destination,
        lot,
        TransferStatus.PROPOSED,
        expires_at,
        known=MappingProxyType({1: message.digest}),
        outbox=message,
    )
    return Decision(record, LedgerOp.ESCROW, (message,))


def _void(record: SourceRecord, reason: str) -> SourceDecision:
    anchor = record.known.get(2) or record.known[1]
    message = Message(
        record.transfer_id,
        Kind.VOID,
        record.source,
        record.destination,
        anchor,
        {"reason": reason},
    )
    voided = replace(
        record,
        status=TransferStatus.CANCELLED,
        known=record.knowing(message),
        outbox=message,
        void_reason=reason,
    )
    return Decision(voided, LedgerOp.RELEASE, (message,))


def cancel(record: SourceRecord, reason: str) -> SourceDecision | Refusal:
    """Trader cancel or suspended member: only before the commit point."""
    if record.status is TransferStatus.PROPOSED:
        return _void(record, reason)
    return Refusal(
        RefusalCode.TOO_LATE,
        f"transfer {record.transfer_id} is {record.status.value}; only a proposed transfer "
        "can be cancelled",
    )


def tick(record: SourceRecord, now: float) -> SourceDecision | None:
    """Hold expiry on the source's own clock; otherwise re-send what is not acknowledged."""
    if record.status is TransferStatus.PROPOSED and now >= record.expires_at:
        return _void(record, "hold expired")
    if not record.settled and record.outbox is not None:
        return Decision(record, None, (record.outbox,))
    return None


def receive(record: SourceRecord, message: Message, now: float) -> SourceDecision | Refusal | None:
    """Handle a destination message. None: nothing to do (a stale duplicate)."""
    if message.sender != record.destination or message.receiver != record.source:
        return Refusal(RefusalCode.WRONG_PARTY, "message is not from this transfer's destination")
    if message.kind is Kind.STATUS:
        return Decision(record, None, (record.outbox,)) if record.outbox else None
    if message.kind not in FROM_DESTINATION:
        return Refusal(RefusalCode.WRONG_STEP, f"a source does not accept {message.kind.value}")
    seen = record.known.get(message.step)
    if seen is not None and seen != message.digest and message.step == 2:
        return Refusal(
            RefusalCode.CONFLICTING_DUPLICATE,
            f"a different answer to transfer {record.transfer_id} was received already",
        )
    expected_prev = record.known.get(message.step - 1)
    if message.prev_hash != expected_prev:
        return Refusal(RefusalCode.BROKEN_CHAIN, "message does not follow this transfer's chain")
    return _transition(record, message, now)


def _transition(record: SourceRecord, message: Message, now: float) -> SourceDecision | None:
    status = record.status
    if message.kind is Kind.ACCEPT:
        if status is TransferStatus.PROPOSED:
            accepted = replace(record, known=record.knowing(message))
            if now >= record.expires_at:
                return _void(accepted, "hold expired")
            commit = Message(
                record.transfer_id,
                Kind.COMMIT,
                record.source,
                record.destination,
                message.digest,
                {},
            )
            committed = replace(
                accepted,
                status=TransferStatus.COMPLETED,
                known=accepted.knowing(commit),
                outbox=commit,
            )
            return Decision(committed, LedgerOp.DEBIT, (commit,))
        if status is TransferStatus.CANCELLED and not record.settled and record.outbox:
            # The destination pinned before our void reached it: keep voiding.
            return Decision(record, None, (record.outbox,))
        if status is TransferStatus.COMPLETED and not record.settled and record.outbox:
            return Decision(record, None, (record.outbox,))
        return None
    if message.kind is Kind.REJECT:
        if status is TransferStatus.PROPOSED:
            rejected = replace(
                record,
                status=TransferStatus.REJECTED,
                settled=True,
                outbox=None,
                known=record.knowing(message),
                void_reason=_text(message.body.get("reason"), MAX_REASON),
                void_detail=_text(message.body.get("detail"), MAX_DETAIL),
            )
            return Decision(rejected, LedgerOp.RELEASE, ())
        if status is TransferStatus.CANCELLED and not record.settled:
            # Nothing was pinned at the destination: the void needs no acknowledgement.
            return Decision(replace(record, settled=True, outbox=None), None, ())
        return None
    if message.kind is Kind.CREDITED:
        if status is TransferStatus.COMPLETED and not record.settled:
            return Decision(replace(record, settled=True, outbox=None), None, ())
        return None
    if message.kind is Kind.VOIDED:
        if status is TransferStatus.CANCELLED and not record.settled:
            return Decision(replace(record, settled=True, outbox=None), None, ())
        return None
    return None


def _text(given: object, limit: int) -> str:
    """A peer's words, as text of at most ``limit`` characters (anything else: none)."""
    return given[:limit] if isinstance(given, str) else ""
