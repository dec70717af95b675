"""Compliance deduction: what a source owes for a control period and what is taken.

Deduction uses only the program's deduction unit types, in the program's order, and only
eligible vintages (any vintage up to the period's last year: banked units count), then the
selection order of :mod:`selection` (oldest vintage, lowest serial first). It never deducts more
than what is still owed: a second deduction for the same period takes only the remainder, so a
source that bought units after a shortfall can be brought into compliance by deducting again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .holdings import Holding
from .programs import ControlPeriod, ProgramRules
from .selection import Take


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
) -> DeductionPlan:
    obligation = rules.obligation(tons)
    owed = max(0, obligation - previously_surrendered)
    takes: list[Take] = []
    by_type: dict[str, list[Holding]] = {t: [] for t in rules.deduction_unit_types}
    for h in holdings_in_order:
        if owed and eligible(h, rules, period):
            by_type[h.unit_class.unit_type].append(h)
    for unit_type in rules.deduction_unit_types:
        for h in by_type[unit_type]:
            if owed == 0:
                break
            n = min(owed, h.serials.quantity)
            takes.append(Take(h, h.serials.first(n)))
            owed -= n
    return DeductionPlan(obligation, previously_surrendered, tuple(takes))
