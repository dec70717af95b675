"""The signed streams of reconciliation (proto ``regfed.reconciliation.v1``): writing them on a
registry node and reading them on the oversight node. No database, no network.

A stream is a run of ``SignedPart`` messages whose payloads are serialized ``StreamPart``s, in
sections that never go back: a snapshot sends its issuance ranges, its blocks, its interstate
transfer records, then the trailer; a journal stream its moves, its transfer records, then the
trailer. Every part before the trailer feeds a running SHA-256 (8-byte big-endian length, then
the payload bytes as received); the trailer carries that digest, the number of parts, the run id,
the registry and the kind of stream, and is the only part signed. So one signature covers the
whole stream, and a trailer replayed from another run or another stream does not verify.

The reader refuses any break of that contract with :class:`MalformedSnapshot`, whose reason
starts with a stable code (:class:`Refusal`). It trusts nothing it has read until the trailer
verifies: a snapshot's totals and unsettled transfers are filled only then, and
``SnapshotInfo.verified`` says whether that has happened.
"""

from __future__ import annotations

import hashlib
import itertools
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from regfed.certs.directory import key_id as key_id_of
from regfed.reconciliation import (
    STATES,
    Block,
    ClassKey,
    IssuanceRange,
    JournalMove,
    JournalWindow,
    MalformedSnapshot,
    RegistrySnapshot,
    TotalsKey,
    TransferRecord,
    UnsettledTransfer,
)

from ._generated.reconciliation.v1 import reconciliation_pb2 as pb

SNAPSHOT = "snapshot"
JOURNAL = "journal"
#: The sections of each kind of stream, in the only order they may come.
SECTIONS = {
    SNAPSHOT: ("issuances", "blocks", "transfers", "trailer"),
    JOURNAL: ("moves", "transfers", "trailer"),
}
#: The largest payload of a part before the trailer: half the node's gRPC message limit
#: (transport.MAX_MESSAGE_BYTES, 256 KiB; a test keeps the two in step), so a part and its
#: envelope always pass.
MAX_PART_BYTES = 128 * 1024
#: The trailer carries every total and unsettled transfer at once, so it may use more of the
#: message limit; a node whose trailer would not fit refuses to stream (StreamTooLarge).
MAX_TRAILER_BYTES = 224 * 1024
STATE_INDEX = {state: i for i, state in enumerate(STATES)}
SIDES = frozenset({"source", "destination"})
DIGEST_LENGTH_BYTES = 8

# Upper bounds of what one more record adds to a part (tags, lengths, varints of at most ten
# bytes), so a part is cut before it could pass MAX_PART_BYTES without serializing it twice.
_RANGES_HEADER = 64  # the part's and the Ranges' tags and lengths, the vintage
_RANGE = 10 + 10  # a start and an end
_BLOCK = _RANGE + 1 + 2  # ... its state byte, its transfer id's tag and length ("" when none)
_RECORD = 40  # a transfer record without its text
_MOVE = 80  # a journal move without its text

#: One block of a unit class as a node streams it: (start, end, the index of its state in
#: STATES, its transfer id or None).
RangeRow = tuple[int, int, int, str | None]
#: One unit class and its blocks in serial order.
ClassBlocks = tuple[ClassKey, Iterable[RangeRow]]


class Refusal:
    """The stable first word of every MalformedSnapshot reason a stream reader raises."""

    OVERSIZED = "OVERSIZED"
    MALFORMED = "MALFORMED"
    OUT_OF_ORDER = "OUT_OF_ORDER"
    TRUNCATED = "TRUNCATED"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    WRONG_KIND = "WRONG_KIND"
    WRONG_RUN = "WRONG_RUN"
    WRONG_REGISTRY = "WRONG_REGISTRY"
    WRONG_WINDOW = "WRONG_WINDOW"
    COUNT_MISMATCH = "COUNT_MISMATCH"
    DIGEST_MISMATCH = "DIGEST_MISMATCH"


class StreamTooLarge(ValueError):
    """The node cannot put what it must say in one trailer (too many totals or unsettled
    transfers for one message): its stream ends in an error, and a reader trusts none of the
    parts that came before."""


def _utf8_len(text: str) -> int:
    return len(text.encode())


