"""Compliance deduction: what a source owes for a control period and what is taken.

Deduction uses only the program's deduction unit types, in the program's order, and only
eligible vintages (any vintage up to the period's last year: banked units count), then the
selection order of :mod:`selection` (oldest vintage, lowest serial first). It never deducts more
than what is still owed: a second deduction for the same period takes only the remainder, so a
source that bought units after a shortfall can be brought into compliance by deducting again.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from .errors import CreditShareExceeded, InvalidArgument
from .holdings import Holding
from .programs import Basis, ControlPeriod, ProgramCatalog, ProgramRules
from .selection import Take


def rate_obligation(co2_lb: int, mwh: int, standard_lb_per_mwh: Fraction) -> int:
    """ERCs a rate-based source must surrender: it complies when CO2 / (MWh + ERCs) is at most
    its standard, so it owes max(0, ceil(CO2 / standard - MWh)). Exact: no floating point."""
    return max(0, math.ceil(Fraction(co2_lb) / standard_lb_per_mwh - mwh))


def standard_of(text: str) -> Fraction:
    """An emission rate standard in lb/MWh ("1305", "771.5"), exactly."""
    try:
        value = Fraction(Decimal(text))
    except (InvalidOperation, ValueError):
        raise InvalidArgument(f"standard {text!r} is not a number of lb/MWh") from None
    if not 0 < value <= 100_000:
        raise InvalidArgument(f"standard {text!r} lb/MWh must be positive and at most 100000")
    return value


@dataclass(frozen=True, slots=True)
class Emissions:
    """What a source reported for a period: tons under a mass-based program; under a
    rate-based one, CO2 in lb (``amount``), its generation and its standard."""

    amount: int
    mwh: int | None = None
    standard: str | None = None

    def obligation(self, rules: ProgramRules) -> int:
        if rules.basis is Basis.RATE:
            if self.mwh is None or self.standard is None:
                raise InvalidArgument(
                    f"{rules.code} is rate-based: emissions need CO2 lb, MWh and a standard"
                )
            return rate_obligation(self.amount, self.mwh, standard_of(self.standard))
        return rules.obligation(self.amount)


def obligation_of(programs: ProgramCatalog, program: str, record: Emissions) -> int:
    """Units owed for a recorded period, by the program's rules. A program the node no longer
    knows is owed a unit per ton (per lb for a rate record), as every built-in mass program."""
    rules = programs.programs.get(program)
    return record.amount if rules is None else record.obligation(rules)


@dataclass(frozen=True, slots=True)
class DeductionPlan:
    obligation: int
    previously_surrendered: int
    takes: tuple[Take, ...]

    @property
    def deducted(self) -> int:
        return sum(t.serials.quantity for t in self.takes)

    @property
    def shortfall(self) -> int:
        return max(0, self.obligation - self.previously_surrendered - self.deducted)

    @property
    def by_type(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for t in self.takes:
            counts[t.holding.unit_class.unit_type] += t.serials.quantity
        return dict(sorted(counts.items()))


def share_room(
    rules: ProgramRules, obligation: int, previously_by_type: Mapping[str, int]
) -> dict[str, int]:
    """How many more units of each share-limited type may still cover ``obligation``."""
    room: dict[str, int] = {}
    for unit_type in rules.share_limits:
        limit = rules.share_limit(unit_type, obligation)
        assert limit is not None
        room[unit_type] = max(0, limit - previously_by_type.get(unit_type, 0))
    return room


def check_named_surrender(
    rules: ProgramRules,
    obligation: int,
    previously_by_type: Mapping[str, int],
    takes: Iterable[Take],
    account: str,
) -> None:
    """Units a source named for surrender must respect the program's share limits."""
    wanted: Counter[str] = Counter()
    for t in takes:
        wanted[t.holding.unit_class.unit_type] += t.serials.quantity
    for unit_type, room in share_room(rules, obligation, previously_by_type).items():
        if wanted[unit_type] > room:
            limit = rules.share_limit(unit_type, obligation)
            raise CreditShareExceeded(
                f"{account} may cover at most {limit:,} of its {obligation:,} {rules.code} "
                f"obligation with {unit_type} units ({float(rules.share_limits[unit_type]):.1%}); "
                f"{previously_by_type.get(unit_type, 0):,} already surrendered, "
                f"{wanted[unit_type]:,} named",
                account=account,
                program=rules.code,
                unit_type=unit_type,
                limit=limit,
                named=wanted[unit_type],
            )


def eligible(h: Holding, rules: ProgramRules, period: ControlPeriod) -> bool:
    uc = h.unit_class
    return (
        h.spendable
        and uc.program == rules.code
        and uc.unit_type in rules.deduction_unit_types
        and rules.eligible_vintage(uc.vintage, period)
    )


def plan_deduction(
    holdings_in_order: Iterable[Holding],
    rules: ProgramRules,
    period: ControlPeriod,
    tons: int,
    previously_surrendered: int,
    *,
    obligation: int | None = None,
    previously_by_type: Mapping[str, int] | None = None,
) -> DeductionPlan:
    """``obligation`` overrides ``tons`` x units per ton (rate-based programs compute their
    own); share-limited types are taken only up to what their limit leaves."""
    if obligation is None:
        obligation = rules.obligation(tons)
    owed = max(0, obligation - previously_surrendered)
    room = share_room(rules, obligation, previously_by_type or {})
    takes: list[Take] = []
    by_type: dict[str, list[Holding]] = {t: [] for t in rules.deduction_unit_types}
    for h in holdings_in_order:
        if owed and eligible(h, rules, period):
            by_type[h.unit_class.unit_type].append(h)
    for unit_type in rules.deduction_unit_types:
        for h in by_type[unit_type]:
            n = min(owed, h.serials.quantity, room.get(unit_type, owed))
            if n == 0:
                break
            takes.append(Take(h, h.serials.first(n)))
            owed -= n
            if unit_type in room:
                room[unit_type] -= n
    return DeductionPlan(obligation, previously_surrendered, tuple(takes))
