"""The import's plan, computed before anything is started: who issues, who buys from whom, and
what each state deducts, year by year; or the refusal naming the first year the subset cannot
cover.

Year by year, in order, for the states and years selected:

1. each state with a row issues its ``allocated`` as vintage-year allowances and allocates them
   to its compliance account (all its holdings are of vintages up to the year, so all count);
2. every state's *need* is its ``totalAllowancesDeducted``; its *surplus* is what it holds beyond
   its own need. If all states together hold less than they need, the subset is infeasible:
   refused, naming the year and the amount missing;
3. **the purchase rule** (deterministic): buyers (states holding less than their need) in
   state-code order; each buys its shortfall from the state with the largest surplus, ties to
   the lower state code, then the next largest, until covered. A seller never sells below its
   own need, so no purchase makes a new buyer;
4. every state with a row records its emissions (= its deduction) and deducts it.

The plan is the oracle of the import's figures: what each state should hold at the end, how
many interstate transfers it takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .arp_data import StateYear


class InfeasibleSubset(Exception):
    """The states and years selected cannot cover their deductions in ``year``."""

    def __init__(self, year: int, short: int, held: int, needed: int) -> None:
        super().__init__(
            f"in {year} the selected states hold {held:,} allowances but must deduct "
            f"{needed:,}: {short:,} short. Choose more states (sellers) or start earlier "
            "(banked allowances); the whole file from 1995 always covers its deductions"
        )
        self.year = year
        self.short = short
        self.held = held
        self.needed = needed

    def to_dict(self) -> dict[str, int | str]:
        return {
            "code": "INFEASIBLE_SUBSET",
            "year": self.year,
            "short": self.short,
            "held": self.held,
            "needed": self.needed,
            "message": str(self),
        }


@dataclass(frozen=True, slots=True)
class Purchase:
    year: int
    seller: str
    buyer: str
    quantity: int


@dataclass(frozen=True)
class YearPlan:
    year: int
    #: state -> allowances issued and allocated (states with a row; 0 allowed)
    issued: dict[str, int]
    purchases: tuple[Purchase, ...]
    #: state -> emissions recorded and deducted (states with a row)
    deducted: dict[str, int]
    #: what all selected states hold after the deduction (the federation's bank)
    bank: int


@dataclass(frozen=True)
class ImportPlan:
    states: tuple[str, ...]
    years: tuple[int, ...]
    plan: tuple[YearPlan, ...]
    final_balance: dict[str, int]
    #: state -> (last year with a row, EPA's carriedOver that year)
    carried_over: dict[str, tuple[int, int]]
    names: dict[str, str] = field(default_factory=dict)

    @property
    def purchases(self) -> list[Purchase]:
        return [p for y in self.plan for p in y.purchases]

    @property
    def lowest_bank(self) -> tuple[int, int]:
        """(year, allowances) where the selected states' bank is lowest after deduction."""
        low = min(self.plan, key=lambda y: (y.bank, y.year))
        return low.year, low.bank

    def issued_total(self, year: int) -> int:
        return sum(q for p in self.plan if p.year == year for q in p.issued.values())

    def deducted_total(self, year: int) -> int:
        return sum(d for p in self.plan if p.year == year for d in p.deducted.values())


def _select(
    rows: Iterable[StateYear], states: Sequence[str] | None, years: tuple[int, int] | None
) -> list[StateYear]:
    chosen = list(rows)
    if states is not None:
        unknown = sorted(set(states) - {r.state for r in chosen})
        if unknown:
            raise ValueError(f"the file has no rows for {', '.join(unknown)}")
        chosen = [r for r in chosen if r.state in set(states)]
    if years is not None:
        first, last = years
        chosen = [r for r in chosen if first <= r.year <= last]
    if not chosen:
        raise ValueError("no rows for the states and years selected")
    return chosen


def plan_import(
    rows: Iterable[StateYear],
    states: Sequence[str] | None = None,
    years: tuple[int, int] | None = None,
) -> ImportPlan:
    """The plan for the selected states and years (all by default), or InfeasibleSubset."""
    chosen = _select(rows, states, years)
    codes = tuple(sorted({r.state for r in chosen}))
    by_year: dict[int, list[StateYear]] = {}
    for r in chosen:
        by_year.setdefault(r.year, []).append(r)
    balance = dict.fromkeys(codes, 0)
    plans: list[YearPlan] = []
    carried: dict[str, tuple[int, int]] = {}
    for year in sorted(by_year):
        year_rows = by_year[year]
        issued = {r.state: r.allocated for r in year_rows}
        need = {r.state: r.deducted for r in year_rows}
        for state, quantity in issued.items():
            balance[state] += quantity
        held, needed = sum(balance.values()), sum(need.values())
        if held < needed:
            raise InfeasibleSubset(year, needed - held, held, needed)
        purchases = _purchases(year, balance, need)
        for state, quantity in need.items():
            balance[state] -= quantity
            if balance[state] < 0:
                raise AssertionError(f"plan left {state} short in {year}")
        for r in year_rows:
            carried[r.state] = (r.year, r.carried_over)
        plans.append(YearPlan(year, issued, purchases, need, sum(balance.values())))
    names = {r.state: r.state_name for r in chosen}
    return ImportPlan(codes, tuple(sorted(by_year)), tuple(plans), balance, carried, names)


def _purchases(year: int, balance: dict[str, int], need: dict[str, int]) -> tuple[Purchase, ...]:
    """Move allowances to the states short of their need (the rule in the module's docstring);
    ``balance`` is updated in place."""
    surplus = {s: balance[s] - need.get(s, 0) for s in balance}
    out: list[Purchase] = []
    for buyer in sorted(s for s, v in surplus.items() if v < 0):
        short = -surplus[buyer]
        while short:
            seller = min((s for s, v in surplus.items() if v > 0), key=lambda s: (-surplus[s], s))
            quantity = min(short, surplus[seller])
            out.append(Purchase(year, seller, buyer, quantity))
            surplus[seller] -= quantity
            balance[seller] -= quantity
            balance[buyer] += quantity
            short -= quantity
        surplus[buyer] = 0
    return tuple(out)
