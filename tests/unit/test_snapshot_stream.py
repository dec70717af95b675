"""The signed snapshot and journal streams: what a node writes reads back as it was, lazily, and
every break of the contract is refused with its code before anything from it is trusted."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from stream_support import trailer_after_blocks

from regfed.certs.directory import key_id
from regfed.gateway._generated.reconciliation.v1 import reconciliation_pb2 as pb
from regfed.gateway.snapshot_stream import (
    JOURNAL,
    MAX_PART_BYTES,
    MAX_TRAILER_BYTES,
    SNAPSHOT,
    ClassBlocks,
    Refusal,
    SnapshotInfo,
    StreamTooLarge,
    StreamWriter,
    class_blocks,
    read_journal,
    read_snapshot,
)
from regfed.gateway.transport import MAX_MESSAGE_BYTES
from regfed.reconciliation import (
    Block,
    IssuanceRange,
    JournalMove,
    JournalWindow,
    MalformedSnapshot,
    RegistrySnapshot,
    TotalsKey,
    TransferRecord,
    UnsettledTransfer,
    reconcile,
)

pytestmark = pytest.mark.unit

KEY = ed25519.Ed25519PrivateKey.generate()
OTHER = ed25519.Ed25519PrivateKey.generate()
READ_AT = "2026-11-23T10:00:00.000000Z"


def rows_of(blocks: list[Block]) -> list[ClassBlocks]:
    return list(class_blocks(blocks))


def totals_of(blocks: list[Block]) -> dict[TotalsKey, int]:
    out: dict[TotalsKey, int] = {}
    for b in blocks:
        k = (b.issuer, b.program, b.unit_type, b.vintage, b.state)
        out[k] = out.get(k, 0) + b.quantity
    return out


def pa_blocks() -> list[Block]:
    return [
        Block("PA", "RGGI", "allowance", 2025, 1, 100, "PA", "held"),
        Block("PA", "RGGI", "allowance", 2025, 101, 110, "PA", "escrowed", "t-2"),
        Block("PA", "RGGI", "allowance", 2025, 111, 200, "PA", "held"),
        Block("PA", "RGGI", "offset", 2024, 1, 50, "PA", "retired"),
    ]


PA_ISSUANCES = [
    IssuanceRange("PA", "RGGI", "allowance", 2025, 1, 300),
    IssuanceRange("PA", "RGGI", "offset", 2024, 1, 50),
]
PA_TRANSFERS = [
    TransferRecord("t-1", "PA", "source", "NY", "completed", True, 100),
    TransferRecord("t-2", "PA", "source", "NY", "accepted", False, 10),
]
PA_UNSETTLED = [UnsettledTransfer("t-2", "source", "accepted", "NY", 12.5)]


def snapshot_stream(
    *,
    run_id: str = "run-1",
    registry: str = "PA",
    blocks: list[Block] | None = None,
    issuances: list[IssuanceRange] | None = None,
    transfers: list[TransferRecord] | None = None,
    unsettled: list[UnsettledTransfer] | None = None,
    signing_key: ed25519.Ed25519PrivateKey = KEY,
    position: int = 42,
) -> list[pb.SignedPart]:
    blocks = pa_blocks() if blocks is None else blocks
    writer = StreamWriter(registry, run_id, SNAPSHOT, signing_key)
    parts = [
        *writer.issuances(PA_ISSUANCES if issuances is None else issuances),
        *writer.blocks(rows_of(blocks)),
        *writer.transfers(PA_TRANSFERS if transfers is None else transfers),
    ]
    trailer = writer.trailer(
        journal_position=position,
        journal_hash="ab" * 32,
        read_at=READ_AT,
        totals=totals_of(blocks),
        unsettled=PA_UNSETTLED if unsettled is None else unsettled,
    )
    return [*parts, trailer]


def read(
    parts: list[pb.SignedPart],
    *,
    run_id: str = "run-1",
    registry: str = "PA",
    key: ed25519.Ed25519PrivateKey = KEY,
) -> tuple[RegistrySnapshot, SnapshotInfo]:
    public = key.public_key()
    return read_snapshot(
        iter(parts), registry=registry, run_id=run_id, key=public, key_id=key_id(public)
    )


def section(part: pb.SignedPart) -> str:
    return str(pb.StreamPart.FromString(part.payload).WhichOneof("part"))


def first(parts: list[pb.SignedPart], name: str) -> int:
    return next(i for i, p in enumerate(parts) if section(p) == name)


def consume(snapshot: RegistrySnapshot) -> tuple[list[Block], list[TransferRecord]]:
    """In the sweep's order: the blocks, then the transfers (whose end reads the trailer)."""
    return list(snapshot.blocks), list(snapshot.transfers)


