"""The oversight node's federation-wide figures as views: key columns and additive numbers.

A view's rows have string key columns and integer value columns. Every value column is additive
over rows (``issued`` is counted once, on the row of the account it was issued into; units in
transit on the source registry's row), so a registry may aggregate its own rows to the keys asked
for and the oversight node sums the registries' answers: the total of a column never depends on
how the rows were grouped. ``in_transit`` is the exception that proves the rule: its rows are
transfers, one each, and its ``age_seconds`` is an attribute, so it cannot be aggregated.
``credits`` counts ERCs and offsets as supply counts units; ``bank`` is supply's rows reduced to
compliance and general accounts (:func:`bank_of`).

This module is pure: the node computes base rows from its database (gateway/query_source.py),
both sides call :meth:`Query.aggregate`. See docs/oversight.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

#: Keys whose values are years; a filter on one may be a range "YYYY-YYYY".
YEAR_KEYS = frozenset({"vintage", "period", "year"})
MAX_FILTER_VALUES = 1_000
MAX_VALUE_CHARS = 64
_YEARS = re.compile(r"([0-9]{4})(?:-([0-9]{4}))?", re.ASCII)

Keys = tuple[str, ...]
Values = tuple[int, ...]


class InvalidQuery(ValueError):
    """A query naming an unknown view or column, or a malformed filter value. The node and the
    client turn it into the ledger's INVALID_ARGUMENT (this package imports no node code)."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.details = details


@dataclass(frozen=True, slots=True)
class View:
    name: str
    keys: Keys
    values: tuple[str, ...]
    #: Rows are things (transfers), not sums: no aggregation, and rows with the same first key
    #: from two registries are one thing seen from both sides (see :func:`merge_sides`).
    per_item: bool = False
    #: What ``by`` is when none is given.
    default_by: Keys = ()
    help: str = ""

    def columns(self) -> tuple[str, ...]:
        return (*self.keys, *self.values)


SUPPLY = View(
    "supply",
    ("issuer", "program", "unit_type", "vintage", "registry", "account_type"),
    ("issued", "held", "escrowed", "in_transit", "surrendered", "retired"),
    help="units per unit class, registry and account type: issued, where they are now",
)
COMPLIANCE = View(
    "compliance",
    ("registry", "source", "program", "period"),
    ("emissions", "obligation", "surrendered", "shortfall"),
    help="per source and control period: emissions, units owed, surrendered, shortfall",
)
FLOWS = View(
    "flows",
    ("from_registry", "to_registry", "year"),
    ("transfers", "units"),
    default_by=("from_registry", "to_registry"),
    help="committed interstate transfers and units per pair of registries (year proposed)",
)
IN_TRANSIT = View(
    "in_transit",
    ("transfer_id", "from_registry", "to_registry", "source_status", "destination_status"),
    ("quantity", "age_seconds"),
    per_item=True,
    help="interstate transfers not settled on both sides, with their age",
)
CREDITS = View(
    "credits",
    ("unit_type", "issuer", "program", "vintage", "registry", "category"),
    ("issued", "held", "escrowed", "in_transit", "surrendered", "retired"),
    help="ERCs and offsets: issued (at the issuing registry), where they are, used for compliance",
)
BANK = View(
    "bank",
    ("issuer", "program", "unit_type", "vintage", "registry", "account_type"),
    ("banked", "held", "escrowed", "in_transit"),
    help="the private bank: units in compliance and general accounts (held, escrowed, moving)",
)
VIEWS: Mapping[str, View] = {
    v.name: v for v in (SUPPLY, COMPLIANCE, FLOWS, IN_TRANSIT, CREDITS, BANK)
}

#: The unit types that are credits (earned by projects), not allowances.
CREDIT_UNIT_TYPES = frozenset({"erc", "offset"})
#: The account types whose units are the private bank: every type but the state's own.
BANK_ACCOUNT_TYPES = frozenset({"compliance", "general"})


