"""End to end: the oversight certificate streams signed snapshots and journals from real node
processes over mutual TLS, verifies them against the keys pinned in the directory and feeds
them to reconciliation; every other certificate is refused WRONG_ROLE and changes nothing."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from federation_support import digest, fund, open_account, running_federation
from sqlalchemy import text
from stream_support import trailer_after_blocks

from regfed.certs.identity import Role
from regfed.gateway._generated.reconciliation.v1 import reconciliation_pb2 as pb
from regfed.gateway._generated.reconciliation.v1 import reconciliation_pb2_grpc as pb_grpc
from regfed.gateway.snapshot_stream import (
    MAX_PART_BYTES,
    SnapshotInfo,
    read_journal,
    read_snapshot,
)
from regfed.gateway.transport import CODE_KEY, MAX_MESSAGE_BYTES, channel_credentials
from regfed.local import Federation, LocalFederation, RegistryClient
from regfed.node import open_existing
from regfed.reconciliation import JournalWindow, RegistrySnapshot, reconcile

Running = tuple[Federation, LocalFederation]


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_federation(tmp_path_factory.mktemp("snapshots"), ["PA", "NY"]) as running:
        yield running


class Reader:
    """A Reconciliation client of one node, with one role's credential."""

    def __init__(
        self, federation: Federation, code: str, role: Role, as_of: str | None = None
    ) -> None:
        chain, key = federation.credential(as_of or code, role)
        credentials = channel_credentials(
            federation.ca.read_bytes(), chain.read_bytes(), key.read_bytes()
        )
        # The node's own message limit: every part must pass it.
        limit = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
        self.channel = grpc.secure_channel(federation.endpoint(code), credentials, limit)
        self.stub = pb_grpc.ReconciliationStub(self.channel)
        self.federation = federation
        self.code = code

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.channel.close()

    def snapshot(self, run_id: str) -> tuple[RegistrySnapshot, SnapshotInfo]:
        member = self.federation.directory().member(self.code)
        assert member is not None
        parts = self.stub.Snapshot(pb.SnapshotRequest(run_id=run_id), timeout=60)
        return read_snapshot(
            parts,
            registry=self.code,
            run_id=run_id,
            key=member.public_key,
            key_id=member.key_id,
        )

    def journal(
        self, run_id: str, after: int, transfer_ids: tuple[str, ...] = ()
    ) -> tuple[JournalWindow, SnapshotInfo]:
        member = self.federation.directory().member(self.code)
        assert member is not None
        request = pb.JournalRequest(run_id=run_id, after=after, transfer_ids=transfer_ids)
        return read_journal(
            self.stub.Journal(request, timeout=60),
            registry=self.code,
            run_id=run_id,
            after=after,
            key=member.public_key,
            key_id=member.key_id,
        )


def refused(call: Iterator[pb.SignedPart]) -> tuple[str, str, int]:
    """(gRPC status, regfed code, parts received before it) of a refused stream."""
    received = 0
    with pytest.raises(grpc.RpcError) as error:
        for _ in call:
            received += 1
    code = dict(error.value.trailing_metadata() or ()).get(CODE_KEY, "")
    return error.value.code().name, str(code), received


def transfer(federation: Federation, quantity: int) -> str:
    pa = open_account(federation, "PA", "trader1")
    ny = open_account(federation, "NY", "trader1")
    fund(federation, "PA", pa, quantity, issue=quantity + 5)  # PA keeps 5
    with RegistryClient(federation, "PA") as client:
        done = client.propose(pa, ny, quantity=quantity, wait_s=30)
    assert (done["status"], done["settled"]) == ("completed", True), done
    return str(done["transfer_id"])


def test_the_oversight_node_reconciles_verified_streams_clean(fed: Running) -> None:
    federation, _ = fed
    sent = transfer(federation, 25)
    run_id = f"run-{uuid.uuid4().hex}"
    with (
        Reader(federation, "PA", Role.OVERSIGHT) as pa,
        Reader(federation, "NY", Role.OVERSIGHT) as ny,
    ):
        streamed = [pa.snapshot(run_id), ny.snapshot(run_id)]
        snapshots = [trailer_after_blocks(snapshot) for snapshot, _ in streamed]
        result = reconcile(snapshots)
    assert result.clean, result.to_dict()
    for _, info in streamed:
        assert info.verified and info.journal_position and info.blocks_read > 0
    assert result.counts["registries"] == 2
    # Each side's record of the transfer, from its own stream.
    sides = {
        (t.registry, t.side, t.status)
        for snapshot in snapshots
        for t in snapshot.transfers
        if t.transfer_id == sent
    }
    assert sides == {("PA", "source", "completed"), ("NY", "destination", "completed")}


