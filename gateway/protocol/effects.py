"""What a protocol decision asks of its adapter, and why an input was refused.

A :class:`Decision` is applied atomically: the new record, its ledger operation and its outbox in
one database transaction; only after that commits are its messages sent. A crash in between
loses nothing: the outbox is durable and re-sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from .messages import Message

R = TypeVar("R")


class LedgerOp(StrEnum):
    """Ledger changes the protocol makes, each on the transfer's blocks."""

    ESCROW = "escrow"  # source: held -> escrowed (still the source's, unspendable)
    RELEASE = "release"  # source: escrowed -> held (void or rejection; before the commit point)
    DEBIT = "debit"  # source: escrowed -> gone (the commit point)
    PIN = "pin"  # destination: nothing -> incoming (accepted, not credited)
    UNPIN = "unpin"  # destination: incoming -> nothing (void)
    CREDIT = "credit"  # destination: incoming -> held


@dataclass(frozen=True, slots=True)
class Decision(Generic[R]):
    record: R
    ledger: LedgerOp | None = None
    send: tuple[Message, ...] = ()


class RefusalCode(StrEnum):
    WRONG_PARTY = "WRONG_PARTY"
    WRONG_STEP = "WRONG_STEP"
    BROKEN_CHAIN = "BROKEN_CHAIN"
    CONFLICTING_DUPLICATE = "CONFLICTING_DUPLICATE"
    UNKNOWN_TRANSFER = "UNKNOWN_TRANSFER"
    TOO_LATE = "TOO_LATE"


@dataclass(frozen=True, slots=True)
class Refusal:
    """An input refused: nothing changes. Answered with a typed error by the transport."""

    code: RefusalCode
    reason: str
