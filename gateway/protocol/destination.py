"""The destination side of a two-phase transfer: a pure state machine.

The destination validates a proposal (the adapter checks the account and the ledger and passes
the verdict in) and records acceptance **without crediting**: the blocks are pinned as incoming.
It credits only on the source's COMMIT, and answers every duplicate with the reply it stored the
first time. A VOID that overtakes its PROPOSE leaves a tombstone, so the late proposal is never
accepted. A VOID after the credit has no effect: the transfer only rolls forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from .effects import Decision, LedgerOp, Refusal, RefusalCode
from .lot import EMPTY_LOT, Lot
from .messages import MAX_DETAIL, Kind, Message
from .status import TransferStatus

DestinationDecision = Decision["DestinationRecord"]


@dataclass(frozen=True, slots=True)
class DestinationRecord:
    transfer_id: str
    source: str
    destination: str
    lot: Lot
    status: TransferStatus
    #: Digest of the message at each step of this transfer that this side sent or received.
    known: MappingProxyType[int, str] = field(default_factory=lambda: MappingProxyType({}))
    #: The reply stored for each inbound step, re-sent unchanged to duplicates.
    replies: MappingProxyType[int, Message] = field(default_factory=lambda: MappingProxyType({}))
    accepted_at: float | None = None
    reason: str = ""

    def after(self, inbound: Message, reply: Message | None, **changes: Any) -> DestinationRecord:
        known = {**self.known, inbound.step: inbound.digest}
        replies = dict(self.replies)
        if reply is not None:
            known[reply.step] = reply.digest
            replies[inbound.step] = reply
        return replace(
            self, known=MappingProxyType(known), replies=MappingProxyType(replies), **changes
        )


def _reply(message: Message, kind: Kind, body: dict[str, Any] | None = None) -> Message:
    return Message(
        message.transfer_id, kind, message.receiver, message.sender, message.digest, body or {}
    )


def receive(
    record: DestinationRecord | None,
    message: Message,
    me: str,
    now: float,
    verdict: str | None = None,
    detail: str = "",
) -> DestinationDecision | Refusal | None:
    """Handle a source message. ``verdict`` is the adapter's refusal code for a new proposal
    (unknown or closed account, serials already present, program policy), or None to accept;
    ``detail`` says why in words, for the people at the source (cut to ``MAX_DETAIL``)."""
    if message.receiver != me or (record is not None and message.sender != record.source):
        return Refusal(RefusalCode.WRONG_PARTY, "message is not for this transfer's destination")
    if record is not None and message.kind is not Kind.STATUS:
        seen = record.known.get(message.step)
        if seen == message.digest:
            stored = record.replies.get(message.step)
            return Decision(record, None, (stored,)) if stored else None
        if seen is not None and message.kind is not Kind.VOID:
            return Refusal(
                RefusalCode.CONFLICTING_DUPLICATE,
                f"step {message.step} of transfer {message.transfer_id} was received with "
                "other content",
            )
    if message.kind is Kind.PROPOSE:
        return _propose(record, message, now, verdict, detail)
    if message.kind is Kind.COMMIT:
        return _commit(record, message)
    if message.kind is Kind.VOID:
        return _void(record, message)
    return Refusal(RefusalCode.WRONG_STEP, f"a destination does not accept {message.kind.value}")


def _propose(
    record: DestinationRecord | None,
    message: Message,
    now: float,
    verdict: str | None,
    detail: str,
) -> DestinationDecision | Refusal | None:
    if message.prev_hash:
        return Refusal(RefusalCode.BROKEN_CHAIN, "a proposal follows no earlier message")
    if record is not None:
        # Only a tombstone gets here: the source voided before this proposal arrived.
        return Decision(record.after(message, None), None, ())
    lot = Lot.from_body(message.body)
    expires_at = float(message.body.get("expires_at", 0))
    fresh = DestinationRecord(
        message.transfer_id, message.sender, message.receiver, lot, TransferStatus.PROPOSED
    )
    if verdict is None and now >= expires_at:
        verdict, detail = "EXPIRED", "the proposal's hold had expired when it arrived"
    if verdict is not None:
        body = {"reason": verdict}
        if detail:
            body["detail"] = detail[:MAX_DETAIL]
        reject = _reply(message, Kind.REJECT, body)
        rejected = fresh.after(message, reject, status=TransferStatus.REJECTED, reason=verdict)
        return Decision(rejected, None, (reject,))
    accept = _reply(message, Kind.ACCEPT)
    accepted = fresh.after(message, accept, status=TransferStatus.ACCEPTED, accepted_at=now)
    return Decision(accepted, LedgerOp.PIN, (accept,))


def _commit(record: DestinationRecord | None, message: Message) -> DestinationDecision | Refusal:
    if record is None:
        return Refusal(RefusalCode.UNKNOWN_TRANSFER, f"no transfer {message.transfer_id} here")
    if message.prev_hash != record.known.get(2):
        return Refusal(RefusalCode.BROKEN_CHAIN, "a commit must follow this side's acceptance")
    if record.status is not TransferStatus.ACCEPTED:
        return Refusal(
            RefusalCode.WRONG_STEP,
            f"transfer {message.transfer_id} is {record.status.value} here: nothing to commit",
        )
    credited = _reply(message, Kind.CREDITED)
    done = record.after(message, credited, status=TransferStatus.COMPLETED)
    return Decision(done, LedgerOp.CREDIT, (credited,))


def _void(record: DestinationRecord | None, message: Message) -> DestinationDecision | Refusal:
    voided = _reply(message, Kind.VOIDED)
    if record is None:
        tombstone = DestinationRecord(
            message.transfer_id,
            message.sender,
            message.receiver,
            EMPTY_LOT,
            TransferStatus.CANCELLED,
            reason="voided before the proposal arrived",
        )
        return Decision(tombstone.after(message, voided), None, (voided,))
    if message.prev_hash not in (record.known.get(1), record.known.get(2)):
        return Refusal(RefusalCode.BROKEN_CHAIN, "a void must follow this transfer's proposal")
    if record.status is TransferStatus.COMPLETED:
        return Refusal(
            RefusalCode.TOO_LATE,
            f"transfer {message.transfer_id} is credited: after the commit point a void has no "
            "effect",
        )
    if record.status is TransferStatus.CANCELLED:
        stored = record.replies.get(3)
        return Decision(record, None, (stored,) if stored else ())
    ledger = LedgerOp.UNPIN if record.status is TransferStatus.ACCEPTED else None
    cancelled = record.after(message, voided, status=TransferStatus.CANCELLED)
    return Decision(cancelled, ledger, (voided,))


def tick(record: DestinationRecord, now: float, ask_after: float) -> Message | None:
    """A destination in doubt (accepted, no commit or void yet) asks the source."""
    waiting = record.status is TransferStatus.ACCEPTED and record.accepted_at is not None
    if waiting and now - (record.accepted_at or 0.0) >= ask_after:
        return Message(record.transfer_id, Kind.STATUS, record.destination, record.source)
    return None