def refusal(parts: list[pb.SignedPart], **kwargs: object) -> str:
    with pytest.raises(MalformedSnapshot) as refused:
        consume(read(parts, **kwargs)[0])  # type: ignore[arg-type]
    assert refused.value.registry == kwargs.get("registry", "PA")
    return refused.value.reason.split(":")[0]


# -- round trip ----------------------------------------------------------------------------------


def test_a_snapshot_reads_back_as_it_was_written() -> None:
    snapshot, info = read(snapshot_stream())
    assert list(snapshot.issuances) == PA_ISSUANCES
    blocks, transfers = consume(snapshot)
    assert blocks == pa_blocks()
    assert transfers == PA_TRANSFERS
    assert snapshot.totals == totals_of(pa_blocks())
    assert list(snapshot.unsettled) == PA_UNSETTLED
    assert info.verified
    assert (info.journal_position, info.journal_hash, info.read_at) == (42, "ab" * 32, READ_AT)
    assert (info.blocks_read, info.transfers_read) == (4, 2)


def test_totals_and_unsettled_are_filled_only_once_the_trailer_verifies() -> None:
    taken: list[pb.SignedPart] = []

    def counted(parts: list[pb.SignedPart]) -> Iterator[pb.SignedPart]:
        for part in parts:
            taken.append(part)
            yield part

    parts = snapshot_stream()
    public = KEY.public_key()
    snapshot, info = read_snapshot(
        counted(parts), registry="PA", run_id="run-1", key=public, key_id=key_id(public)
    )
    # The issuances are read at once; the first block part waits (read, not yet consumed).
    assert len(taken) == first(parts, "blocks") + 1 and info.blocks_read == 0
    totals, unsettled = snapshot.totals, snapshot.unsettled
    assert list(snapshot.blocks) == pa_blocks()
    assert (info.blocks_read, info.verified) == (4, False)
    assert totals == {} and unsettled == []
    assert list(snapshot.transfers) == PA_TRANSFERS
    assert info.verified and len(taken) == len(parts)
    # Filled in place: the objects handed out before the trailer now hold its contents.
    assert totals is snapshot.totals and totals == totals_of(pa_blocks())
    assert unsettled == PA_UNSETTLED


def test_transfers_cannot_be_read_before_the_blocks() -> None:
    snapshot, _ = read(snapshot_stream())
    with pytest.raises(RuntimeError, match="blocks must be read before the transfers"):
        list(snapshot.transfers)


def test_many_blocks_span_parts_that_stay_under_the_limit() -> None:
    blocks = [
        Block(
            "PA",
            "RGGI",
            "allowance",
            2025 + i // 40_000,
            2 * i,
            2 * i,
            "PA",
            "escrowed" if i % 7 == 0 else "held",
            f"transfer-{i:058d}" if i % 7 == 0 else None,
        )
        for i in range(100_000)
    ]
    issuances = [
        IssuanceRange("PA", "RGGI", "allowance", v, 0, 300_000) for v in (2025, 2026, 2027)
    ]
    parts = snapshot_stream(blocks=blocks, issuances=issuances, transfers=[], unsettled=[])
    assert all(len(p.payload) <= MAX_PART_BYTES for p in parts)
    ranges = [pb.StreamPart.FromString(p.payload).blocks for p in parts if section(p) == "blocks"]
    assert len(ranges) > 3  # cut by size, and at each of the three vintages
    assert {r.vintage for r in ranges} == {2025, 2026, 2027}
    snapshot, info = read(parts)
    assert consume(snapshot) == (blocks, [])
    assert info.verified and info.blocks_read == len(blocks)


def test_transfer_ids_are_sent_only_with_parts_that_have_one() -> None:
    blocks = [Block("PA", "RGGI", "allowance", 2025, 1, 9, "PA", "held")]
    parts = snapshot_stream(blocks=blocks)
    ranges = pb.StreamPart.FromString(parts[first(parts, "blocks")].payload).blocks
    assert list(ranges.transfer_ids) == [] and ranges.states == b"\x00"


