"""A registry's snapshot and journal streams read from its real tables, on both engines: the
records are the tables', the read is one moment even while others write, and the journal after
that moment holds exactly what was written since."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pair_support import KEYS, Pair, gateway_pair
from sqlalchemy import text
from stream_support import trailer_after_blocks

from regfed.certs.directory import key_id
from regfed.gateway._generated.reconciliation.v1 import reconciliation_pb2 as pb
from regfed.gateway.service import Gateway, Outbound
from regfed.gateway.snapshot_source import journal_parts, registry_read, snapshot_parts
from regfed.gateway.snapshot_stream import (
    MAX_PART_BYTES,
    SnapshotInfo,
    read_journal,
    read_snapshot,
)
from regfed.node import Registry, Selection, StatePurpose, Transfer, open_registry
from regfed.node.domain.errors import InvalidArgument
from regfed.reconciliation import (
    Block,
    IssuanceRange,
    JournalWindow,
    RegistrySnapshot,
    TotalsKey,
    TransferRecord,
    reconcile,
)
from support import issue, open_general

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class Funded(Pair):
    """The pair with alice's PA account funded and carol's NY account to send to."""

    alice: str = ""
    carol: str = ""

    def send(self, quantity: int) -> tuple[str, list[Outbound]]:
        view, outbound = self.propose("alice", self.alice, self.carol, Selection(quantity=quantity))
        return view.transfer_id, outbound


@pytest.fixture
def pair(db_url: str, tmp_path: Path) -> Iterator[Funded]:
    """PA on the engine under test (``db_url``) and NY on the same engine; PA has issued two
    classes, sent one transfer to NY that completed, and one that NY holds as incoming."""
    with gateway_pair(db_url, tmp_path) as gateways:
        pa, ny = gateways.pa.registry, gateways.ny.registry
        alice, carol = open_general(pa, "alice"), open_general(ny, "carol")
        issue(pa, 1000)
        issue(pa, 40, vintage=2024)
        alloc = pa.state_account(StatePurpose.ALLOCATION).label
        pa.ledger.transfer(
            Transfer(
                operation_id="fund",
                from_account=alloc,
                to_account=alice,
                selection=Selection(quantity=300),
            ),
            pa.ledger.administrator,
        )
        built = Funded(gateways.pa, gateways.ny, alice, carol)
        _, outbound = built.send(120)
        built.deliver(outbound)  # completed on both sides
        _, outbound = built.send(10)
        built.deliver(outbound, rounds=1)  # NY pinned it as incoming; PA's commit not delivered
        yield built


def snapshot_of(gateway: Gateway, run_id: str = "run-1") -> tuple[RegistrySnapshot, SnapshotInfo]:
    parts = snapshot_parts(
        gateway.ledger.store, registry=gateway.me, run_id=run_id, signing_key=gateway.signing_key
    )
    return read(parts, gateway.me, run_id)


def read(
    parts: Iterator[pb.SignedPart], registry: str, run_id: str = "run-1"
) -> tuple[RegistrySnapshot, SnapshotInfo]:
    public = KEYS[registry].public_key()
    return read_snapshot(parts, registry=registry, run_id=run_id, key=public, key_id=key_id(public))


def journal_of(
    gateway: Gateway, after: int, transfer_ids: tuple[str, ...] = ()
) -> tuple[JournalWindow, SnapshotInfo]:
    parts = journal_parts(
        gateway.ledger.store,
        registry=gateway.me,
        run_id="run-1",
        after=after,
        transfer_ids=transfer_ids,
        signing_key=gateway.signing_key,
    )
    public = KEYS[gateway.me].public_key()
    return read_journal(
        parts, registry=gateway.me, run_id="run-1", after=after, key=public, key_id=key_id(public)
    )


def rows(reg: Registry, sql: str) -> list[Any]:
    with reg.engine.connect() as conn:
        return list(conn.execute(text(sql)))


@dataclasses.dataclass(frozen=True)
class Said:
    """What a snapshot says, or must say."""

    blocks: list[Block]
    issuances: list[IssuanceRange]
    totals: dict[TotalsKey, int]
    transfers: list[TransferRecord]
    unsettled: list[str]
    journal: tuple[int | None, str | None]


def tables(reg: Registry) -> Said:
    """What the snapshot must say, straight from the tables (and sorted here, in Python)."""
    unit = "issuer, program, unit_type, vintage, start_serial, end_serial"
    code = reg.code
    blocks = sorted(
        Block(
            r.issuer,
            r.program,
            r.unit_type,
            r.vintage,
            r.start_serial,
            r.end_serial,
            code,
            r.state,
            r.transfer_id,
        )
        for r in rows(reg, f"SELECT {unit}, state, transfer_id FROM blocks")
    )
    # The registry's books: every journal movement into a state, minus every one out of it.
    totals: dict[TotalsKey, int] = {}
    for m in rows(
        reg,
        f"SELECT {unit}, from_account_id, from_state, to_account_id, to_state "
        "FROM journal_movements",
    ):
        quantity = m.end_serial - m.start_serial + 1
        for account, state, sign in (
            (m.to_account_id, m.to_state, 1),
            (m.from_account_id, m.from_state, -1),
        ):
            if account is not None:
                key = (m.issuer, m.program, m.unit_type, m.vintage, state)
                totals[key] = totals.get(key, 0) + sign * quantity
    totals = {k: v for k, v in totals.items() if v}
    transfers = sorted(
        TransferRecord(r.transfer_id, code, r.side, r.peer, r.status, bool(r.settled), r.quantity)
        for r in rows(
            reg,
            "SELECT transfer_id, side, peer, status, settled, quantity FROM transfers "
            "WHERE side IN ('source', 'destination')",
        )
    )
    [(head, head_hash)] = rows(reg, "SELECT seq, hash FROM journal_head") or [(0, "")]
    return Said(
        blocks=blocks,
        issuances=sorted(IssuanceRange(*r) for r in rows(reg, f"SELECT {unit} FROM issuances")),
        totals=totals,
        transfers=transfers,
        unsettled=sorted(t.transfer_id for t in transfers if not t.settled),
        journal=(head, head_hash),
    )


def said(snapshot: RegistrySnapshot, info: SnapshotInfo) -> Said:
    blocks, transfers = list(snapshot.blocks), list(snapshot.transfers)
    assert info.verified
    return Said(
        blocks=blocks,
        issuances=list(snapshot.issuances),
        totals=dict(snapshot.totals),
        transfers=transfers,
        unsettled=sorted(u.transfer_id for u in snapshot.unsettled),
        journal=(info.journal_position, info.journal_hash),
    )


def test_a_snapshot_says_what_the_tables_hold(pair: Funded) -> None:
    for gateway in (pair.pa, pair.ny):
        expected = tables(gateway.registry)
        assert said(*snapshot_of(gateway)) == expected
    states = {b.state for b in tables(pair.ny.registry).blocks}
    assert "incoming" in states  # the fixture left a transfer in flight
    [unsettled] = tables(pair.pa.registry).unsettled
    snapshot, info = snapshot_of(pair.pa)
    said(snapshot, info)
    assert [u.transfer_id for u in info.unsettled] == [unsettled]
    assert info.unsettled[0].age_seconds >= 0


def test_the_registries_snapshots_reconcile_clean(pair: Funded) -> None:
    snapshots = [trailer_after_blocks(snapshot_of(g)[0]) for g in (pair.pa, pair.ny)]
    result = reconcile(snapshots)
    assert result.clean, result.to_dict()
    assert result.counts["registries"] == 2 and len(result.in_transit) == 1


def test_a_write_during_the_snapshot_is_not_in_it_and_is_the_journal_after_it(
    pair: Funded,
) -> None:
    before = tables(pair.pa.registry)
    parts = snapshot_parts(
        pair.pa.ledger.store, registry="PA", run_id="run-1", signing_key=KEYS["PA"]
    )
    first = next(parts)  # the read has begun
    transfer_id, _ = pair.send(7)  # committed on another connection: an escrow
    after = tables(pair.pa.registry)
    assert after.blocks != before.blocks
    snapshot, info = read(itertools.chain([first], parts), "PA")
    assert said(snapshot, info) == before
    position = info.journal_position
    assert position is not None and before.journal[0] == position

    window, journal_info = journal_of(pair.pa, position)
    assert journal_info.verified and window.upto == position + 1
    assert {m.transfer_id for m in window.moves} == {transfer_id}
    assert {(m.seq, m.from_state, m.to_state) for m in window.moves} == {
        (position + 1, "held", "escrowed")
    }
    assert sum(m.end - m.start + 1 for m in window.moves) == 7
    assert list(window.records) == [transfer_id]
    assert window.records[transfer_id].status == "proposed"


def test_the_journal_names_arrivals_and_departures_and_the_records_asked_for(pair: Funded) -> None:
    moves = list(journal_of(pair.ny, 0)[0].moves)
    arrived = [m for m in moves if m.from_state is None]
    assert arrived and all(m.to_state == "incoming" for m in arrived)
    pa_window, _ = journal_of(pair.pa, 0, ("no-such-transfer",))
    departed = [m for m in pa_window.moves if m.to_state is None]
    assert departed and all(m.from_state == "escrowed" for m in departed)
    assert "no-such-transfer" not in pa_window.records
    # Issuances and the funding transfer are not a transfer's steps: not in the window.
    assert {m.transfer_id for m in pa_window.moves} == set(pa_window.records)
    completed = next(t for t in pa_window.records.values() if t.settled)
    snapshot, info = snapshot_of(pair.pa)
    said(snapshot, info)
    window, _ = journal_of(pair.pa, info.journal_position or 0, (completed.transfer_id,))
    assert window.moves == () and list(window.records) == [completed.transfer_id]


def test_a_journal_position_past_the_head_is_refused(pair: Funded) -> None:
    snapshot, info = snapshot_of(pair.pa)
    said(snapshot, info)
    with pytest.raises(InvalidArgument, match="past PA's head"):
        journal_of(pair.pa, (info.journal_position or 0) + 1)


def test_many_blocks_stream_in_parts_under_the_limit(db_url: str) -> None:
    reg = open_registry(db_url, "PA")
    try:
        account = reg.state_account(StatePurpose.ALLOCATION).id
        many = [
            {
                "issuer": issuer,
                "program": "RGGI",
                "unit_type": "allowance",
                "vintage": 2025,
                "start": 3 * i,
                "end": 3 * i + 1,
                "account": account,
                "state": "escrowed" if i % 11 == 0 else "held",
                "transfer_id": f"transfer-{i:08d}" if i % 11 == 0 else None,
            }
            # "Pa" after "PA" and before "pa": code-point order, which PostgreSQL's default
            # collation does not follow; the stream must.
            for issuer in ("PA", "Pa", "pa")
            for i in range(10_000)
        ]
        with reg.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO blocks (issuer, program, unit_type, vintage, start_serial, "
                    "end_serial, account_id, state, transfer_id, quarantined, version) VALUES "
                    "(:issuer, :program, :unit_type, :vintage, :start, :end, :account, :state, "
                    ":transfer_id, false, 1)"
                ),
                many,
            )
        gateway_parts = list(
            snapshot_parts(reg.ledger.store, registry="PA", run_id="big", signing_key=KEYS["PA"])
        )
        assert len(gateway_parts) > 6
        assert all(len(p.payload) <= MAX_PART_BYTES for p in gateway_parts[:-1])
        snapshot, info = read(iter(gateway_parts), "PA", "big")
        # Written behind the ledger's back: the blocks stream as they are; the books (the
        # journal) know none of them, so reconciliation's check 4 would name every class.
        assert said(snapshot, info) == tables(reg)
        assert snapshot.totals == {}
        assert info.blocks_read == 30_000
    finally:
        reg.close()


def test_the_read_is_one_read_only_transaction(db_url: str) -> None:
    reg = open_registry(db_url, "PA")
    try:
        with registry_read(reg.ledger.store) as read_:
            if read_.sqlite:
                # A transaction on the node's own engine, in WAL mode: a snapshot of one moment.
                [(mode,)] = list(read_._rows("PRAGMA journal_mode"))
                assert mode == "wal" and read_.driver.in_transaction
            else:
                [(level,)] = list(read_._rows("SELECT current_setting('transaction_isolation')"))
                [(read_only,)] = list(
                    read_._rows("SELECT current_setting('transaction_read_only')")
                )
                assert (level, read_only) == ("repeatable read", "on")
    finally:
        reg.close()
