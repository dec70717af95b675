"""Which serials an operation takes: the documented, deterministic selection.

By quantity: blocks in *selection order* (oldest vintage first, then issuer, program, unit type,
then lowest serial), taking the lowest serials of each block. By named ranges: exactly the named
serials, all of which must be held and spendable by the account, else the refusal names every
missing piece (after EU code 7027).

Both work on an iterator of holdings already in selection order, stop as soon as they are
covered, and never look at individual units: cost depends on blocks, not quantity.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InsufficientHoldings, UnitsNotHeld, UnitsQuarantined
from .holdings import BlockState, Holding
from .serials import SerialRange, UnitBlock


def selection_key(h: Holding) -> tuple[int, str, str, str, int]:
    uc = h.unit_class
    return (uc.vintage, uc.issuer, uc.program, uc.unit_type, h.serials.start)


@dataclass(frozen=True, slots=True)
class Take:
    """Take ``serials`` out of ``holding``; ``remainders`` stay where they were."""

    holding: Holding
    serials: SerialRange

    @property
    def block(self) -> UnitBlock:
        return UnitBlock(self.holding.unit_class, self.serials)

    @property
    def remainders(self) -> list[SerialRange]:
        return self.holding.serials.minus(self.serials)


def take_quantity(ordered: Iterable[Holding], quantity: int, account: str) -> list[Take]:
    """Take ``quantity`` units from spendable holdings given in selection order."""
    takes: list[Take] = []
    still = quantity
    available = 0
    for holding in ordered:
        if not holding.spendable:
            continue
        n = min(still, holding.serials.quantity)
        takes.append(Take(holding, holding.serials.first(n)))
        available += n
        still -= n
        if still == 0:
            return takes
    raise InsufficientHoldings(
        f"account {account} holds {available} eligible units, {quantity} requested",
        account=account,
        requested=quantity,
        available=available,
    )


def take_blocks(candidates: Iterable[Holding], wanted: list[UnitBlock], account: str) -> list[Take]:
    """Take exactly the ``wanted`` serials; ``candidates`` are the account's overlapping rows."""
    candidates = list(candidates)
    ordered_wanted = sorted(wanted)
    for a, b in itertools.pairwise(ordered_wanted):
        if a.unit_class == b.unit_class and a.serials.overlaps(b.serials):
            raise UnitsNotHeld(
                f"the request names serials {a} and {b} twice",
                account=account,
                blocks=[a.to_dict(), b.to_dict()],
            )
    by_class: dict[object, list[Holding]] = {}
    for h in candidates:
        if h.spendable:
            by_class.setdefault(h.unit_class, []).append(h)
    takes: list[Take] = []
    missing: list[UnitBlock] = []
    for want in ordered_wanted:
        gaps = [want.serials]
        for h in sorted(by_class.get(want.unit_class, []), key=lambda h: h.serials.start):
            part = h.serials.intersection(want.serials)
            if part is None:
                continue
            takes.append(Take(h, part))
            gaps = [piece for g in gaps for piece in g.minus(part)]
        missing.extend(UnitBlock(want.unit_class, g) for g in gaps)
    # Held but disputed by reconciliation: when that is the only reason, say so.
    quarantined = [
        UnitBlock(m.unit_class, part)
        for m in missing
        for h in candidates
        if h.quarantined
        and h.state is BlockState.HELD
        and h.unit_class == m.unit_class
        and (part := h.serials.intersection(m.serials)) is not None
    ]
    if quarantined and sum(q.quantity for q in quarantined) == sum(m.quantity for m in missing):
        raise UnitsQuarantined(
            f"account {account} holds quarantined serials: "
            + ", ".join(str(m) for m in quarantined[:10]),
            account=account,
            blocks=[m.to_dict() for m in quarantined],
        )
    if missing:
        raise UnitsNotHeld(
            f"account {account} does not hold, spendable, "
            + ", ".join(str(m) for m in missing[:10])
            + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""),
            account=account,
            blocks=[m.to_dict() for m in missing],
        )
    return takes