def test_the_journal_after_a_snapshot_holds_what_happened_since(fed: Running) -> None:
    federation, _ = fed
    run_id = f"run-{uuid.uuid4().hex}"
    with Reader(federation, "NY", Role.OVERSIGHT) as ny:
        snapshot, info = ny.snapshot(run_id)
        list(snapshot.blocks)
        list(snapshot.transfers)
        assert info.verified and info.journal_position is not None
        sent = transfer(federation, 6)
        window, journal = ny.journal(run_id, info.journal_position, ("unknown-transfer",))
    assert journal.verified and window.upto > window.after == info.journal_position
    assert {m.transfer_id for m in window.moves} == {sent}
    # At the destination: pinned as incoming (arrived), then credited, 6 units each time.
    steps = sorted({(m.seq, m.from_state or "", m.to_state or "") for m in window.moves})
    assert [(a, b) for _, a, b in steps] == [("", "incoming"), ("incoming", "held")]
    for seq, _, _ in steps:
        assert sum(m.end - m.start + 1 for m in window.moves if m.seq == seq) == 6
    assert list(window.records) == [sent] and window.records[sent].side == "destination"


def test_every_other_certificate_is_refused_and_changes_nothing(fed: Running) -> None:
    federation, _ = fed
    before = digest(federation, "PA")
    callers = [
        Reader(federation, "PA", Role.TRADER),
        Reader(federation, "PA", Role.ADMINISTRATOR),
        Reader(federation, "PA", Role.REGISTRY),  # PA's own node certificate
        Reader(federation, "PA", Role.REGISTRY, as_of="NY"),  # another registry's node
    ]
    try:
        for reader in callers:
            snapshot = reader.stub.Snapshot(pb.SnapshotRequest(run_id="r"), timeout=30)
            assert refused(snapshot) == ("PERMISSION_DENIED", "WRONG_ROLE", 0)
            journal = reader.stub.Journal(pb.JournalRequest(run_id="r"), timeout=30)
            assert refused(journal) == ("PERMISSION_DENIED", "WRONG_ROLE", 0)
            # Refused for who it is before what it asks.
            assert refused(reader.stub.Snapshot(pb.SnapshotRequest(), timeout=30))[1] == (
                "WRONG_ROLE"
            )
    finally:
        for reader in callers:
            reader.channel.close()
    assert digest(federation, "PA") == before


def test_malformed_requests_are_refused(fed: Running) -> None:
    federation, _ = fed
    invalid = ("INVALID_ARGUMENT", "INVALID_ARGUMENT", 0)
    with Reader(federation, "PA", Role.OVERSIGHT) as pa:
        stub = pa.stub
        assert refused(stub.Snapshot(pb.SnapshotRequest(run_id=""), timeout=30)) == invalid
        for request in (
            pb.JournalRequest(run_id=""),
            pb.JournalRequest(run_id="r", after=-1),
            pb.JournalRequest(run_id="r", transfer_ids=[f"t{i}" for i in range(10_001)]),
            pb.JournalRequest(run_id="r", transfer_ids=["x" * 65]),
            pb.JournalRequest(run_id="r", after=10**12),  # past the head
        ):
            assert refused(stub.Journal(request, timeout=30)) == invalid, request


def test_a_large_snapshot_streams_in_parts_while_the_node_keeps_trading(tmp_path: Path) -> None:
    with running_federation(tmp_path, ["PA", "NY"]) as (federation, _):
        transfer(federation, 5)  # both nodes up and trading
        _insert_blocks(federation, "NY", 40_000)
        run_id = "large"
        with Reader(federation, "NY", Role.OVERSIGHT) as ny:
            parts = ny.stub.Snapshot(pb.SnapshotRequest(run_id=run_id), timeout=120)
            first = next(parts)  # the node's read has begun; the rest waits for us
            sent = transfer(federation, 3)  # NY pins and credits meanwhile
            received: list[pb.SignedPart] = [first]

            def counted() -> Iterator[pb.SignedPart]:
                for part in itertools.chain([first], parts):
                    if part is not first:
                        received.append(part)
                    yield part

            member = federation.directory().member("NY")
            assert member is not None
            snapshot, info = read_snapshot(
                counted(),
                registry="NY",
                run_id=run_id,
                key=member.public_key,
                key_id=member.key_id,
            )
            blocks = list(snapshot.blocks)
            transfers = list(snapshot.transfers)
        assert info.verified and info.blocks_read == len(blocks) >= 40_000
        assert len(received) > 5
        assert all(len(p.payload) <= MAX_PART_BYTES for p in received[:-1])
        # One moment: the transfer made while the stream was open is not in it.
        assert sent not in {t.transfer_id for t in transfers}


def _insert_blocks(federation: Federation, code: str, count: int) -> None:
    """Blocks of a class no one issued, straight into the node's table (a stream of many
    parts; this test does not reconcile)."""
    reg = open_existing(federation.node_config(code).database)
    try:
        with reg.engine.begin() as conn:
            account = conn.execute(text("SELECT MIN(id) FROM accounts")).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO blocks (issuer, program, unit_type, vintage, start_serial, "
                    "end_serial, account_id, state, quarantined, version) VALUES "
                    "('ZZ', 'RGGI', 'allowance', 2030, :s, :e, :a, 'held', false, 1)"
                ),
                [{"s": 2 * i, "e": 2 * i, "a": account} for i in range(count)],
            )
    finally:
        reg.close()
