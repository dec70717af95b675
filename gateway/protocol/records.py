"""The protocol records as plain JSON-able dicts, so adapters can store them as they are.

Messages are kept by their canonical bytes, so a record read back re-sends exactly what it sent.
"""

from __future__ import annotations

import base64
from types import MappingProxyType
from typing import Any

from .destination import DestinationRecord
from .lot import Lot
from .messages import Message
from .source import SourceRecord
from .status import TransferStatus


def _message(message: Message | None) -> str | None:
    return None if message is None else base64.b64encode(message.encode()).decode()


def _unmessage(data: str | None) -> Message | None:
    return None if data is None else Message.decode(base64.b64decode(data))


def _known(known: MappingProxyType[int, str]) -> dict[str, str]:
    return {str(step): digest for step, digest in known.items()}


def _unknown(data: dict[str, str]) -> MappingProxyType[int, str]:
    return MappingProxyType({int(step): digest for step, digest in data.items()})


def source_to_dict(record: SourceRecord) -> dict[str, Any]:
    return {
        "side": "source",
        "transfer_id": record.transfer_id,
        "source": record.source,
        "destination": record.destination,
        "lot": record.lot.to_body(),
        "status": record.status.value,
        "expires_at": record.expires_at,
        "settled": record.settled,
        "known": _known(record.known),
        "outbox": _message(record.outbox),
        "void_reason": record.void_reason,
        "void_detail": record.void_detail,
    }


def source_from_dict(data: dict[str, Any]) -> SourceRecord:
    return SourceRecord(
        transfer_id=data["transfer_id"],
        source=data["source"],
        destination=data["destination"],
        lot=Lot.from_body(data["lot"]),
        status=TransferStatus(data["status"]),
        expires_at=float(data["expires_at"]),
        settled=bool(data["settled"]),
        known=_unknown(data["known"]),
        outbox=_unmessage(data["outbox"]),
        void_reason=data["void_reason"],
        void_detail=data.get("void_detail", ""),  # absent in records written before it was
    )


def destination_to_dict(record: DestinationRecord) -> dict[str, Any]:
    return {
        "side": "destination",
        "transfer_id": record.transfer_id,
        "source": record.source,
        "destination": record.destination,
        "lot": record.lot.to_body(),
        "status": record.status.value,
        "known": _known(record.known),
        "replies": {str(step): _message(m) for step, m in record.replies.items()},
        "accepted_at": record.accepted_at,
        "reason": record.reason,
    }


def destination_from_dict(data: dict[str, Any]) -> DestinationRecord:
    replies = {int(step): _unmessage(m) for step, m in data["replies"].items()}
    return DestinationRecord(
        transfer_id=data["transfer_id"],
        source=data["source"],
        destination=data["destination"],
        lot=Lot.from_body(data["lot"]),
        status=TransferStatus(data["status"]),
        known=_unknown(data["known"]),
        replies=MappingProxyType({s: m for s, m in replies.items() if m is not None}),
        accepted_at=data["accepted_at"],
        reason=data["reason"],
    )
