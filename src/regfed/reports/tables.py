"""The shapes of a publication: reports as tables of plain values, what each policy withheld,
and the cell that stands for something withheld. No I/O.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .policy import PolicySet


class Withheld:
    """The value of a cell a disclosure policy keeps private (one instance, :data:`WITHHELD`).
    CSV and HTML show ``(withheld)``; JSON shows null and names the cell in the row's
    ``withheld`` list, so a number column stays numbers."""

    _instance: Withheld | None = None

    def __new__(cls) -> Withheld:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "WITHHELD"

    def __str__(self) -> str:
        return "(withheld)"


WITHHELD: Final = Withheld()
Cell = str | int | bool | None | Withheld

#: What a tally counts: (one, many), for sentences such as "3 accounts withheld under ...".
WHAT: dict[str, tuple[str, str]] = {
    "account": ("account", "accounts"),
    "party": ("party's account number", "parties' account numbers"),
    "serials": ("serial block", "serial blocks"),
    "reason": ("retirement reason", "retirement reasons"),
    "reference": ("operation id", "operation ids"),
    "price": ("priced transaction", "priced transactions"),
    "emission": ("emissions record", "emissions records"),
    "compliance": ("compliance result", "compliance results"),
    "project name": ("project name", "project names"),
    "document": ("public document", "public documents"),
}


@dataclass
class Tally:
    """What was withheld, per program whose policy withheld it. Something withheld under two
    programs' policies (an account holding units of both) counts under each."""

    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, programs: Iterable[str], what: str, n: int = 1) -> None:
        if what not in WHAT:
            raise KeyError(f"unknown tally {what!r}")
        for program in programs:
            self.counts[program][what] += n

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {p: dict(sorted(c.items())) for p, c in sorted(self.counts.items()) if c}

    def sentences(self) -> list[str]:
        out = []
        for program, counted in sorted(self.counts.items()):
            for what, n in sorted(counted.items()):
                one, many = WHAT[what]
                out.append(f"{n:,} {one if n == 1 else many} withheld under {program}'s policy")
        return out


@dataclass
class Report:
    """One report: a table, and what the policies withheld from it."""

    name: str
    title: str
    description: str
    columns: tuple[str, ...]
    rows: list[dict[str, Cell]] = field(default_factory=list)
    withheld: Tally = field(default_factory=Tally)
    #: Files the report publishes beside its tables (a document's bytes): path -> bytes.
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class RegistryRead:
    """Which read of a registry a publication is made from."""

    registry: str
    journal_position: int
    read_at: str


@dataclass
class Publication:
    generated_at: str
    registries: list[RegistryRead]
    #: Registries (and the oversight node) that did not answer, and why.
    missing: Mapping[str, str]
    policies: PolicySet
    reports: list[Report]

    def report(self, name: str) -> Report:
        return next(r for r in self.reports if r.name == name)

    def summary(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at,
            "registries": [r.__dict__ for r in self.registries],
            "missing": dict(self.missing),
            "records": {r.name: len(r.rows) for r in self.reports},
            "withheld": {r.name: r.withheld.to_dict() for r in self.reports},
        }


__all__ = ["WHAT", "WITHHELD", "Cell", "Publication", "RegistryRead", "Report", "Tally", "Withheld"]
