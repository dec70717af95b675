"""The journal: hash-chained entries of every change, with their movements and the accounts
they touch, and the operations (client-made idempotent ids) each entry answers.

Each entry's hash covers the previous entry's hash and its own body (:func:`entry_hash`), so
any later edit of the journal breaks the chain that ``regfed ledger verify`` walks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text, update
from sqlalchemy.engine import Row

from ..domain.holdings import BlockState
from ..domain.journal import Movement, Place
from ..domain.serials import SerialRange, UnitBlock
from . import schema as t
from .prepared import Prepared
from .rows import unit_class_of, unit_values

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def entry_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(body)).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredOperation:
    operation_id: str
    kind: str
    fingerprint: str
    result: dict[str, Any]
    seq: int


@dataclass(frozen=True, slots=True)
class JournalRecord:
    seq: int
    operation_id: str | None
    kind: str
    actor: str
    recorded_at: str
    detail: dict[str, Any]
    movements: tuple[Movement, ...]
    accounts: tuple[int, ...]
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "operation_id": self.operation_id,
            "kind": self.kind,
            "actor": self.actor,
            "recorded_at": self.recorded_at,
            "detail": self.detail,
            "movements": [m.to_dict() for m in self.movements],
            "accounts": sorted(self.accounts),
        }


_h = t.journal_head
_HEAD_QUERY = select(_h.c.seq, _h.c.hash).where(_h.c.id == 1)
_HEAD = Prepared(_HEAD_QUERY)
_HEAD_LOCKED = Prepared(_HEAD_QUERY.with_for_update())
_MOVE_HEAD = Prepared(update(_h).where(_h.c.id == 1))
_INSERT_ENTRY = Prepared(insert(t.journal_entries))
_INSERT_MOVEMENTS = Prepared(insert(t.journal_movements))
_INSERT_JOURNAL_ACCOUNTS = Prepared(insert(t.journal_accounts))
_OPERATION = Prepared(select(t.operations).where(t.operations.c.operation_id == bindparam("p_op")))
_INSERT_OPERATION = Prepared(insert(t.operations))


class JournalRecords:
    """The journal and operations tables, on one open transaction."""

    def __init__(self, conn: Connection, *, sqlite: bool) -> None:
        self.conn = conn
        self.sqlite = sqlite

    def append(
        self,
        *,
        operation_id: str | None,
        kind: str,
        actor: str,
        recorded_at: str,
        detail: dict[str, Any],
        movements: Sequence[Movement],
        accounts: Sequence[int],
    ) -> JournalRecord:
        h = t.journal_head
        head = (_HEAD if self.sqlite else _HEAD_LOCKED).first(self.conn, {})
        if head is None:
            prev_seq, prev_hash = 0, GENESIS_HASH
            self.conn.execute(insert(h).values(id=1, seq=0, hash=GENESIS_HASH))
        else:
            prev_seq, prev_hash = head.seq, head.hash
        record = JournalRecord(
            seq=prev_seq + 1,
            operation_id=operation_id,
            kind=kind,
            actor=actor,
            recorded_at=recorded_at,
            detail=detail,
            movements=tuple(movements),
            accounts=tuple(sorted(set(accounts))),
            prev_hash=prev_hash,
            hash="",
        )
        digest = entry_hash(prev_hash, record.body())
        _INSERT_ENTRY.run(
            self.conn,
            {
                "seq": record.seq,
                "operation_id": operation_id,
                "kind": kind,
                "actor": actor,
                "recorded_at": recorded_at,
                "detail": canonical_json(detail),
                "prev_hash": prev_hash,
                "hash": digest,
            },
        )
        if movements:
            _INSERT_MOVEMENTS.run_many(
                self.conn,
                [
                    {
                        "seq": record.seq,
                        **unit_values(m.block),
                        "from_account_id": m.origin.account_id if m.origin else None,
                        "from_state": m.origin.state.value if m.origin else None,
                        "from_attributed_account_id": (
                            m.origin.attributed_account_id if m.origin else None
                        ),
                        "to_account_id": m.destination.account_id if m.destination else None,
                        "to_state": m.destination.state.value if m.destination else None,
                        "to_attributed_account_id": (
                            m.destination.attributed_account_id if m.destination else None
                        ),
                    }
                    for m in movements
                ],
            )
        if record.accounts:
            _INSERT_JOURNAL_ACCOUNTS.run_many(
                self.conn,
                [{"seq": record.seq, "account_id": a} for a in record.accounts],
            )
        _MOVE_HEAD.run(self.conn, {"seq": record.seq, "hash": digest})
        return replace(record, hash=digest)

    def entries(
        self,
        *,
        account_id: int | None = None,
        since: str | None = None,
        until: str | None = None,
        after_seq: int = 0,
    ) -> Iterator[JournalRecord]:
        e = t.journal_entries
        query = select(e).where(e.c.seq > after_seq)
        if account_id is not None:
            ja = t.journal_accounts
            query = query.where(e.c.seq.in_(select(ja.c.seq).where(ja.c.account_id == account_id)))
        if since is not None:
            query = query.where(e.c.recorded_at >= since)
        if until is not None:
            query = query.where(e.c.recorded_at < until)
        entries = self.conn.execute(query.order_by(e.c.seq)).all()
        if not entries:
            return
        seqs = [r.seq for r in entries]
        moves: dict[int, list[Movement]] = {}
        m = t.journal_movements
        for chunk_start in range(0, len(seqs), 500):
            chunk = seqs[chunk_start : chunk_start + 500]
            for r in self.conn.execute(select(m).where(m.c.seq.in_(chunk)).order_by(m.c.id)):
                moves.setdefault(r.seq, []).append(_movement(r))
        accounts: dict[int, list[int]] = {}
        ja = t.journal_accounts
        for chunk_start in range(0, len(seqs), 500):
            chunk = seqs[chunk_start : chunk_start + 500]
            for r in self.conn.execute(select(ja).where(ja.c.seq.in_(chunk))):
                accounts.setdefault(r.seq, []).append(r.account_id)
        for r in entries:
            yield JournalRecord(
                seq=r.seq,
                operation_id=r.operation_id,
                kind=r.kind,
                actor=r.actor,
                recorded_at=r.recorded_at,
                detail=json.loads(r.detail),
                movements=tuple(moves.get(r.seq, ())),
                accounts=tuple(sorted(accounts.get(r.seq, ()))),
                prev_hash=r.prev_hash,
                hash=r.hash,
            )

    def head(self) -> tuple[int, str]:
        row = _HEAD.first(self.conn, {})
        return (row.seq, row.hash) if row else (0, GENESIS_HASH)

    # -- idempotency -------------------------------------------------------------------------

    def lock_operation_id(self, operation_id: str) -> None:
        """Serialize writers of one operation id (SQLite's write lock already does)."""
        if not self.sqlite:
            self.conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:op))"), {"op": operation_id}
            )

    def find_operation(self, operation_id: str) -> StoredOperation | None:
        row = _OPERATION.first(self.conn, {"p_op": operation_id})
        if row is None:
            return None
        return StoredOperation(
            row.operation_id, row.kind, row.fingerprint, json.loads(row.result), row.seq
        )

    def record_operation(
        self,
        operation_id: str,
        kind: str,
        fingerprint: str,
        result: dict[str, Any],
        seq: int,
        at: str,
    ) -> None:
        _INSERT_OPERATION.run(
            self.conn,
            {
                "operation_id": operation_id,
                "kind": kind,
                "fingerprint": fingerprint,
                "result": canonical_json(result),
                "seq": seq,
                "recorded_at": at,
            },
        )


def _movement(r: Row[Any]) -> Movement:
    origin = (
        Place(r.from_account_id, BlockState(r.from_state), r.from_attributed_account_id)
        if r.from_account_id is not None
        else None
    )
    return Movement(
        block=UnitBlock(unit_class_of(r), SerialRange(r.start_serial, r.end_serial)),
        origin=origin,
        destination=(
            Place(r.to_account_id, BlockState(r.to_state), r.to_attributed_account_id)
            if r.to_account_id is not None
            else None
        ),
    )
