"""What reconciliation reads and what it reports: plain records, no I/O.

Inputs are shaped like the signed snapshot a node will stream (one consistent read): its blocks
in serial order, the issuance ranges it issued, and a trailer with its own totals and its
unsettled transfers. Records are NamedTuples so that a million of them cost little to make and
compare; the sweep never holds more of them than the blocks still open at one serial.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# -- block states (the `blocks.state` values of node/storage/schema.py) ------------------------

HELD = "held"
ESCROWED = "escrowed"
INCOMING = "incoming"  # accepted from another registry, pinned, awaiting credit (destination)
SURRENDERED = "surrendered"
RETIRED = "retired"
STATES = (HELD, ESCROWED, INCOMING, SURRENDERED, RETIRED)
#: States that only exist for one transfer and must name it.
TRANSFER_STATES = frozenset({ESCROWED, INCOMING})

#: Default settlement limit: an allowed overlap older than this is a discrepancy.
DEFAULT_SETTLEMENT_LIMIT_S = 24 * 3600.0


class Kind:
    """Stable discrepancy codes (they appear in stored results and JSON: never rename)."""

    SERIAL_IN_TWO_PLACES = "SERIAL_IN_TWO_PLACES"
    SERIAL_TWICE_IN_REGISTRY = "SERIAL_TWICE_IN_REGISTRY"
    UNIT_WITHOUT_ISSUER = "UNIT_WITHOUT_ISSUER"
    SUPPLY_NOT_CONSERVED = "SUPPLY_NOT_CONSERVED"
    TOTALS_MISMATCH = "TOTALS_MISMATCH"
    IN_TRANSIT_TOO_LONG = "IN_TRANSIT_TOO_LONG"
    #: Issued serials that no registry reports in any state (check 3, named by range).
    UNITS_HELD_NOWHERE = "UNITS_HELD_NOWHERE"
    #: Check 5: a transfer's source and destination records contradict each other.
    TRANSFER_LOGS_DISAGREE = "TRANSFER_LOGS_DISAGREE"


class AllowedPair(NamedTuple):
    """Two places one serial may legitimately be at once."""

    states: frozenset[str]
    same_transfer_id: bool  # both blocks name the same, non-null transfer id
    different_registries: bool
    meaning: str


#: Every overlap not matched by a row here is a discrepancy. The table is data on purpose:
#: extending the protocol with a new coexisting state means adding a row, not a branch.
ALLOWED_PAIRS: tuple[AllowedPair, ...] = (
    AllowedPair(
        states=frozenset({ESCROWED, INCOMING}),
        same_transfer_id=True,
        different_registries=True,
        meaning="in transit: escrowed at the source, accepted awaiting credit at the destination",
    ),
)


class Block(NamedTuple):
    """One block as a registry reports it. Field order is the sort order of a stream:
    (issuer, program, unit_type, vintage, start), then the rest."""

    issuer: str
    program: str
    unit_type: str
    vintage: int
    start: int
    end: int  # inclusive
    registry: str
    state: str
    transfer_id: str | None = None

    @property
    def quantity(self) -> int:
        return self.end - self.start + 1

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


def piece_order(b: Block) -> tuple[str, int, int, str, str]:
    """How the two pieces of an overlap are ordered in a finding (a total order)."""
    return (b.registry, b.start, b.end, b.state, b.transfer_id or "")


class IssuanceRange(NamedTuple):
    """A range of serials the reporting registry issued (issuer == that registry)."""

    issuer: str
    program: str
    unit_type: str
    vintage: int
    start: int
    end: int  # inclusive


class UnsettledTransfer(NamedTuple):
    """A transfer the reporting node has not settled, aged on that node's own clock."""

    transfer_id: str
    side: str  # "source" or "destination"
    status: str
    peer: str
    age_seconds: float


class TransferRecord(NamedTuple):
    """An interstate transfer as one registry records it (check 5). A snapshot streams its
    records sorted by ``transfer_id``; ``registry`` is the reporting registry."""

    transfer_id: str
    registry: str
    side: str  # "source" or "destination"
    peer: str
    status: str  # proposed, accepted, completed, rejected, terminated, cancelled
    settled: bool
    quantity: int


class JournalMove(NamedTuple):
    """A journal movement of one transfer's serials inside ``registry`` after its snapshot's
    position: the evidence that the transfer progressed between two registries' reads.
    ``from_state`` is None when the serials arrived, ``to_state`` None when they left."""

    registry: str
    seq: int
    transfer_id: str
    issuer: str
    program: str
    unit_type: str
    vintage: int
    start: int
    end: int
    from_state: str | None
    to_state: str | None


@dataclass(frozen=True)
class JournalWindow:
    """What one registry's journal says after its snapshot position, up to the end of the run:
    the moves of transfers, and its current records of the transfers moved or asked about."""

    registry: str
    after: int
    upto: int
    moves: Sequence[JournalMove] = ()
    records: Mapping[str, TransferRecord] = field(default_factory=dict)


#: (issuer, program, unit_type, vintage)
ClassKey = tuple[str, str, str, int]
#: (issuer, program, unit_type, vintage, state) -> quantity
TotalsKey = tuple[str, str, str, int, str]


