"""Filling a registry's store for ``regfed bench reconcile``: the generator's blocks, issuance
ranges and transfers written into the registry's own SQLite database, with books that agree.

The database is created by :func:`regfed.node.open_registry` (schema, standing state accounts);
one general account is opened through the ledger. Then raw DBAPI ``executemany`` in large
batches writes, from the generator's stream (never all in memory):

* every block of the registry (:func:`regfed.reconciliation.bench._blocks`), the injected copies
  included: held and escrowed blocks in the general account, incoming ones pinned there,
  surrendered and retired ones in the surrender and retirement accounts, attributed to it;
* one ``journal_movements`` row per block recording its arrival (no origin, the block's place
  as destination), in journal entries of at most :data:`ENTRY_MOVEMENTS` movements that extend
  the registry's hash chain (``entry_hash`` over the entry's canonical body, ``journal_head``
  moved to the last one). Entries holding the registry's own unit classes are of kind ``issue``
  (the serials it issued and still holds), the others ``arrival``. So the journal replays to
  exactly the stored holdings, the chain verifies (``regfed ledger verify`` passes), and the
  totals a snapshot reports (the movements summed) are the blocks' totals;
* the registry's issuance ranges (:func:`regfed.reconciliation.bench._issuances`);
* a ``transfers`` row per transfer in flight: the source's ``proposed`` (escrowed, the accept on
  its way) or ``completed`` (debited, not settled), the destination's ``accepted`` (pinned), as
  the protocol's own records, with no outbox and no deadline in reach, so a node's re-drive has
  nothing to send and nothing expires while the bench runs.

Inserted copies are written through the books like every other block: they show up as serials
in two places and as supply not conserved, not as a registry whose totals disagree.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from regfed.gateway.protocol.destination import DestinationRecord
from regfed.gateway.protocol.lot import Lot
from regfed.gateway.protocol.records import destination_to_dict, source_to_dict
from regfed.gateway.protocol.source import SourceRecord
from regfed.gateway.protocol.status import TransferStatus
from regfed.node import OpenAccount, RepresentativeSpec, open_registry
from regfed.node.domain.account_numbers import AccountNumber
from regfed.node.domain.serials import SerialRange, UnitBlock, UnitClass
from regfed.node.ledger import timestamp, utc_now
from regfed.node.storage.journal_records import canonical_json
from regfed.reconciliation.bench import BenchInput, _blocks, _issuances, generate
from regfed.reconciliation.model import ESCROWED, HELD, INCOMING, RETIRED, SURRENDERED, Block

#: Movements per journal entry: each entry's canonical body (about 190 bytes a movement) is
#: built and hashed in memory, a few megabytes at a time.
ENTRY_MOVEMENTS = 20_000
#: Progress lines while filling, every this many blocks.
PROGRESS_EVERY = 200_000
#: A hold far beyond any run: nothing the bench leaves in flight expires under it.
HOLD_SECONDS = 10 * 365 * 24 * 3600.0
#: Tables whose secondary indexes are built after the load rather than row by row.
REBUILT_TABLES = ("blocks", "journal_movements")
ACTOR = "administrator:{code}-admin"
DETAIL = {"bench": "regfed bench reconcile", "note": "bulk load of a generated federation"}

_INSERT_BLOCK = (
    "INSERT INTO blocks (issuer, program, unit_type, vintage, start_serial, end_serial, "
    "account_id, state, attributed_account_id, transfer_id, quarantined, version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1)"
)
_INSERT_MOVEMENT = (
    "INSERT INTO journal_movements (seq, issuer, program, unit_type, vintage, start_serial, "
    "end_serial, from_account_id, from_state, from_attributed_account_id, to_account_id, "
    "to_state, to_attributed_account_id) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?, ?)"
)
_INSERT_ENTRY = (
    "INSERT INTO journal_entries (seq, operation_id, kind, actor, recorded_at, detail, "
    "prev_hash, hash) VALUES (?, NULL, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ISSUANCE = (
    "INSERT INTO issuances (issuer, program, unit_type, vintage, start_serial, end_serial, "
    "account_id, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TRANSFER = (
    "INSERT INTO transfers (transfer_id, side, peer, status, settled, record, from_account, "
    "to_account, quantity, created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class Shape:
    """What :func:`regfed.reconciliation.bench.generate` is asked for besides the size."""

    n_blocks: int
    registries: int
    overlaps: int
    seed: int
    codes: tuple[str, ...]
    blocks_per_class: int
    transit_every: int

    def spec(self) -> BenchInput:
        return generate(
            self.n_blocks,
            self.registries,
            self.overlaps,
            self.seed,
            codes=list(self.codes),
            blocks_per_class=self.blocks_per_class,
            transit_every=self.transit_every,
        )


def registry_codes(count: int) -> list[str]:
    """Valid registry codes (2-4 capital letters), one per generated registry: RA, RB, ...,
    RZ, then RAA, RAB, ..."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if count <= 26:
        return [f"R{letters[r]}" for r in range(count)]
    return [f"R{letters[r // 26]}{letters[r % 26]}" for r in range(count)]