# -- writing -------------------------------------------------------------------------------------


class StreamWriter:
    """Turns one stream's records into parts, section by section, and signs the trailer.

    Call the section methods in their order, each once at most, then :meth:`trailer`."""

    def __init__(
        self, registry: str, run_id: str, kind: str, signing_key: ed25519.Ed25519PrivateKey
    ) -> None:
        if kind not in SECTIONS:
            raise ValueError(f"unknown stream kind {kind!r}")
        self.registry = registry
        self.run_id = run_id
        self.kind = kind
        self.signing_key = signing_key
        self.key_id = key_id_of(signing_key.public_key())
        self.parts = 0
        self._digest = hashlib.sha256()
        self._section = -1

    def _enter(self, section: str) -> None:
        order = SECTIONS[self.kind]
        if section not in order or order.index(section) <= self._section:
            raise ValueError(f"a {self.kind} stream cannot write {section} now")
        self._section = order.index(section)

    def _emit(self, part: pb.StreamPart) -> pb.SignedPart:
        payload = part.SerializeToString()
        if len(payload) > MAX_PART_BYTES:  # the size bounds above are wrong: never send it
            raise AssertionError(f"a part of {len(payload)} bytes passed the size bounds")
        self._digest.update(len(payload).to_bytes(DIGEST_LENGTH_BYTES, "big"))
        self._digest.update(payload)
        self.parts += 1
        return pb.SignedPart(payload=payload)

    def issuances(self, ranges: Iterable[IssuanceRange]) -> Iterator[pb.SignedPart]:
        """Issuance ranges sorted by (issuer, program, unit_type, vintage, start)."""
        self._enter("issuances")
        for ranges_pb in _pack_issuances(ranges):
            yield self._emit(pb.StreamPart(issuances=ranges_pb))

    def blocks(self, classes: Iterable[ClassBlocks]) -> Iterator[pb.SignedPart]:
        """Blocks by unit class, classes in (issuer, program, unit_type, vintage) order, each
        class's blocks by start."""
        self._enter("blocks")
        for unit_class, rows in classes:
            for ranges_pb in _pack_class(unit_class, rows):
                yield self._emit(pb.StreamPart(blocks=ranges_pb))

    def transfers(self, records: Iterable[TransferRecord]) -> Iterator[pb.SignedPart]:
        """This registry's interstate transfer records, sorted by transfer id."""
        self._enter("transfers")
        batch: list[pb.TransferRecord] = []
        room = MAX_PART_BYTES - 16
        for r in records:
            size = _RECORD + sum(map(_utf8_len, (r.transfer_id, r.side, r.peer, r.status)))
            if size > room:
                yield self._emit(pb.StreamPart(transfers=pb.TransferRecords(records=batch)))
                batch, room = [], MAX_PART_BYTES - 16
            batch.append(
                pb.TransferRecord(
                    transfer_id=r.transfer_id,
                    side=r.side,
                    peer=r.peer,
                    status=r.status,
                    settled=r.settled,
                    quantity=r.quantity,
                )
            )
            room -= size
        if batch:
            yield self._emit(pb.StreamPart(transfers=pb.TransferRecords(records=batch)))

    def moves(self, moves: Iterable[JournalMove]) -> Iterator[pb.SignedPart]:
        """Journal moves of transfers, in journal order."""
        self._enter("moves")
        batch: list[pb.JournalMove] = []
        room = MAX_PART_BYTES - 16
        for m in moves:
            text = (m.transfer_id, m.issuer, m.program, m.unit_type)
            size = _MOVE + sum(map(_utf8_len, text)) + 2 * len("surrendered")
            if size > room:
                yield self._emit(pb.StreamPart(moves=pb.JournalMoves(moves=batch)))
                batch, room = [], MAX_PART_BYTES - 16
            batch.append(
                pb.JournalMove(
                    seq=m.seq,
                    transfer_id=m.transfer_id,
                    issuer=m.issuer,
                    program=m.program,
                    unit_type=m.unit_type,
                    vintage=m.vintage,
                    start=m.start,
                    end=m.end,
                    from_state=m.from_state or "",
                    to_state=m.to_state or "",
                )
            )
            room -= size
        if batch:
            yield self._emit(pb.StreamPart(moves=pb.JournalMoves(moves=batch)))

    def trailer(
        self,
        *,
        journal_position: int,
        journal_hash: str,
        read_at: str,
        after: int = 0,
        totals: Mapping[TotalsKey, int] | None = None,
        unsettled: Sequence[UnsettledTransfer] = (),
    ) -> pb.SignedPart:
        """The signed last part: what the stream was (run, registry, kind, window), the digest
        and count of every part before it, and a snapshot's totals and unsettled transfers."""
        self._enter("trailer")
        trailer = pb.Trailer(
            run_id=self.run_id,
            registry=self.registry,
            kind=self.kind,
            journal_position=journal_position,
            journal_hash=journal_hash,
            after=after,
            parts=self.parts,
            digest=self._digest.digest(),
            totals=[
                pb.Total(
                    issuer=k[0], program=k[1], unit_type=k[2], vintage=k[3], state=k[4], quantity=q
                )
                for k, q in sorted((totals or {}).items())
            ],
            unsettled=[
                pb.Unsettled(
                    transfer_id=u.transfer_id,
                    side=u.side,
                    status=u.status,
                    peer=u.peer,
                    age_seconds=u.age_seconds,
                )
                for u in sorted(unsettled)
            ],
            read_at=read_at,
        )
        payload = pb.StreamPart(trailer=trailer).SerializeToString()
        if len(payload) > MAX_TRAILER_BYTES:
            raise StreamTooLarge(
                f"the {self.kind} trailer of {self.registry} would be {len(payload)} bytes "
                f"({len(trailer.totals)} totals, {len(trailer.unsettled)} unsettled transfers), "
                f"more than the {MAX_TRAILER_BYTES} a trailer may have"
            )
        return pb.SignedPart(
            payload=payload, signature=self.signing_key.sign(payload), key_id=self.key_id
        )