def test_a_sound_federation_read_from_its_streams_reconciles_clean() -> None:
    ny_blocks = [Block("PA", "RGGI", "allowance", 2025, 101, 110, "NY", "incoming", "t-2")]
    ny_blocks += [Block("PA", "RGGI", "allowance", 2025, 201, 300, "NY", "held")]
    ny = snapshot_stream(
        registry="NY",
        blocks=ny_blocks,
        issuances=[],
        transfers=[
            TransferRecord("t-1", "NY", "destination", "PA", "completed", True, 100),
            TransferRecord("t-2", "NY", "destination", "PA", "accepted", False, 10),
        ],
        unsettled=[UnsettledTransfer("t-2", "destination", "accepted", "PA", 3.0)],
    )
    pa, pa_info = read(snapshot_stream())
    ny_snapshot, ny_info = read(ny, registry="NY")
    result = reconcile([trailer_after_blocks(pa), trailer_after_blocks(ny_snapshot)])
    assert result.clean, result.to_dict()
    assert pa_info.verified and ny_info.verified
    [flight] = result.in_transit
    assert (flight.transfer_id, flight.source, flight.destination) == ("t-2", "PA", "NY")
    assert flight.age_seconds == 12.5  # the source's own age


def test_a_journal_window_reads_back_as_it_was_written() -> None:
    moves = [
        JournalMove("PA", 43, "t-3", "PA", "RGGI", "allowance", 2025, 1, 5, "held", "escrowed"),
        JournalMove("PA", 44, "t-3", "PA", "RGGI", "allowance", 2025, 1, 5, "escrowed", None),
        JournalMove("PA", 45, "t-4", "NY", "RGGI", "allowance", 2025, 7, 9, None, "incoming"),
    ]
    records = [
        TransferRecord("t-3", "PA", "source", "NY", "completed", True, 5),
        TransferRecord("t-4", "PA", "destination", "NY", "accepted", False, 3),
    ]
    window, info = journal(journal_stream(moves, records))
    assert (window.registry, window.after, window.upto) == ("PA", 42, 45)
    assert list(window.moves) == moves
    assert dict(window.records) == {r.transfer_id: r for r in records}
    assert info.verified and info.journal_position == 45


def journal_stream(
    moves: list[JournalMove],
    records: list[TransferRecord],
    *,
    after: int = 42,
    position: int = 45,
    run_id: str = "run-1",
) -> list[pb.SignedPart]:
    writer = StreamWriter("PA", run_id, JOURNAL, KEY)
    parts = [*writer.moves(moves), *writer.transfers(records)]
    trailer = writer.trailer(
        journal_position=position, journal_hash="cd" * 32, read_at=READ_AT, after=after
    )
    return [*parts, trailer]


def journal(parts: list[pb.SignedPart], after: int = 42) -> tuple[JournalWindow, SnapshotInfo]:
    public = KEY.public_key()
    return read_journal(
        parts, registry="PA", run_id="run-1", after=after, key=public, key_id=key_id(public)
    )


# -- refusals ------------------------------------------------------------------------------------


def with_trailer_signature(parts: list[pb.SignedPart], signature: bytes) -> list[pb.SignedPart]:
    last = parts[-1]
    return [
        *parts[:-1],
        pb.SignedPart(payload=last.payload, signature=signature, key_id=last.key_id),
    ]


def test_a_trailer_whose_signature_does_not_verify_is_refused() -> None:
    parts = snapshot_stream()
    forged = bytearray(parts[-1].signature)
    forged[0] ^= 1
    assert refusal(with_trailer_signature(parts, bytes(forged))) == Refusal.BAD_SIGNATURE
    assert refusal(with_trailer_signature(parts, b"")) == Refusal.BAD_SIGNATURE


def test_a_trailer_signed_by_another_key_is_refused() -> None:
    # Under another key id: not the key pinned for PA.
    assert refusal(snapshot_stream(signing_key=OTHER)) == Refusal.UNKNOWN_KEY
    # Claiming PA's key id: the signature does not verify against PA's key.
    other = snapshot_stream(signing_key=OTHER)
    last = other[-1]
    claimed = pb.SignedPart(
        payload=last.payload, signature=last.signature, key_id=key_id(KEY.public_key())
    )
    assert refusal([*other[:-1], claimed]) == Refusal.BAD_SIGNATURE


