"""The two-phase transfer protocol, sans-IO: pure state machines that return decisions.

Adapters (the gRPC gateway with its database, and the seeded simulator) feed them messages,
clock ticks and commands, apply each :class:`Decision` atomically, and send what it says.
"""

from . import destination, source
from .destination import DestinationRecord
from .effects import Decision, LedgerOp, Refusal, RefusalCode
from .lot import Lot
from .messages import Kind, Message
from .source import SourceRecord
from .status import FINAL, TransferStatus

__all__ = [
    "FINAL",
    "Decision",
    "DestinationRecord",
    "Kind",
    "LedgerOp",
    "Lot",
    "Message",
    "Refusal",
    "RefusalCode",
    "SourceRecord",
    "TransferStatus",
    "destination",
    "source",
]
