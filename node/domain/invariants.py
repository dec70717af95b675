"""Ledger invariants, checked at every transaction boundary and by ``regfed ledger verify``.

They stay on in production: a transaction that would break one is refused with
:class:`InvariantViolation` and nothing is committed.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import InvariantViolation
from .holdings import Holding
from .serials import SerialRange, UnitBlock, UnitClass, merge_adjacent


def check_disjoint(rows: Iterable[Holding]) -> None:
    """No serial in two rows: each serial has one owner. ``rows`` sorted by class and start."""
    previous: Holding | None = None
    for row in rows:
        if (
            previous is not None
            and previous.unit_class == row.unit_class
            and row.serials.start <= previous.serials.end
        ):
            raise InvariantViolation(
                f"serials held twice: {previous.block} (account {previous.account_id}) and "
                f"{row.block} (account {row.account_id})",
                blocks=[previous.block.to_dict(), row.block.to_dict()],
            )
        if (
            previous is None
            or previous.unit_class != row.unit_class
            or (row.serials.end > previous.serials.end)
        ):
            previous = row


class MovementAudit:
    """Serials taken out of places and put into places during one transaction.

    A move neither creates nor destroys serials: what is taken out of places, issued or arrives
    from another registry is exactly what is put into places or departs.
    """

    def __init__(self) -> None:
        self.removed: dict[UnitClass, list[SerialRange]] = {}
        self.added: dict[UnitClass, list[SerialRange]] = {}
        self.issued: dict[UnitClass, list[SerialRange]] = {}
        self.arrived: dict[UnitClass, list[SerialRange]] = {}
        self.departed: dict[UnitClass, list[SerialRange]] = {}

    def take(self, block: UnitBlock) -> None:
        self.removed.setdefault(block.unit_class, []).append(block.serials)

    def put(self, block: UnitBlock) -> None:
        self.added.setdefault(block.unit_class, []).append(block.serials)

    def issue(self, block: UnitBlock) -> None:
        self.issued.setdefault(block.unit_class, []).append(block.serials)

    def arrive(self, block: UnitBlock) -> None:
        """Serials entering from another registry (an interstate transfer's pin)."""
        self.arrived.setdefault(block.unit_class, []).append(block.serials)

    def depart(self, block: UnitBlock) -> None:
        """Serials taken out and leaving this registry (a debit, an unpin)."""
        self.departed.setdefault(block.unit_class, []).append(block.serials)

    def check_conserved(self) -> None:
        classes = set(self.removed) | set(self.added) | set(self.issued) | set(self.arrived)
        for uc in classes | set(self.departed):
            taken = self.removed.get(uc, []) + self.issued.get(uc, []) + self.arrived.get(uc, [])
            put = self.added.get(uc, []) + self.departed.get(uc, [])
            if sum(r.quantity for r in taken) != sum(r.quantity for r in put) or merge_adjacent(
                taken
            ) != merge_adjacent(put):
                raise InvariantViolation(
                    f"serials of {uc.label()} not conserved by this operation",
                    unit_class=uc.label(),
                )