def _pack_issuances(ranges: Iterable[IssuanceRange]) -> Iterator[pb.Ranges]:
    ci, cp, ct, cv = "", "", "", -1
    starts: list[int] = []
    ends: list[int] = []
    room = 0
    for issuer, program, unit_type, vintage, start, end in ranges:
        if vintage != cv or issuer != ci or program != cp or unit_type != ct or room < _RANGE:
            if starts:
                yield pb.Ranges(
                    issuer=ci, program=cp, unit_type=ct, vintage=cv, starts=starts, ends=ends
                )
            ci, cp, ct, cv = issuer, program, unit_type, vintage
            starts, ends = [], []
            room = MAX_PART_BYTES - _RANGES_HEADER - sum(map(_utf8_len, (ci, cp, ct)))
        starts.append(start)
        ends.append(end)
        room -= _RANGE
    if starts:
        yield pb.Ranges(issuer=ci, program=cp, unit_type=ct, vintage=cv, starts=starts, ends=ends)


def _pack_class(unit_class: ClassKey, rows: Iterable[RangeRow]) -> Iterator[pb.Ranges]:
    # The hot path of a snapshot: rows are taken a part's worth at a time and turned into
    # columns in C (map and itemgetter); Python touches a row only to size a transfer id.
    issuer, program, unit_type, vintage = unit_class
    room = MAX_PART_BYTES - _RANGES_HEADER - sum(map(_utf8_len, (issuer, program, unit_type)))
    most = room // _BLOCK
    rows = iter(rows)
    carried: list[RangeRow] = []  # rows a part had no room for: the next part's first
    while batch := carried + list(itertools.islice(rows, most - len(carried))):
        tids = list(map(_TID, batch))
        named = any(tids)
        if named:
            size = len(batch) * _BLOCK + sum(_utf8_len(t) for t in tids if t)
            cut = len(batch)
            while size > room:
                cut -= 1
                size -= _BLOCK + _utf8_len(tids[cut] or "")
            batch, carried, tids = batch[:cut], batch[cut:], tids[:cut]
        else:
            carried = []
        states = bytes(map(_STATE, batch))  # refuses an index < 0 or > 255
        if max(states) >= len(STATES):
            raise ValueError(f"a block state index outside STATES in {unit_class}")
        yield pb.Ranges(
            issuer=issuer,
            program=program,
            unit_type=unit_type,
            vintage=vintage,
            starts=list(map(_START, batch)),
            ends=list(map(_END, batch)),
            states=states,
            transfer_ids=[t or "" for t in tids] if named else (),
        )


