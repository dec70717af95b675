"""Check 5: the two registries of an interstate transfer tell the same story.

Each registry streams its transfer records sorted by transfer id, after its blocks. The streams
are merged (``heapq.merge``) and grouped by id, so one transfer's records (one per registry that
knows it) are held at a time. :func:`disagreement` is the rule table of docs/reconciliation.md;
it is also what :mod:`.explain` asks of the current records a journal window returns.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

from .model import (
    Discrepancy,
    Kind,
    MalformedSnapshot,
    RegistrySnapshot,
    TransferRecord,
)

SOURCE = "source"
DESTINATION = "destination"
SIDES = frozenset({SOURCE, DESTINATION})

PROPOSED = "proposed"
ACCEPTED = "accepted"
COMPLETED = "completed"
REJECTED = "rejected"
TERMINATED = "terminated"
CANCELLED = "cancelled"
TRANSFER_STATUSES = frozenset({PROPOSED, ACCEPTED, COMPLETED, REJECTED, TERMINATED, CANCELLED})
#: Statuses a record never leaves.
FINAL_STATUSES = frozenset({COMPLETED, REJECTED, TERMINATED, CANCELLED})
#: At the destination: the units arrived (pinned, or credited).
PINNED = frozenset({ACCEPTED, COMPLETED})


class LogRule(NamedTuple):
    """One row of check 5's table: a combination of the two records that is a discrepancy."""

    code: str
    source: str
    destination: str
    meaning: str


#: Check 5, in the order the rules are tried (the first that matches names the finding). Any
#: combination not listed is consistent, in particular a record only at the source while
#: proposed, rejected, terminated or cancelled (the destination may never have seen it), and
#: a destination record proposed, rejected or cancelled without a source record.
LOG_RULES: tuple[LogRule, ...] = (
    LogRule(
        "SIDE_TWICE",
        "two registries record the same side",
        "",
        "one transfer has one source and one destination",
    ),
    LogRule(
        "PEERS_DIFFER",
        "present",
        "present",
        "the source's peer is not the destination's registry, or the destination's peer is "
        "not the source's registry",
    ),
    LogRule(
        "QUANTITY_DIFFERS",
        "present",
        "present, not a tombstone (cancelled with quantity 0)",
        "the two records move different quantities",
    ),
    LogRule(
        "COMPLETED_UNKNOWN_AT_DESTINATION",
        "completed",
        "none",
        "debited at the source, never pinned at the destination",
    ),
    LogRule(
        "COMPLETED_NOT_PINNED",
        "completed",
        "proposed, rejected or cancelled",
        "debited at the source, not pinned at the destination",
    ),
    LogRule(
        "SETTLED_NOT_CREDITED",
        "completed and settled",
        "accepted",
        "the source has the credit acknowledged, the destination has not credited",
    ),
    LogRule(
        "NO_SOURCE",
        "none",
        "accepted or completed",
        "units arrived at the destination from a transfer its source does not record",
    ),
    LogRule(
        "CREDITED_NOT_COMPLETED",
        "proposed, rejected, terminated or cancelled",
        "completed",
        "credited at the destination, not debited at the source",
    ),
    LogRule(
        "RELEASED_BUT_PINNED",
        "rejected, terminated, or cancelled and settled",
        "accepted",
        "the source released the units for good, the destination still pins them",
    ),
)


def _tombstone(destination: TransferRecord) -> bool:
    """A void that overtook its proposal: the destination recorded no lot."""
    return destination.status == CANCELLED and destination.quantity == 0


def disagreement(source: TransferRecord | None, destination: TransferRecord | None) -> str | None:
    """The code of the first rule of :data:`LOG_RULES` the two records break, None if they
    agree. ``source`` is the record on the source side, ``destination`` the other."""
    if source is not None and destination is not None:
        if source.peer != destination.registry or destination.peer != source.registry:
            return "PEERS_DIFFER"
        if source.quantity != destination.quantity and not _tombstone(destination):
            return "QUANTITY_DIFFERS"
    s = source.status if source is not None else None
    d = destination.status if destination is not None else None
    if s == COMPLETED:
        if d is None:
            return "COMPLETED_UNKNOWN_AT_DESTINATION"
        if d not in PINNED:
            return "COMPLETED_NOT_PINNED"
        if source is not None and source.settled and d == ACCEPTED:
            return "SETTLED_NOT_CREDITED"
        return None
    if s is None:
        return "NO_SOURCE" if d in PINNED else None
    if d == COMPLETED:
        return "CREDITED_NOT_COMPLETED"
    if d == ACCEPTED and (
        s in (REJECTED, TERMINATED) or (s == CANCELLED and source is not None and source.settled)
    ):
        return "RELEASED_BUT_PINNED"
    return None


