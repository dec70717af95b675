"""The gateway's persistence adapter: transfer records, the outbox, evidence, the security log.

It works on the ledger's open transaction (:class:`LedgerTx`), so a protocol decision, its
ledger change and its outbox row commit together or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from regfed.node.domain.prices import Price
from regfed.node.storage import schema as t
from regfed.node.storage.prepared import Prepared
from regfed.node.storage.store import LedgerTx

from .changes import TransferChange
from .envelope import Envelope


@dataclass(frozen=True, slots=True)
class TransferRow:
    transfer_id: str
    side: str
    peer: str
    status: str
    settled: bool
    record: dict[str, Any]
    from_account: str
    to_account: str
    quantity: int
    requested_by: str | None
    request_id: str | None
    request_fingerprint: str | None
    error_code: str | None
    error_message: str | None
    created_at: str
    updated_at: str
    #: The price per unit the trader gave (the source's and a local transfer's records).
    price: Price | None = None


@dataclass(frozen=True, slots=True)
class Unsettled:
    """A transfer in flight here, as a node's status reports it (no record, no blocks)."""

    transfer_id: str
    side: str
    status: str
    peer: str
    quantity: int
    created_at: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """One signed message as stored: the evidence of a transfer."""

    transfer_id: str
    direction: str
    step: int
    kind: str
    digest: str
    envelope: Envelope
    recorded_at: str


def _row(r: Row[Any]) -> TransferRow:
    return TransferRow(
        transfer_id=r.transfer_id,
        side=r.side,
        peer=r.peer,
        status=r.status,
        settled=bool(r.settled),
        record=json.loads(r.record),
        from_account=r.from_account,
        to_account=r.to_account,
        quantity=int(r.quantity),
        requested_by=r.requested_by,
        request_id=r.request_id,
        request_fingerprint=r.request_fingerprint,
        error_code=r.error_code,
        error_message=r.error_message,
        created_at=r.created_at,
        updated_at=r.updated_at,
        price=(
            None if r.price_amount is None else Price(str(r.price_amount), str(r.price_currency))
        ),
    )


def _envelope_values(envelope: Envelope) -> dict[str, Any]:
    return {
        "payload": envelope.payload,
        "sender": envelope.sender,
        "key_id": envelope.key_id,
        "signature": envelope.signature,
    }


def _envelope(r: Row[Any]) -> Envelope:
    return Envelope(bytes(r.payload), r.sender, r.key_id, bytes(r.signature))


# Built once and sent straight to the driver (see regfed.node.storage.prepared): the hot path
# pays for parameters, not for statement construction or SQLAlchemy's execution machinery.
_tr, _ob, _ev = t.transfers, t.transfer_outbox, t.transfer_evidence
_TRANSFER_QUERY = select(_tr).where(_tr.c.transfer_id == bindparam("tid"))
_TRANSFER = Prepared(_TRANSFER_QUERY)
_TRANSFER_LOCKED = Prepared(_TRANSFER_QUERY.with_for_update())
_BY_REQUEST = Prepared(
    select(_tr).where(
        _tr.c.requested_by == bindparam("by"), _tr.c.request_id == bindparam("request")
    )
)
_INSERT_TRANSFER = Prepared(insert(_tr))
_UPDATE_TRANSFER = Prepared(update(_tr).where(_tr.c.transfer_id == bindparam("tid")))
_CLEAR_OUTBOX = Prepared(delete(_ob).where(_ob.c.transfer_id == bindparam("tid")))
_INSERT_OUTBOX = Prepared(insert(_ob))
_REPLACE_OUTBOX = Prepared(update(_ob).where(_ob.c.transfer_id == bindparam("tid")))
# A message already recorded (a duplicate received, a reply sent again) is left as it was: the
# unique key decides, in the same statement, instead of a look-up before every insert.
_ONCE = ("transfer_id", "direction", "digest")
_INSERT_EVIDENCE = Prepared(
    insert(_ev),
    sqlite=sqlite.insert(_ev).on_conflict_do_nothing(index_elements=_ONCE),
    postgresql=postgresql.insert(_ev).on_conflict_do_nothing(index_elements=_ONCE),
)
_SENT = Prepared(
    select(_ev).where(
        _ev.c.transfer_id == bindparam("tid"),
        _ev.c.direction == "sent",
        _ev.c.digest == bindparam("digest"),
    )
)