def bank_of(supply_rows: Iterable[tuple[Keys, Values]]) -> Iterator[tuple[Keys, Values]]:
    """Bank rows from supply rows (same keys): a unit is banked where supply has it held,
    escrowed or in transit on a compliance or general account's row. Issued, surrendered and
    retired units are not in the bank, nor anything on a state account's row (allocation,
    set-asides, the surrender and retirement accounts)."""
    held, escrowed, in_transit = (SUPPLY.values.index(c) for c in BANK.values[1:])
    account_type = SUPPLY.keys.index("account_type")
    for keys, values in supply_rows:
        if keys[account_type] not in BANK_ACCOUNT_TYPES:
            continue
        parts = (values[held], values[escrowed], values[in_transit])
        if any(parts):
            yield keys, (sum(parts), *parts)


def view_named(name: str) -> View:
    try:
        return VIEWS[name]
    except KeyError:
        raise InvalidQuery(
            f"no view {name!r}: one of {', '.join(VIEWS)}", view=name, known=list(VIEWS)
        ) from None


def _years(text: str, key: str) -> tuple[int, int]:
    match = _YEARS.fullmatch(text)
    if match is None:
        raise InvalidQuery(f"{key} {text!r} is not YYYY or YYYY-YYYY", key=key, value=text)
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if last < first:
        raise InvalidQuery(f"{key} {text!r} ends before it starts", key=key, value=text)
    return first, last


@dataclass(frozen=True, slots=True)
class _Match:
    """One filter: exact values, or for a year key, inclusive year ranges."""

    key: str
    exact: frozenset[str] = frozenset()
    ranges: tuple[tuple[int, int], ...] = ()

    def __call__(self, value: str) -> bool:
        if value in self.exact:
            return True
        if not self.ranges:
            return False
        span = _YEARS.fullmatch(value)
        if span is None:
            return False
        first, last = int(span.group(1)), int(span.group(2) or span.group(1))
        return any(lo <= first and last <= hi for lo, hi in self.ranges)


@dataclass(frozen=True)
class Query:
    view: View
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    by: Keys = ()

    @classmethod
    def parse(
        cls, view: str, filters: Mapping[str, Sequence[str]], by: Sequence[str] = ()
    ) -> Query:
        """A checked query: every key named exists in the view, values are bounded."""
        v = view_named(view)
        for key, values in filters.items():
            if key not in v.keys:
                raise InvalidQuery(
                    f"{v.name} has no key {key!r} to filter on: one of {', '.join(v.keys)}",
                    key=key,
                )
            if not values or len(values) > MAX_FILTER_VALUES:
                raise InvalidQuery(f"a filter on {key} has 1 to {MAX_FILTER_VALUES} values")
            for value in values:
                if not value or len(value) > MAX_VALUE_CHARS:
                    raise InvalidQuery(f"filter values have 1 to {MAX_VALUE_CHARS} characters")
                if key in YEAR_KEYS:
                    _years(value, key)
        if len(set(by)) != len(by):
            raise InvalidQuery(f"--by names a key twice: {','.join(by)}")
        for key in by:
            if key not in v.keys:
                raise InvalidQuery(
                    f"{v.name} has no key {key!r} to aggregate by: one of {', '.join(v.keys)}",
                    key=key,
                )
        if by and v.per_item:
            raise InvalidQuery(f"{v.name} lists transfers one by one; it has no --by")
        return cls(v, {k: tuple(vs) for k, vs in filters.items()}, tuple(by))

    @property
    def group(self) -> Keys:
        """The key columns of the answer."""
        return self.by or self.view.default_by or self.view.keys

    def _matches(self) -> list[tuple[int, _Match]]:
        out = []
        for key, values in self.filters.items():
            exact = frozenset(v for v in values if key not in YEAR_KEYS)
            ranges = tuple(_years(v, key) for v in values if key in YEAR_KEYS)
            out.append((self.view.keys.index(key), _Match(key, exact, ranges)))
        return out

    def aggregate(self, rows: Iterable[tuple[Keys, Values]], columns: Keys | None = None) -> Table:
        """Filter ``rows`` (keyed by ``columns``, default the view's keys) and sum them to
        :attr:`group`. Filters on keys ``columns`` lacks (already aggregated away) are ignored:
        whoever aggregated applied them first."""
        columns = columns or self.view.keys
        tests = [(columns.index(m.key), m) for _i, m in self._matches() if m.key in columns]
        group = self.group
        lacking = [k for k in group if k not in columns]
        if lacking:
            raise InvalidQuery(f"rows keyed by {','.join(columns)} lack {','.join(lacking)}")
        picks = [columns.index(k) for k in group]
        table = Table(group, self.view.values, per_item=self.view.per_item)
        for keys, values in rows:
            if len(keys) != len(columns):
                raise InvalidQuery(f"a row of {len(keys)} keys where {len(columns)} were named")
            if all(test(keys[i]) for i, test in tests):
                table.add(tuple(keys[i] for i in picks), values)
        return table