def test_a_part_altered_after_signing_is_refused() -> None:
    parts = snapshot_stream()
    at = first(parts, "blocks")
    part = pb.StreamPart.FromString(parts[at].payload)
    part.blocks.ends[0] += 1  # a well-formed part, one serial longer than the node sent
    altered = [*parts[:at], pb.SignedPart(payload=part.SerializeToString()), *parts[at + 1 :]]
    assert refusal(altered) == Refusal.DIGEST_MISMATCH


def test_parts_dropped_or_added_are_refused() -> None:
    parts = snapshot_stream()
    at = first(parts, "blocks")
    assert refusal([*parts[:at], *parts[at + 1 :]]) == Refusal.COUNT_MISMATCH
    assert refusal([*parts[: at + 1], *parts[at:]]) == Refusal.COUNT_MISMATCH


def test_a_trailer_replayed_from_another_run_is_refused() -> None:
    # Nothing changed between the runs: every part is the same, only the run id differs.
    run_a, run_b = snapshot_stream(run_id="run-A"), snapshot_stream(run_id="run-B")
    assert [p.payload for p in run_a[:-1]] == [p.payload for p in run_b[:-1]]
    assert refusal([*run_b[:-1], run_a[-1]], run_id="run-B") == Refusal.WRONG_RUN
    snapshot, info = read(run_b, run_id="run-B")  # run B's own trailer verifies
    consume(snapshot)
    assert info.verified


def test_a_stream_of_another_registry_or_kind_is_refused() -> None:
    # PA's stream presented as NY's (the key given is PA's: only the trailer tells).
    assert refusal(snapshot_stream(), registry="NY") == Refusal.WRONG_REGISTRY
    # A journal trailer ending a snapshot stream with no parts (as an empty journal's has).
    writer = StreamWriter("PA", "run-1", JOURNAL, KEY)
    journal_trailer = writer.trailer(journal_position=0, journal_hash="", read_at=READ_AT)
    assert refusal([journal_trailer]) == Refusal.WRONG_KIND


def test_a_journal_of_another_window_is_refused() -> None:
    parts = journal_stream([], [], after=40)
    with pytest.raises(MalformedSnapshot, match=r"^PA: WRONG_WINDOW"):
        journal(parts)
    snapshot = snapshot_stream()
    with pytest.raises(
        MalformedSnapshot, match=r"^PA: OUT_OF_ORDER: issuances in a journal stream"
    ):
        journal(snapshot)


def test_a_journal_move_outside_its_window_is_refused() -> None:
    move = JournalMove("PA", 46, "t-3", "PA", "RGGI", "allowance", 2025, 1, 5, "held", None)
    with pytest.raises(MalformedSnapshot, match="MALFORMED: a move outside the window"):
        journal(journal_stream([move], []))


def test_a_stream_that_ends_without_its_trailer_is_refused() -> None:
    parts = snapshot_stream()
    assert refusal(parts[:-1]) == Refusal.TRUNCATED
    assert refusal([]) == Refusal.TRUNCATED
    with pytest.raises(MalformedSnapshot, match="TRUNCATED"):
        read(parts[:1])  # even while the issuances are read


def test_parts_out_of_section_order_are_refused() -> None:
    parts = snapshot_stream()
    at = first(parts, "blocks")
    issuances, blocks = parts[at - 1], parts[at]
    # The same parts, a block part first: refused before any digest is compared.
    swapped = [*parts[: at - 1], blocks, issuances, *parts[at + 1 :]]
    assert refusal(swapped) == Refusal.OUT_OF_ORDER
    assert refusal([*parts, parts[-1]]) == Refusal.OUT_OF_ORDER  # a part after the trailer
    moves = StreamWriter("PA", "run-1", JOURNAL, KEY).moves(
        [JournalMove("PA", 1, "t", "PA", "RGGI", "allowance", 2025, 1, 1, "held", None)]
    )
    assert refusal([*parts[:at], *moves, *parts[at:]]) == Refusal.OUT_OF_ORDER
    unsorted = list(reversed(PA_TRANSFERS))
    assert refusal(snapshot_stream(transfers=unsorted)) == Refusal.OUT_OF_ORDER