_START, _END, _STATE, _TID = (operator.itemgetter(i) for i in range(4))


def class_blocks(blocks: Iterable[Block]) -> Iterator[ClassBlocks]:
    """Sorted blocks as the writer takes them: grouped by unit class, states as indexes."""
    index = STATE_INDEX
    for unit_class, group in itertools.groupby(blocks, key=lambda b: b[:4]):
        rows = [(b.start, b.end, index[b.state], b.transfer_id) for b in group]
        yield (unit_class[0], unit_class[1], unit_class[2], unit_class[3]), rows


# -- reading -------------------------------------------------------------------------------------


@dataclass
class SnapshotInfo:
    """What a reader knows about one stream so far: progress while it reads, the trailer's
    journal position once it has verified it (``verified``)."""

    registry: str
    run_id: str
    kind: str
    parts_read: int = 0
    blocks_read: int = 0
    transfers_read: int = 0
    journal_position: int | None = None
    journal_hash: str | None = None
    read_at: str | None = None
    verified: bool = False
    #: A snapshot's totals and unsettled transfers, filled when the trailer verifies (the same
    #: objects the RegistrySnapshot holds).
    totals: dict[TotalsKey, int] = field(default_factory=dict)
    unsettled: list[UnsettledTransfer] = field(default_factory=list)


