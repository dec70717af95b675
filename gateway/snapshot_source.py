"""A registry's side of reconciliation: its tables read once, consistently, as stream records.

Everything one snapshot says comes from one read transaction on its own connection
(:func:`registry_read`, which is ``Store.read``): on SQLite a deferred transaction in WAL mode,
whose snapshot is fixed by its first read (writers are not blocked, and nothing they commit after
it is seen); on PostgreSQL ``REPEATABLE READ READ ONLY``. So the blocks, the totals the database
sums beside them, the transfer records and the journal position all describe one moment.

Rows come straight off the driver's cursor, a batch at a time (on PostgreSQL a server-side
cursor): a registry's blocks are never all in memory, and a million of them cost the node under
two seconds of CPU (docs/reconciliation.md). Text comes in code-point order, the order the sweep
checks: unit classes are sorted here, the rest with the C collation.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from regfed.node.domain.errors import InvalidArgument
from regfed.node.ledger import timestamp, utc_now
from regfed.node.storage.journal_records import GENESIS_HASH
from regfed.node.storage.store import Store
from regfed.reconciliation import (
    STATES,
    ClassKey,
    IssuanceRange,
    JournalMove,
    TotalsKey,
    TransferRecord,
    UnsettledTransfer,
)

from ._generated.reconciliation.v1 import reconciliation_pb2 as pb
from .snapshot_stream import JOURNAL, SNAPSHOT, ClassBlocks, StreamWriter

#: Rows fetched from the driver at a time.
FETCH = 5_000
#: Transfer ids per ``IN (...)`` of a journal's records query.
IDS_PER_QUERY = 500

_UNIT = "issuer, program, unit_type, vintage, start_serial, end_serial"
_INTERSTATE = "side IN ('source', 'destination')"
# A block's state as its index in STATES: a small int costs the driver nothing to make.
_STATE_INDEX = (
    "CASE state " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STATES)) + " END"
)


class RegistryRead:
    """Queries on one open read transaction, answered as reconciliation records."""

    def __init__(self, conn: Connection, *, sqlite: bool) -> None:
        self.conn = conn
        self.sqlite = sqlite
        self.driver: Any = conn.connection.driver_connection
        # PostgreSQL sorts text by the database's collation unless told otherwise; SQLite's
        # BINARY is already code-point order.
        self.c = "" if sqlite else ' COLLATE "C"'
        self.mark = "?" if sqlite else "%s"
        self._names = itertools.count(1)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> Generator[tuple[Any, ...], None, None]:
        """The rows of one query, a batch at a time, as the driver's plain tuples."""
        if self.sqlite:
            cursor = self.driver.cursor()
        else:  # server-side: PostgreSQL keeps the rest of the result until asked
            cursor = self.driver.cursor(name=f"regfed_reconcile_{next(self._names)}")
        dbapi = self.conn.dialect.loaded_dbapi
        try:
            try:
                cursor.execute(sql, params)
                while batch := cursor.fetchmany(FETCH):
                    yield from batch
            except dbapi.Error as error:  # as Store's own statements fail: translated by it
                raise sa_exc.DBAPIError.instance(
                    sql, params, error, dbapi.Error, dialect=self.conn.dialect
                ) from error
        finally:
            cursor.close()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> Generator[tuple[Any, ...], None, None]:
        """Any read-only query on this same read, a batch at a time: other streams taken from
        one consistent read use it (a node's public records, gateway/records_source.py)."""
        return self._rows(sql, params)

    def journal_head(self) -> tuple[int, str]:
        rows = list(self._rows("SELECT seq, hash FROM journal_head WHERE id = 1"))
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS_HASH)

    def issuances(self) -> Iterator[IssuanceRange]:
        """This registry's issuance ranges in stream order."""
        for row in self._rows(f"SELECT {_UNIT} FROM issuances ORDER BY {self._unit_order()}"):
            yield IssuanceRange(*row)

    def classes(self) -> list[ClassKey]:
        """The unit classes of the blocks, in stream order (sorted here: code-point order
        whatever the database's collation)."""
        sql = "SELECT DISTINCT issuer, program, unit_type, vintage FROM blocks"
        return sorted((i, p, u, int(v)) for i, p, u, v in self._rows(sql))

    def blocks(self, classes: Iterable[ClassKey]) -> Iterator[ClassBlocks]:
        """Each class's blocks by start, as (start, end, state index, transfer_id): a query
        per class on its index, with nothing per row but what differs from row to row."""
        sql = (
            f"SELECT start_serial, end_serial, {_STATE_INDEX}, transfer_id FROM blocks "
            f"WHERE issuer = {self.mark} AND program = {self.mark} AND unit_type = {self.mark} "
            f"AND vintage = {self.mark} ORDER BY start_serial"
        )
        for unit_class in classes:
            yield unit_class, self._rows(sql, unit_class)

    def _unit_order(self) -> str:
        c = self.c
        return f"issuer{c}, program{c}, unit_type{c}, vintage, start_serial"

    def transfers(self, registry: str) -> Generator[TransferRecord, None, None]:
        """This registry's interstate transfer records, by transfer id."""
        sql = (
            "SELECT transfer_id, side, peer, status, settled, quantity FROM transfers "
            f"WHERE {_INTERSTATE} ORDER BY transfer_id{self.c}"
        )
        for tid, side, peer, status, settled, quantity in self._rows(sql):
            yield TransferRecord(tid, registry, side, peer, status, bool(settled), int(quantity))

    def transfer_records(self, registry: str, ids: Iterable[str]) -> list[TransferRecord]:
        """This registry's records of the interstate transfers ``ids`` it has, by transfer id."""
        wanted = sorted(set(ids))
        found: list[TransferRecord] = []
        for i in range(0, len(wanted), IDS_PER_QUERY):
            chunk = wanted[i : i + IDS_PER_QUERY]
            sql = (
                "SELECT transfer_id, side, peer, status, settled, quantity FROM transfers "
                f"WHERE {_INTERSTATE} AND transfer_id IN ({', '.join([self.mark] * len(chunk))})"
            )
            for tid, side, peer, status, settled, quantity in self._rows(sql, chunk):
                found.append(
                    TransferRecord(tid, registry, side, peer, status, bool(settled), int(quantity))
                )
        return sorted(found)

    def totals(self) -> dict[TotalsKey, int]:
        """Units per (issuer, program, unit_type, vintage, state) as the registry's books say:
        the sum of its journal's movements (into a state, minus out of it). Independent of the
        blocks table, so check 4 compares the books with the holdings, and a block written or
        removed behind the ledger's back shows up as a difference of this registry's totals."""
        q = "(end_serial - start_serial + 1)"
        sums = ", ".join(
            f"SUM(CASE WHEN to_account_id IS NOT NULL AND to_state = '{state}' THEN {q} ELSE 0 END)"
            f" - SUM(CASE WHEN from_account_id IS NOT NULL AND from_state = '{state}' "
            f"THEN {q} ELSE 0 END)"
            for state in STATES
        )
        sql = (
            f"SELECT issuer, program, unit_type, vintage, {sums} FROM journal_movements "
            "GROUP BY issuer, program, unit_type, vintage"
        )
        totals: dict[TotalsKey, int] = {}
        for issuer, program, unit_type, vintage, *quantities in self._rows(sql):
            for state, quantity in zip(STATES, quantities, strict=True):
                if quantity:
                    totals[(issuer, program, unit_type, int(vintage), state)] = int(quantity)
        return totals

    def unsettled(self, now: datetime) -> list[UnsettledTransfer]:
        """Interstate transfers not settled here, aged on this node's clock (``now``)."""
        sql = (
            "SELECT transfer_id, side, status, peer, created_at FROM transfers "
            f"WHERE NOT settled AND {_INTERSTATE} ORDER BY transfer_id{self.c}"
        )
        return [
            UnsettledTransfer(tid, side, status, peer, _age(created_at, now))
            for tid, side, status, peer, created_at in self._rows(sql)
        ]

    def journal_moves(self, registry: str, after: int, upto: int) -> Iterator[JournalMove]:
        """Movements of the journal entries in (after, upto] that belong to a transfer (their
        detail names a ``transfer_id``: the interstate steps), in journal order."""
        m = self.mark
        sql = (
            "SELECT mv.seq, e.detail, mv.issuer, mv.program, mv.unit_type, mv.vintage, "
            "mv.start_serial, mv.end_serial, mv.from_account_id, mv.from_state, "
            "mv.to_account_id, mv.to_state "
            "FROM journal_movements mv JOIN journal_entries e ON e.seq = mv.seq "
            f"WHERE mv.seq > {m} AND mv.seq <= {m} ORDER BY mv.seq, mv.id"
        )
        seen_seq, transfer_id = -1, None
        for row in self._rows(sql, (after, upto)):
            seq, detail, issuer, program, unit_type, vintage, start, end = row[:8]
            from_account, from_state, to_account, to_state = row[8:]
            if seq != seen_seq:
                seen_seq, transfer_id = seq, _transfer_of(detail)
            if transfer_id is None:
                continue
            yield JournalMove(
                registry,
                int(seq),
                transfer_id,
                issuer,
                program,
                unit_type,
                int(vintage),
                int(start),
                int(end),
                # No account: the serials arrived (from) or left (to) this registry.
                from_state if from_account is not None else None,
                to_state if to_account is not None else None,
            )