def signed_stream(*data: pb.StreamPart, run_id: str = "run-1") -> list[pb.SignedPart]:
    """Parts signed as a node signs them, written here from the format's description: the
    refusals below are of content the signature vouches for."""
    digest = hashlib.sha256()
    payloads = [p.SerializeToString() for p in data]
    for payload in payloads:
        digest.update(len(payload).to_bytes(8, "big") + payload)
    trailer = pb.Trailer(
        run_id=run_id,
        registry="PA",
        kind=SNAPSHOT,
        parts=len(payloads),
        digest=digest.digest(),
        read_at=READ_AT,
    )
    payload = pb.StreamPart(trailer=trailer).SerializeToString()
    signature = KEY.sign(payload)
    return [
        *(pb.SignedPart(payload=p) for p in payloads),
        pb.SignedPart(payload=payload, signature=signature, key_id=key_id(KEY.public_key())),
    ]


def test_the_format_as_described_is_the_format_written() -> None:
    blocks = pb.Ranges(
        issuer="PA", program="RGGI", unit_type="allowance", vintage=2025, starts=[1], ends=[9]
    )
    blocks.states = b"\x00"
    snapshot, info = read(signed_stream(pb.StreamPart(blocks=blocks)))
    assert consume(snapshot)[0] == [Block("PA", "RGGI", "allowance", 2025, 1, 9, "PA", "held")]
    assert info.verified


def ranges(**fields: object) -> pb.StreamPart:
    base: dict[str, object] = {
        "issuer": "PA",
        "program": "RGGI",
        "unit_type": "allowance",
        "vintage": 2025,
        "starts": [1, 20],
        "ends": [9, 29],
        "states": b"\x00\x00",
    }
    return pb.StreamPart(blocks=pb.Ranges(**{**base, **fields}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("part", "why"),
    [
        (ranges(ends=[9]), "starts but"),
        (ranges(states=b"\x00"), "other column lengths"),
        (ranges(transfer_ids=["t"]), "other column lengths"),
        (ranges(states=b"\x00\x05"), "state index 5"),
        (pb.StreamPart(), "is empty"),
        (
            pb.StreamPart(issuances=pb.Ranges(issuer="PA", starts=[1], ends=[2], states=b"\x00")),
            "issuance range with a state",
        ),
        (
            pb.StreamPart(
                transfers=pb.TransferRecords(records=[pb.TransferRecord(transfer_id="t", side="x")])
            ),
            "transfer side",
        ),
    ],
)
def test_malformed_parts_are_refused_even_when_signed(part: pb.StreamPart, why: str) -> None:
    with pytest.raises(MalformedSnapshot, match=f"MALFORMED: .*{why}"):
        consume(read(signed_stream(part))[0])


def test_an_unparsable_part_is_refused() -> None:
    garbage = pb.SignedPart(payload=b"\xff\xff\xff\xff")
    assert refusal([garbage, *snapshot_stream()]) == Refusal.MALFORMED


def test_an_oversized_part_is_refused() -> None:
    n = MAX_PART_BYTES // 8
    big = ranges(starts=[2**40] * n, ends=[2**40] * n, states=bytes(n))
    assert len(big.SerializeToString()) > MAX_PART_BYTES
    assert refusal(signed_stream(big)) == Refusal.OVERSIZED
    assert refusal([pb.SignedPart(payload=bytes(MAX_TRAILER_BYTES + 1))]) == Refusal.OVERSIZED


def test_a_key_and_a_key_id_that_differ_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="is not the id of the key given"):
        read_snapshot(
            [], registry="PA", run_id="r", key=KEY.public_key(), key_id=key_id(OTHER.public_key())
        )


# -- writing -------------------------------------------------------------------------------------


def test_parts_and_trailer_fit_the_nodes_message_limit() -> None:
    envelope = 64 + 16 + 16  # the signature, the key id, tags and lengths
    assert MAX_PART_BYTES + envelope <= MAX_MESSAGE_BYTES // 2 + envelope
    assert MAX_TRAILER_BYTES + envelope < MAX_MESSAGE_BYTES


def test_a_trailer_too_large_for_one_message_is_refused_by_the_writer() -> None:
    many = [UnsettledTransfer(f"t-{i:060d}", "source", "proposed", "NY", 1.0) for i in range(4000)]
    with pytest.raises(StreamTooLarge, match="4000 unsettled transfers"):
        snapshot_stream(unsettled=many)


def test_sections_are_written_in_their_order_only() -> None:
    writer = StreamWriter("PA", "run-1", SNAPSHOT, KEY)
    list(writer.blocks([]))
    with pytest.raises(ValueError, match="cannot write issuances now"):
        list(writer.issuances([]))
    with pytest.raises(ValueError, match="cannot write moves now"):
        list(writer.moves([]))