def shape(n_blocks: int, registries: int, overlaps: int, seed: int) -> Shape:
    """The generated federation for ``n_blocks``: at most 500 unit classes (1000 blocks each up
    to 500 000 blocks, then larger) and at most about 5000 transfers in flight (a transfer every
    200 blocks of a class up to 500 000 blocks, then rarer). A node's snapshot trailer carries
    its totals per class and state and its unsettled transfers in one message of at most
    224 KiB; the pure benchmark's fixed shape (1000 blocks a class, a transfer every 200) would
    need 1.47 MB per registry at 10^7 blocks, which a node refuses to send (OVERSIZED)."""
    classes = max(1, min(500, -(-n_blocks // 1000)))
    per_class = -(-n_blocks // classes)
    every = 200 * max(1, round(n_blocks / 500_000))
    return Shape(
        n_blocks, registries, overlaps, seed, tuple(registry_codes(registries)), per_class, every
    )


@dataclass(frozen=True)
class Accounts:
    holdings: int
    holdings_number: str
    allocation: int
    surrender: int
    retirement: int


def _accounts(db: sqlite3.Connection) -> Accounts:
    rows = db.execute("SELECT id, number, type, purpose, name FROM accounts").fetchall()
    by_purpose = {purpose: i for i, _n, _t, purpose, _name in rows if purpose}
    general = [(i, n) for i, n, kind, _p, _name in rows if kind == "general"]
    return Accounts(
        general[0][0],
        general[0][1],
        by_purpose["allocation"],
        by_purpose["surrender"],
        by_purpose["retirement"],
    )


def _progress(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


class _Journal:
    """Journal entries of arrivals, each extending the hash chain, written batch by batch."""

    def __init__(self, db: sqlite3.Connection, code: str, at: str) -> None:
        self.db = db
        row = db.execute("SELECT seq, hash FROM journal_head WHERE id = 1").fetchone()
        self.seq, self.hash = (int(row[0]), str(row[1])) if row else (0, "0" * 64)
        if row is None:
            db.execute("INSERT INTO journal_head (id, seq, hash) VALUES (1, 0, ?)", (self.hash,))
        self.actor = ACTOR.format(code=code)
        self.at = at
        self.entries = 0
        self.detail = canonical_json(DETAIL)

    def write(
        self,
        kind: str,
        blocks: list[tuple[Any, ...]],
        moves: list[tuple[Any, ...]],
        texts: list[str],
        accounts: set[int],
    ) -> int:
        """One entry holding ``moves`` (their seq column still None), and the blocks they
        put in place. Returns the entry's seq."""
        seq = self.seq + 1
        body = (
            f'{{"accounts":{json.dumps(sorted(accounts), separators=(",", ":"))},'
            f'"actor":{json.dumps(self.actor)},"detail":{self.detail},"kind":{json.dumps(kind)},'
            f'"movements":[{",".join(texts)}],"operation_id":null,'
            f'"recorded_at":{json.dumps(self.at)},"seq":{seq}}}'
        )
        digest = hashlib.sha256((self.hash + body).encode()).hexdigest()
        db = self.db
        db.execute(_INSERT_ENTRY, (seq, kind, self.actor, self.at, self.detail, self.hash, digest))
        db.executemany(_INSERT_BLOCK, blocks)
        db.executemany(_INSERT_MOVEMENT, ((seq, *m) for m in moves))
        db.executemany(
            "INSERT INTO journal_accounts (seq, account_id) VALUES (?, ?)",
            ((seq, a) for a in sorted(accounts)),
        )
        self.seq, self.hash = seq, digest
        self.entries += 1
        return seq

    def close(self) -> None:
        self.db.execute(
            "UPDATE journal_head SET seq = ?, hash = ? WHERE id = 1", (self.seq, self.hash)
        )


def _class_json(key: tuple[str, str, str, int]) -> tuple[str, str]:
    issuer, program, unit_type, vintage = key
    middle = f'"issuer":{json.dumps(issuer)},"program":{json.dumps(program)},'
    tail = f'"unit_type":{json.dumps(unit_type)},"vintage":{vintage}'
    return middle, tail


def _places(accounts: Accounts) -> dict[str, tuple[int, int | None, str]]:
    """Each block state's (account, attributed account, the place as canonical JSON)."""
    places: dict[str, tuple[int, int | None]] = {
        HELD: (accounts.holdings, None),
        ESCROWED: (accounts.holdings, None),
        INCOMING: (accounts.holdings, None),
        SURRENDERED: (accounts.surrender, accounts.holdings),
        RETIRED: (accounts.retirement, accounts.holdings),
    }
    out: dict[str, tuple[int, int | None, str]] = {}
    for state, (account, attributed) in places.items():
        place: dict[str, object] = {"account_id": account, "state": state}
        if attributed is not None:
            place["attributed_account_id"] = attributed
        out[state] = (account, attributed, canonical_json(place))
    return out


def fill_registry(folder: str, shape_: Shape, r: int) -> dict[str, Any]:
    """Create and fill registry ``r``'s database at ``folder/<CODE>/registry.db``; returns
    what was written. Runs in a worker process of its own (see :func:`fill_all`)."""
    began = time.perf_counter()
    code = shape_.codes[r]
    spec = shape_.spec()
    path = Path(folder) / code / "registry.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    registry = open_registry(f"sqlite:///{path}", code)
    registry.ledger.open_account(
        OpenAccount(
            operation_id=f"bench-{code}-holdings",
            account_type="general",
            name="Bench holdings",
            representatives=(RepresentativeSpec(person="bench-trader", role="primary"),),
        ),
        registry.ledger.administrator,
    )
    registry.close()

    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")  # a bench's scratch database: rebuilt on a crash
        db.execute("PRAGMA cache_size=-131072")
        db.execute("PRAGMA foreign_keys=OFF")
        accounts = _accounts(db)
        db.execute("BEGIN IMMEDIATE")
        # Secondary indexes are dropped for the load and made again, from the schema's own
        # statements, at the end of the same transaction: one sort per index instead of a
        # b-tree insert per row.
        indexes = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN (" + ", ".join(f"'{t}'" for t in REBUILT_TABLES) + ")"
        ).fetchall()
        for name, _sql in indexes:
            db.execute(f'DROP INDEX "{name}"')
        written = _fill(db, code, spec, shape_, r, accounts)
        for _name, sql in indexes:
            db.execute(sql)
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("ANALYZE")
    finally:
        db.close()
    written["seconds"] = round(time.perf_counter() - began, 3)
    return written


def _fill(
    db: sqlite3.Connection,
    code: str,
    spec: BenchInput,
    shape_: Shape,
    r: int,
    accounts: Accounts,
) -> dict[str, Any]:
    at = timestamp(utc_now())
    journal = _Journal(db, code, at)
    places = _places(accounts)
    blocks: list[tuple[Any, ...]] = []
    moves: list[tuple[Any, ...]] = []
    texts: list[str] = []
    used: set[int] = set()
    kind = ""
    first_seq: dict[tuple[str, str, str, int], int] = {}  # own class -> its first entry
    pending: list[tuple[str, str, str, int]] = []  # own classes of the entry being built
    key: tuple[str, str, str, int] = ("", "", "", -1)
    middle = tail = ""
    count = 0

    def flush() -> None:
        seq = journal.write(kind, blocks, moves, texts, used)
        for k in pending:
            first_seq.setdefault(k, seq)
        blocks.clear()
        moves.clear()
        texts.clear()
        used.clear()
        pending.clear()

    b: Block
    for b in _blocks(spec, r, shape_.n_blocks):
        issuer, program, unit_type, vintage, start, end, _registry, state, tid = b
        if (issuer, program, unit_type, vintage) != key:
            key = (issuer, program, unit_type, vintage)
            middle, tail = _class_json(key)
            wanted = "issue" if issuer == code else "arrival"
            if wanted != kind and texts:
                flush()
            kind = wanted
            if issuer == code:
                pending.append(key)
        account, attributed, place = places[state]
        blocks.append(
            (issuer, program, unit_type, vintage, start, end, account, state, attributed, tid)
        )
        moves.append((issuer, program, unit_type, vintage, start, end, account, state, attributed))
        texts.append(f'{{"end":{end},"from":null,{middle}"start":{start},"to":{place},{tail}}}')
        used.add(account)
        count += 1
        if len(texts) >= ENTRY_MOVEMENTS:
            flush()
        if count % PROGRESS_EVERY == 0:
            _progress(f"filling {code}: {count:,} blocks")
    if texts:
        flush()
    fallback = journal.seq
    issuances = [
        (*i, accounts.allocation, first_seq.get(i[:4], fallback))
        for i in _issuances(spec, r, shape_.n_blocks)
    ]
    db.executemany(_INSERT_ISSUANCE, issuances)
    transfers = list(_transfer_rows(spec, code, accounts, at))
    db.executemany(_INSERT_TRANSFER, transfers)
    journal.close()
    _progress(f"filled {code}: {count:,} blocks")
    return {
        "registry": code,
        "blocks": count,
        "issuances": len(issuances),
        "transfers": len(transfers),
        "journal_entries": journal.entries,
    }


def _transfer_rows(
    spec: BenchInput, code: str, accounts: Accounts, at: str
) -> Iterator[tuple[Any, ...]]:
    expires = time.time() + HOLD_SECONDS
    for u in spec.unsettled[code]:
        (issuer, program, unit_type, vintage), start, end = spec.lot(u.transfer_id)
        block = UnitBlock(UnitClass(issuer, program, unit_type, vintage), SerialRange(start, end))
        # Every registry's general account is opened the same way: the peer's has this number.
        peer_number = str(AccountNumber.make(u.peer, accounts.holdings))
        if u.side == "source":
            lot = Lot((block,), accounts.holdings_number, peer_number)
            record: dict[str, Any] = source_to_dict(
                SourceRecord(
                    u.transfer_id,
                    code,
                    u.peer,
                    lot,
                    TransferStatus(u.status),
                    expires,
                    known=MappingProxyType({}),
                    outbox=None,
                )
            )
        else:
            lot = Lot((block,), peer_number, accounts.holdings_number)
            record = destination_to_dict(
                DestinationRecord(
                    u.transfer_id, u.peer, code, lot, TransferStatus(u.status), accepted_at=None
                )
            )
        yield (
            u.transfer_id,
            u.side,
            u.peer,
            u.status,
            json.dumps(record, sort_keys=True),
            lot.from_account,
            lot.to_account,
            end - start + 1,
            at,
            at,
        )