def sides(
    records: Sequence[TransferRecord],
) -> tuple[TransferRecord | None, TransferRecord | None, tuple[TransferRecord, ...]]:
    """(the source record, the destination record, any further record of a side already
    taken) of one transfer's records."""
    source: TransferRecord | None = None
    destination: TransferRecord | None = None
    extra: list[TransferRecord] = []
    for r in records:
        if r.side == SOURCE and source is None:
            source = r
        elif r.side == DESTINATION and destination is None:
            destination = r
        else:
            extra.append(r)
    return source, destination, tuple(extra)


def parties(
    source: TransferRecord | None, destination: TransferRecord | None
) -> tuple[str | None, str | None]:
    """(source registry, destination registry) as the records name them: each side's own
    registry, else the peer the other side names."""
    src = source.registry if source else destination.peer if destination else None
    dst = destination.registry if destination else source.peer if source else None
    return src, dst


def finding(
    transfer_id: str,
    rule: str,
    source: TransferRecord | None,
    destination: TransferRecord | None,
    extra: tuple[TransferRecord, ...] = (),
) -> Discrepancy:
    """A ``TRANSFER_LOGS_DISAGREE`` naming both registries, the transfer and both records.
    It has no unit class: the class fields are empty ("", "", "", 0)."""
    named: set[str] = set()
    for r in (source, destination, *extra):
        if r is not None:
            named.update((r.registry, r.peer))
    details: list[tuple[str, object]] = [
        ("rule", rule),
        ("source", source),
        ("destination", destination),
    ]
    if extra:
        details.append(("also", extra))
    return Discrepancy(
        Kind.TRANSFER_LOGS_DISAGREE,
        tuple(sorted(named)),
        "",
        "",
        "",
        0,
        None,
        None,
        transfer_ids=(transfer_id,),
        details=tuple(details),
    )


def _checked_records(registry: str, records: Iterable[TransferRecord]) -> Iterator[TransferRecord]:
    last: str | None = None
    for r in records:
        if r.registry != registry:
            raise MalformedSnapshot(registry, f"reports a transfer record of {r.registry}: {r}")
        if last is not None and r.transfer_id <= last:
            raise MalformedSnapshot(
                registry, f"transfer records not sorted by transfer id (one per id) at {r}"
            )
        if r.side not in SIDES:
            raise MalformedSnapshot(registry, f"unknown transfer side {r.side!r}: {r}")
        if r.status not in TRANSFER_STATUSES:
            raise MalformedSnapshot(registry, f"unknown transfer status {r.status!r}: {r}")
        if r.quantity < 0:
            raise MalformedSnapshot(registry, f"negative transfer quantity: {r}")
        last = r.transfer_id
        yield r


def _transfer_id(r: TransferRecord) -> str:
    return r.transfer_id


def check_transfer_logs(
    emit: Callable[[Discrepancy], None], snapshots: Sequence[RegistrySnapshot]
) -> tuple[int, int]:
    """Check 5 over every snapshot's transfer records; returns (records, transfers) read."""
    merged = heapq.merge(*(_checked_records(s.registry, s.transfers) for s in snapshots))
    n_records = n_transfers = 0
    for transfer_id, group in itertools.groupby(merged, key=_transfer_id):
        records = list(group)
        n_transfers += 1
        n_records += len(records)
        source, destination, extra = sides(records)
        rule = "SIDE_TWICE" if extra else disagreement(source, destination)
        if rule is not None:
            emit(finding(transfer_id, rule, source, destination, extra))
    return n_records, n_transfers
