"""Applying selected takes to the store: splitting rows, journal movements, invariant checks."""

from __future__ import annotations

from collections.abc import Iterable

from .domain.errors import InvariantViolation
from .domain.invariants import MovementAudit, check_disjoint
from .domain.journal import Movement, Place
from .domain.selection import Take
from .storage.store import LedgerTx


def apply_takes(
    tx: LedgerTx,
    takes: Iterable[Take],
    destination: Place,
    audit: MovementAudit,
    transfer_id: str | None = None,
) -> list[Movement]:
    """Move the taken serials to ``destination``; what is left of each row stays put.

    Each row is rewritten in place (compare-and-set on its version) into the first of its final
    pieces before the other pieces are inserted: the row only ever shrinks, so no statement ever
    makes two rows overlap (PostgreSQL's exclusion constraint checks each statement).
    """
    by_row: dict[int, list[Take]] = {}
    for take in takes:
        by_row.setdefault(take.holding.id, []).append(take)
    movements: list[Movement] = []
    for row_takes in by_row.values():
        holding = row_takes[0].holding
        origin = Place(holding.account_id, holding.state, holding.attributed_account_id)
        remainders = [holding.serials]
        for take in row_takes:
            remainders = [piece for r in remainders for piece in r.minus(take.serials)]
        pieces = sorted(
            [(t.serials, destination) for t in row_takes] + [(r, origin) for r in remainders],
            key=lambda p: p[0].start,
        )
        first_range, first_place = pieces[0]
        tx.rewrite_block(
            holding,
            first_range,
            first_place,
            transfer_id if first_place is destination else holding.transfer_id,
        )
        for serials, place in pieces[1:]:
            tx.insert_block(
                type(holding.block)(holding.unit_class, serials),
                place.account_id,
                place.state,
                attributed_account_id=place.attributed_account_id,
                transfer_id=holding.transfer_id if place is origin else transfer_id,
                quarantined=holding.quarantined if place is origin else False,
            )
        for take in row_takes:
            audit.take(take.block)
            audit.put(take.block)
            movements.append(Movement(take.block, origin, destination))
    return movements


def check_transaction(tx: LedgerTx, audit: MovementAudit) -> None:
    """Run before commit: conservation of this transaction's movements, and no serial twice.

    Rows this transaction did not create were disjoint before it and only shrank, so it is
    enough that each range it put somewhere is now exactly one row: cost grows with the pieces
    moved, never with the account's size or the quantity.
    """
    audit.check_conserved()
    for unit_class, ranges in sorted(audit.added.items()):
        for serials in ranges:
            rows = tx.overlapping(unit_class, serials)
            check_disjoint(rows)
            if len(rows) != 1 or rows[0].serials != serials:
                raise InvariantViolation(
                    f"serials {unit_class.label()}:{serials} are not exactly one block after "
                    "this operation",
                    blocks=[r.block.to_dict() for r in rows],
                )