def _transfer_of(detail: str) -> str | None:
    if '"transfer_id"' not in detail:  # most entries: not worth parsing
        return None
    value = json.loads(detail).get("transfer_id")
    return value if isinstance(value, str) and value else None


def _age(created_at: str, now: datetime) -> float:
    created = datetime.fromisoformat(created_at)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return max(0.0, (now - created).total_seconds())


@contextmanager
def registry_read(store: Store) -> Iterator[RegistryRead]:
    """One consistent read of a registry database (see the module's docstring)."""
    with store.read() as tx:
        yield RegistryRead(tx.conn, sqlite=store.sqlite)


def snapshot_parts(
    store: Store,
    *,
    registry: str,
    run_id: str,
    signing_key: ed25519.Ed25519PrivateKey,
    now: Callable[[], datetime] = utc_now,
) -> Generator[pb.SignedPart, None, None]:
    """A registry's signed snapshot stream, produced as it is consumed: its issuance ranges,
    blocks and interstate transfer records, then the trailer (journal position, totals and
    unsettled transfers of the same read)."""
    writer = StreamWriter(registry, run_id, SNAPSHOT, signing_key)
    with registry_read(store) as read:
        position, head_hash = read.journal_head()  # the read's first statement fixes its moment
        yield from writer.issuances(read.issuances())
        yield from writer.blocks(read.blocks(read.classes()))
        yield from writer.transfers(read.transfers(registry))
        totals = read.totals()
        moment = now()
        unsettled = read.unsettled(moment)
    # The read transaction is over before the trailer leaves.
    yield writer.trailer(
        journal_position=position,
        journal_hash=head_hash if position else "",
        read_at=timestamp(moment),
        totals=totals,
        unsettled=unsettled,
    )


def journal_parts(
    store: Store,
    *,
    registry: str,
    run_id: str,
    after: int,
    transfer_ids: Iterable[str],
    signing_key: ed25519.Ed25519PrivateKey,
    now: Callable[[], datetime] = utc_now,
) -> Generator[pb.SignedPart, None, None]:
    """A registry's signed journal stream: the moves of transfers in (after, head], then its
    records of the transfers moved or asked for, then the trailer."""
    writer = StreamWriter(registry, run_id, JOURNAL, signing_key)
    with registry_read(store) as read:
        position, head_hash = read.journal_head()
        if after > position:
            raise InvalidArgument(
                f"journal position {after} is past {registry}'s head {position}",
                after=after,
                head=position,
            )
        moved: set[str] = set()

        def noting(moves: Iterator[JournalMove]) -> Iterator[JournalMove]:
            for move in moves:
                moved.add(move.transfer_id)
                yield move

        yield from writer.moves(noting(read.journal_moves(registry, after, position)))
        records = read.transfer_records(registry, moved.union(transfer_ids))
        yield from writer.transfers(records)
    yield writer.trailer(
        journal_position=position,
        journal_hash=head_hash if position else "",
        read_at=timestamp(now()),
        after=after,
    )