class _Reader:
    """The parts of one stream, checked as they come: size, parse, section order, digest."""

    def __init__(
        self,
        parts: Iterable[pb.SignedPart],
        info: SnapshotInfo,
        *,
        key: ed25519.Ed25519PublicKey,
        key_id: str,
        after: int = 0,
    ) -> None:
        if key_id_of(key) != key_id:
            raise ValueError(f"key id {key_id} is not the id of the key given")
        self.parts = iter(parts)
        self.info = info
        self.key = key
        self.key_id = key_id
        self.after = after
        self.order = SECTIONS[info.kind]
        self.rank = 0
        self.digest = hashlib.sha256()
        self.pending: tuple[str, pb.StreamPart, pb.SignedPart] | None = None

    def refuse(self, code: str, message: str) -> MalformedSnapshot:
        return MalformedSnapshot(self.info.registry, f"{code}: {message}")

    def _next(self) -> tuple[str, pb.StreamPart, pb.SignedPart]:
        try:
            signed = next(self.parts)
        except StopIteration:
            raise self.refuse(
                Refusal.TRUNCATED,
                f"the stream ended after {self.info.parts_read} parts without a signed trailer",
            ) from None
        payload = signed.payload
        if len(payload) > MAX_TRAILER_BYTES:
            raise self.refuse(Refusal.OVERSIZED, f"a part of {len(payload)} bytes")
        part = pb.StreamPart()
        try:
            part.ParseFromString(payload)
        except DecodeError as error:
            raise self.refuse(Refusal.MALFORMED, f"part {self.info.parts_read}: {error}") from None
        section = part.WhichOneof("part")
        if section is None:
            raise self.refuse(Refusal.MALFORMED, f"part {self.info.parts_read} is empty")
        if section not in self.order:
            raise self.refuse(Refusal.OUT_OF_ORDER, f"{section} in a {self.info.kind} stream")
        rank = self.order.index(section)
        if rank < self.rank:
            raise self.refuse(Refusal.OUT_OF_ORDER, f"{section} after {self.order[self.rank]}")
        self.rank = rank
        if section != "trailer":
            if len(payload) > MAX_PART_BYTES:
                raise self.refuse(Refusal.OVERSIZED, f"a {section} part of {len(payload)} bytes")
            self.digest.update(len(payload).to_bytes(DIGEST_LENGTH_BYTES, "big"))
            self.digest.update(payload)
            self.info.parts_read += 1
        return section, part, signed

    def section(self, name: str) -> Iterator[pb.StreamPart]:
        """The parts of section ``name``; the first part of a later section stays pending."""
        while True:
            if self.pending is None:
                self.pending = self._next()
            section, part, _ = self.pending
            if section != name:
                if self.order.index(section) < self.order.index(name):
                    raise RuntimeError(f"the {section} must be read before the {name}")
                return
            self.pending = None
            yield part

    def trailer(self) -> pb.Trailer:
        """The verified trailer; the stream must end with it."""
        if self.pending is None:
            self.pending = self._next()
        section, part, signed = self.pending
        if section != "trailer":
            raise RuntimeError(f"the {section} must be read before the trailer")
        if signed.key_id != self.key_id:
            raise self.refuse(
                Refusal.UNKNOWN_KEY,
                f"signed with key {signed.key_id or '(none)'}, not the key {self.key_id} "
                f"pinned for {self.info.registry}",
            )
        try:
            self.key.verify(signed.signature, signed.payload)
        except InvalidSignature:
            raise self.refuse(
                Refusal.BAD_SIGNATURE, "the trailer's signature does not verify"
            ) from None
        t = part.trailer
        info = self.info
        if t.kind != info.kind:
            raise self.refuse(Refusal.WRONG_KIND, f"a {t.kind} trailer ends a {info.kind} stream")
        if t.run_id != info.run_id:
            raise self.refuse(Refusal.WRONG_RUN, f"trailer of run {t.run_id}, not {info.run_id}")
        if t.registry != info.registry:
            raise self.refuse(Refusal.WRONG_REGISTRY, f"trailer of registry {t.registry}")
        if info.kind == JOURNAL and (t.after != self.after or t.journal_position < t.after):
            raise self.refuse(
                Refusal.WRONG_WINDOW,
                f"window ({t.after}, {t.journal_position}], asked after {self.after}",
            )
        if t.parts != info.parts_read:
            raise self.refuse(
                Refusal.COUNT_MISMATCH, f"trailer counts {t.parts} parts, {info.parts_read} came"
            )
        if t.digest != self.digest.digest():
            raise self.refuse(Refusal.DIGEST_MISMATCH, "the parts are not those signed")
        extra = next(self.parts, None)
        if extra is not None:
            raise self.refuse(Refusal.OUT_OF_ORDER, "a part after the trailer")
        self.pending = None
        info.journal_position = t.journal_position
        info.journal_hash = t.journal_hash
        info.read_at = t.read_at
        return t

    def transfers(self) -> Iterator[TransferRecord]:
        registry = self.info.registry
        last = ""
        for part in self.section("transfers"):
            records = part.transfers.records
            self.info.transfers_read += len(records)
            for r in records:
                if r.transfer_id <= last:
                    raise self.refuse(
                        Refusal.OUT_OF_ORDER, f"transfer {r.transfer_id!r} after {last!r}"
                    )
                if r.side not in SIDES:
                    raise self.refuse(Refusal.MALFORMED, f"transfer side {r.side!r}")
                last = r.transfer_id
                yield TransferRecord(
                    r.transfer_id, registry, r.side, r.peer, r.status, r.settled, r.quantity
                )


def _columns(reader: _Reader, r: pb.Ranges, *, blocks: bool) -> int:
    """The number of ranges of a part, once its columns are known to agree."""
    n = len(r.starts)
    if len(r.ends) != n:
        raise reader.refuse(Refusal.MALFORMED, f"{n} starts but {len(r.ends)} ends")
    if blocks:
        if len(r.states) != n or len(r.transfer_ids) not in (0, n):
            raise reader.refuse(Refusal.MALFORMED, f"{n} blocks with other column lengths")
        if n and max(r.states) >= len(STATES):
            raise reader.refuse(Refusal.MALFORMED, f"state index {max(r.states)}")
    elif r.states or r.transfer_ids:
        raise reader.refuse(Refusal.MALFORMED, "an issuance range with a state")
    return n


def _issuances(reader: _Reader) -> list[IssuanceRange]:
    out: list[IssuanceRange] = []
    for part in reader.section("issuances"):
        r = part.issuances
        _columns(reader, r, blocks=False)
        head = (r.issuer, r.program, r.unit_type, r.vintage)
        out.extend(IssuanceRange(*head, s, e) for s, e in zip(r.starts, r.ends, strict=True))
    return out