class Table:
    """Rows summed by key (or, for a per-item view, merged by its first key)."""

    def __init__(self, keys: Keys, values: tuple[str, ...], *, per_item: bool = False) -> None:
        self.keys = keys
        self.values = values
        self.per_item = per_item
        self._rows: dict[Keys, list[int]] = {}
        self._items: dict[str, tuple[list[str], list[int]]] = {}

    def add(self, keys: Keys, values: Values) -> None:
        if len(keys) != len(self.keys) or len(values) != len(self.values):
            raise InvalidQuery(
                f"a row of {len(keys)} keys and {len(values)} values where "
                f"{len(self.keys)} and {len(self.values)} were announced"
            )
        if self.per_item:
            self._merge(keys, values)
            return
        total = self._rows.get(keys)
        if total is None:
            self._rows[keys] = list(values)
        else:
            for i, v in enumerate(values):
                total[i] += v

    def _merge(self, keys: Keys, values: Values) -> None:
        """One transfer as reported by its source and by its destination: each fills in what
        it knows (its own side's status); the figures are the same on both sides, the age is
        the older of the two clocks' readings."""
        seen = self._items.get(keys[0])
        if seen is None:
            self._items[keys[0]] = (list(keys), list(values))
            return
        known, figures = seen
        for i, k in enumerate(keys):
            if not known[i]:
                known[i] = k
        figures[:] = [max(a, b) for a, b in zip(figures, values, strict=True)]

    def rows(self) -> list[tuple[Keys, Values]]:
        if self.per_item:
            items = ((tuple(k), tuple(v)) for k, v in self._items.values())
            return sorted(items, key=lambda r: _order(r[0]))
        return sorted(((k, tuple(v)) for k, v in self._rows.items()), key=lambda r: _order(r[0]))

    def totals(self) -> Values:
        sums = [0] * len(self.values)
        for _keys, values in self.rows():
            for i, v in enumerate(values):
                sums[i] += v
        return tuple(sums)


def _order(keys: Keys) -> tuple[tuple[int, int | str], ...]:
    """Years and numbers in numeric order, the rest as text."""
    return tuple((0, int(k)) if k.isdigit() else (1, k) for k in keys)


def as_dicts(
    keys: Keys, values: tuple[str, ...], rows: Iterable[tuple[Keys, Values]]
) -> list[dict[str, str | int]]:
    """Rows for JSON: year keys as numbers where they are single years."""
    out: list[dict[str, str | int]] = []
    for k, v in rows:
        row: dict[str, str | int] = {}
        for name, value in zip(keys, k, strict=True):
            row[name] = int(value) if name in ("vintage", "year") and value.isdigit() else value
        row.update(zip(values, v, strict=True))
        out.append(row)
    return out


def net_flows(rows: Iterable[Mapping[str, str | int]]) -> list[dict[str, str | int]]:
    """Per registry: units in, units out and the net (in minus out), from flow rows that have
    ``from_registry``, ``to_registry`` and ``units``."""
    inflow: dict[str, int] = {}
    outflow: dict[str, int] = {}
    for r in rows:
        units = int(r["units"])
        outflow[str(r["from_registry"])] = outflow.get(str(r["from_registry"]), 0) + units
        inflow[str(r["to_registry"])] = inflow.get(str(r["to_registry"]), 0) + units
    return [
        {
            "registry": code,
            "units_in": inflow.get(code, 0),
            "units_out": outflow.get(code, 0),
            "net": inflow.get(code, 0) - outflow.get(code, 0),
        }
        for code in sorted(set(inflow) | set(outflow))
    ]