@dataclass(frozen=True)
class RegistrySnapshot:
    """One registry's consistent read.

    ``blocks`` and ``issuances`` are iterators sorted by (issuer, program, unit_type, vintage,
    start); they are consumed once, lazily. Every block's ``registry`` is this snapshot's
    (the stream reader sets it). ``transfers`` is consumed after every block stream is
    exhausted, ``totals`` and ``unsettled`` only after that, so a streaming reader may fill
    them from the stream's trailer.
    """

    registry: str
    blocks: Iterable[Block]
    issuances: Iterable[IssuanceRange] = ()
    totals: Mapping[TotalsKey, int] = field(default_factory=dict)
    unsettled: Sequence[UnsettledTransfer] = ()
    #: Interstate transfer records sorted by transfer id (one per id), consumed after
    #: ``blocks`` (check 5); every record's ``registry`` is this snapshot's.
    transfers: Iterable[TransferRecord] = ()


class MalformedSnapshot(Exception):
    """A stream breaks its contract (unsorted, unknown state, foreign issuance...): no result
    can be trusted, so the run must not complete."""

    def __init__(self, registry: str | None, reason: str) -> None:
        super().__init__(f"{registry or 'a registry'}: {reason}")
        self.registry = registry
        self.reason = reason


class Discrepancy(NamedTuple):
    """One finding. ``start``/``end`` is the disputed sub-range of the class (for an overlap:
    the serials in both places); ``pieces`` are the whole blocks involved."""

    kind: str
    registries: tuple[str, ...]
    issuer: str
    program: str
    unit_type: str
    vintage: int
    start: int | None
    end: int | None
    pieces: tuple[Block, ...] = ()
    transfer_ids: tuple[str, ...] = ()
    details: tuple[tuple[str, Any], ...] = ()

    @property
    def unit_class(self) -> ClassKey:
        return (self.issuer, self.program, self.unit_type, self.vintage)

    def sort_key(self) -> tuple[Any, ...]:
        return (
            self.issuer,
            self.program,
            self.unit_type,
            self.vintage,
            -1 if self.start is None else self.start,
            -1 if self.end is None else self.end,
            self.kind,
            self.registries,
            tuple((*p[:8], p.transfer_id or "") for p in self.pieces),
            self.transfer_ids,
            repr(self.details),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "registries": list(self.registries),
            "issuer": self.issuer,
            "program": self.program,
            "unit_type": self.unit_type,
            "vintage": self.vintage,
            "start": self.start,
            "end": self.end,
            "pieces": [p.to_dict() for p in self.pieces],
            "transfer_ids": list(self.transfer_ids),
            "details": {k: _jsonable(v) for k, v in self.details},
        }


def _jsonable(value: Any) -> Any:
    """Details may hold records (NamedTuples, e.g. check 5's): JSON objects, not arrays."""
    if hasattr(value, "_asdict"):
        return value._asdict()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


class InTransit(NamedTuple):
    """Serials of one transfer not yet credited at the destination.

    ``escrowed_at_source`` is True for an allowed overlap (escrowed at ``source`` and incoming
    at ``destination``), False when the source has already debited them and only the
    destination's incoming block remains. ``age_seconds`` is the source's own age of the
    transfer (else the destination's), None when neither reports it unsettled.
    """

    transfer_id: str
    source: str | None
    destination: str
    issuer: str
    program: str
    unit_type: str
    vintage: int
    start: int
    end: int
    escrowed_at_source: bool
    age_seconds: float | None

    def sort_key(self) -> tuple[Any, ...]:
        return (*self[3:9], self.transfer_id, self.source or "", self.destination)

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


@dataclass(slots=True)
class ClassSummary:
    """Conservation figures of one unit class over all registries (check 3)."""

    issued: int = 0
    held: int = 0
    escrowed: int = 0  # escrowed serials whose destination has not pinned them
    in_transit: int = 0  # incoming serials (counted once even while also escrowed at source)
    surrendered: int = 0
    retired: int = 0

    @property
    def accounted(self) -> int:
        return self.held + self.escrowed + self.in_transit + self.surrendered + self.retired

    @property
    def conserved(self) -> bool:
        return self.issued == self.accounted

    def to_dict(self) -> dict[str, int]:
        return {
            "issued": self.issued,
            "held": self.held,
            "escrowed": self.escrowed,
            "in_transit": self.in_transit,
            "surrendered": self.surrendered,
            "retired": self.retired,
        }


@dataclass
class ReconciliationResult:
    """Everything one run found, in a deterministic order."""

    discrepancies: list[Discrepancy]
    in_transit: list[InTransit]
    summary: dict[ClassKey, ClassSummary]
    counts: dict[str, int]
    #: True when more discrepancies were found than were kept (see ``max_discrepancies``).
    truncated: bool = False
    #: Discrepancies a journal window accounts for, with a one-line reason naming the
    #: transfer (see :func:`regfed.reconciliation.explain.explain`).
    explained: list[tuple[Discrepancy, str]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.discrepancies and not self.truncated

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "truncated": self.truncated,
            "counts": dict(self.counts),
            "discrepancies": [d.to_dict() for d in self.discrepancies],
            "explained": [{**d.to_dict(), "explanation": why} for d, why in self.explained],
            "in_transit": [t.to_dict() for t in self.in_transit],
            "summary": [
                {
                    "issuer": k[0],
                    "program": k[1],
                    "unit_type": k[2],
                    "vintage": k[3],
                    **s.to_dict(),
                }
                for k, s in self.summary.items()
            ],
        }