def _blocks(reader: _Reader) -> Iterator[Block]:
    registry = reader.info.registry
    make = tuple.__new__  # a NamedTuple without its __new__'s argument handling: many blocks
    for part in reader.section("blocks"):
        r = part.blocks
        reader.info.blocks_read += _columns(reader, r, blocks=True)
        issuer, program, unit_type, vintage = r.issuer, r.program, r.unit_type, r.vintage
        states = [STATES[i] for i in r.states]
        tids: Iterable[str | None] = (
            [t or None for t in r.transfer_ids] if r.transfer_ids else [None] * len(states)
        )
        for s, e, state, tid in zip(r.starts, r.ends, states, tids, strict=True):
            yield make(Block, (issuer, program, unit_type, vintage, s, e, registry, state, tid))


def _fill_snapshot(reader: _Reader, t: pb.Trailer) -> None:
    totals: dict[TotalsKey, int] = {}
    for x in t.totals:
        key = (x.issuer, x.program, x.unit_type, x.vintage, x.state)
        if x.state not in STATE_INDEX or key in totals:
            raise reader.refuse(Refusal.MALFORMED, f"total {key}")
        totals[key] = x.quantity
    unsettled = [
        UnsettledTransfer(u.transfer_id, u.side, u.status, u.peer, u.age_seconds)
        for u in t.unsettled
    ]
    # In place: the RegistrySnapshot handed out before the trailer holds these very objects.
    reader.info.totals.update(totals)
    reader.info.unsettled.extend(unsettled)
    reader.info.verified = True


def read_snapshot(
    parts: Iterable[pb.SignedPart],
    *,
    registry: str,
    run_id: str,
    key: ed25519.Ed25519PublicKey,
    key_id: str,
) -> tuple[RegistrySnapshot, SnapshotInfo]:
    """A registry's snapshot from its stream, verified against its pinned key.

    Reads the issuance ranges now; the blocks, then the transfer records, as they are consumed
    (in that order); the trailer when the transfers are exhausted, and only then fills the
    snapshot's ``totals`` and ``unsettled`` and sets ``info.verified``. A result computed from a
    snapshot whose info is not verified is worth nothing.
    """
    info = SnapshotInfo(registry, run_id, SNAPSHOT)
    reader = _Reader(parts, info, key=key, key_id=key_id)
    issuances = _issuances(reader)

    def transfers() -> Iterator[TransferRecord]:
        yield from reader.transfers()
        _fill_snapshot(reader, reader.trailer())

    snapshot = RegistrySnapshot(
        registry=registry,
        blocks=_blocks(reader),
        issuances=issuances,
        totals=info.totals,
        unsettled=info.unsettled,
        transfers=transfers(),
    )
    return snapshot, info


def read_journal(
    parts: Iterable[pb.SignedPart],
    *,
    registry: str,
    run_id: str,
    after: int,
    key: ed25519.Ed25519PublicKey,
    key_id: str,
) -> tuple[JournalWindow, SnapshotInfo]:
    """A registry's journal window (after, position] from its stream, read and verified now."""
    info = SnapshotInfo(registry, run_id, JOURNAL)
    reader = _Reader(parts, info, key=key, key_id=key_id, after=after)
    moves: list[JournalMove] = []
    for part in reader.section("moves"):
        for m in part.moves.moves:
            moves.append(_move(reader, registry, m))
    records = {r.transfer_id: r for r in reader.transfers()}
    trailer = reader.trailer()
    upto = trailer.journal_position
    if any(not after < m.seq <= upto for m in moves):
        raise reader.refuse(Refusal.MALFORMED, f"a move outside the window ({after}, {upto}]")
    info.verified = True
    window = JournalWindow(registry, after, upto, tuple(moves), records)
    return window, info


def _move(reader: _Reader, registry: str, m: Any) -> JournalMove:
    states = (m.from_state, m.to_state)
    if not any(states) or any(s and s not in STATE_INDEX for s in states) or not m.transfer_id:
        raise reader.refuse(Refusal.MALFORMED, f"journal move {m.seq} of {m.transfer_id!r}")
    return JournalMove(
        registry,
        m.seq,
        m.transfer_id,
        m.issuer,
        m.program,
        m.unit_type,
        m.vintage,
        m.start,
        m.end,
        m.from_state or None,
        m.to_state or None,
    )