class GatewayRecords:
    """Gateway tables on one open transaction."""

    def __init__(self, tx: LedgerTx) -> None:
        self.tx = tx
        self.conn = tx.conn

    # -- transfers -----------------------------------------------------------------------------

    def transfer(self, transfer_id: str, *, lock: bool = False) -> TransferRow | None:
        query = _TRANSFER_LOCKED if lock else _TRANSFER
        row = query.first(self.conn, {"tid": transfer_id})
        return None if row is None else _row(row)

    def by_request(self, requested_by: str, request_id: str) -> TransferRow | None:
        row = _BY_REQUEST.first(self.conn, {"by": requested_by, "request": request_id})
        return None if row is None else _row(row)

    def insert_transfer(self, row: TransferRow) -> None:
        values = {
            "transfer_id": row.transfer_id,
            "side": row.side,
            "peer": row.peer,
            "status": row.status,
            "settled": row.settled,
            "record": json.dumps(row.record, sort_keys=True),
            "from_account": row.from_account,
            "to_account": row.to_account,
            "quantity": row.quantity,
            "requested_by": row.requested_by,
            "request_id": row.request_id,
            "request_fingerprint": row.request_fingerprint,
            "error_code": row.error_code,
            "error_message": row.error_message,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "price_amount": None if row.price is None else row.price.amount,
            "price_currency": None if row.price is None else row.price.currency,
        }
        _INSERT_TRANSFER.run(self.conn, values)
        if row.settled:
            self.tx.settled_transfers[row.transfer_id] = row.status
        self.tx.transfer_changes.append(
            TransferChange(
                row.transfer_id, row.side, row.peer, row.status, row.settled, None, row.error_code
            )
        )

    def update_transfer(
        self,
        transfer_id: str,
        *,
        status: str,
        settled: bool,
        record: dict[str, Any],
        at: str,
        error_code: str | None = None,
        error_message: str | None = None,
        side: str,
        peer: str,
        before: tuple[str, bool] | None,
    ) -> None:
        """``before``: the (status, settled) it replaces, None if unknown; a change is noted
        when the new one differs."""
        values: dict[str, Any] = {
            "status": status,
            "settled": settled,
            "record": json.dumps(record, sort_keys=True),
            "updated_at": at,
        }
        if error_code is not None:
            values.update(error_code=error_code, error_message=error_message)
        _UPDATE_TRANSFER.run(self.conn, {"tid": transfer_id, **values})
        if settled:
            self.tx.settled_transfers[transfer_id] = status
        if (status, settled) != before:
            previous = None if before is None else before[0]
            self.tx.transfer_changes.append(
                TransferChange(transfer_id, side, peer, status, settled, previous, error_code)
            )

    def unsettled(self, side: str, limit: int = 500) -> list[TransferRow]:
        rows = self.conn.execute(
            select(t.transfers)
            .where(t.transfers.c.settled.is_(False), t.transfers.c.side == side)
            .order_by(t.transfers.c.created_at)
            .limit(limit)
        ).all()
        return [_row(r) for r in rows]

    def unsettled_summary(self, limit: int) -> tuple[int, list[Unsettled]]:
        """How many transfers are unsettled here (both sides), and the ``limit`` oldest."""
        c = t.transfers.c
        open_ = c.settled.is_(False)
        total = self.conn.execute(
            select(func.count()).select_from(t.transfers).where(open_)
        ).scalar_one()
        rows = self.conn.execute(
            select(c.transfer_id, c.side, c.status, c.peer, c.quantity, c.created_at)
            .where(open_)
            .order_by(c.created_at, c.transfer_id)
            .limit(limit)
        ).all()
        return int(total), [
            Unsettled(r.transfer_id, r.side, r.status, r.peer, int(r.quantity), r.created_at)
            for r in rows
        ]

    def in_flight(self, side: str, status: str, limit: int = 500) -> list[TransferRow]:
        rows = self.conn.execute(
            select(t.transfers)
            .where(t.transfers.c.side == side, t.transfers.c.status == status)
            .order_by(t.transfers.c.created_at)
            .limit(limit)
        ).all()
        return [_row(r) for r in rows]

    def in_flight_summary(self) -> list[tuple[str, int, str | None]]:
        """(side, transfers not settled, the oldest one's created_at): one grouped query on
        the (settled, side) index, for a metrics scrape."""
        tr = t.transfers
        rows = self.conn.execute(
            select(tr.c.side, func.count(), func.min(tr.c.created_at))
            .where(tr.c.settled.is_(False))
            .group_by(tr.c.side)
        ).all()
        return [(str(side), int(count), oldest) for side, count, oldest in rows]

    def recent(self, limit: int = 50) -> list[TransferRow]:
        rows = self.conn.execute(
            select(t.transfers).order_by(t.transfers.c.created_at.desc()).limit(limit)
        ).all()
        return [_row(r) for r in rows]

    # -- outbox --------------------------------------------------------------------------------

    def put_outbox(
        self,
        transfer_id: str,
        peer: str,
        step: int,
        kind: str,
        envelope: Envelope,
        now: float,
        *,
        replacing: bool = True,
    ) -> None:
        """The one message waiting for its acknowledgement (``replacing`` the previous one)."""
        values = {"peer": peer, "step": step, "kind": kind, "written_at": now}
        values |= _envelope_values(envelope)
        if replacing and _REPLACE_OUTBOX.run(self.conn, {"tid": transfer_id, **values}):
            return
        _INSERT_OUTBOX.run(self.conn, {"transfer_id": transfer_id, **values})

    def outbox_age(self, transfer_id: str, now: float) -> float:
        written = self.conn.execute(
            select(t.transfer_outbox.c.written_at).where(
                t.transfer_outbox.c.transfer_id == transfer_id
            )
        ).scalar_one_or_none()
        return float("inf") if written is None else now - float(written)

    def clear_outbox(self, transfer_id: str) -> None:
        _CLEAR_OUTBOX.run(self.conn, {"tid": transfer_id})

    def outbox(self, transfer_ids: Iterable[str] | None = None) -> list[tuple[str, str, Envelope]]:
        """(transfer id, peer, envelope) of every message waiting for its acknowledgement."""
        query = select(t.transfer_outbox).order_by(t.transfer_outbox.c.written_at)
        if transfer_ids is not None:
            query = query.where(t.transfer_outbox.c.transfer_id.in_(list(transfer_ids)))
        return [(r.transfer_id, r.peer, _envelope(r)) for r in self.conn.execute(query)]

    # -- evidence ------------------------------------------------------------------------------

    def add_evidence(
        self,
        transfer_id: str,
        direction: str,
        step: int,
        kind: str,
        digest: str,
        envelope: Envelope,
        at: str,
    ) -> bool:
        """Record a signed message once; False when it was already recorded (left unchanged)."""
        inserted = _INSERT_EVIDENCE.run(
            self.conn,
            {
                "transfer_id": transfer_id,
                "direction": direction,
                "step": step,
                "kind": kind,
                "digest": digest,
                "recorded_at": at,
                **_envelope_values(envelope),
            },
        )
        return inserted > 0

    def sent(self, transfer_id: str, digest: str) -> Envelope | None:
        row = _SENT.first(self.conn, {"tid": transfer_id, "digest": digest})
        return None if row is None else _envelope(row)

    def receipts(self, transfer_id: str) -> list[Receipt]:
        rows = self.conn.execute(
            select(t.transfer_evidence)
            .where(t.transfer_evidence.c.transfer_id == transfer_id)
            .order_by(t.transfer_evidence.c.id)
        ).all()
        return [
            Receipt(
                r.transfer_id, r.direction, r.step, r.kind, r.digest, _envelope(r), r.recorded_at
            )
            for r in rows
        ]

    # -- security log --------------------------------------------------------------------------

    def log_refusal(
        self, at: str, peer: str, api: str, code: str, message: str, transfer_id: str | None
    ) -> None:
        self.conn.execute(
            insert(t.security_log).values(
                recorded_at=at,
                peer=peer[:160],
                api=api,
                code=code,
                message=message[:2000],
                transfer_id=transfer_id,
            )
        )

    def security_log(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            select(t.security_log).order_by(t.security_log.c.id.desc()).limit(limit)
        ).all()
        return [dict(r._mapping) for r in rows]
