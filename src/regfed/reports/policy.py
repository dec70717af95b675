"""Per-program disclosure policies: what the public reports may show of each program, as data.

Built-in defaults (:data:`DEFAULT_POLICIES`) follow the programs' own public reporting: EPA's
allowance programs (and the Clean Power Plan's rate-based ERC tracking, CPPR) publish account
holders, the parties of every transaction and serial blocks, and no prices; RGGI publishes a
transaction price report that leaves out the parties and the serials, and no serial blocks
anywhere. A program without a policy (CAQC, or one a node
added) publishes nothing but quantities until one is configured (:data:`FALLBACK`). An operator
overrides any field of any program with a file (:func:`load_policies`).

What every report shows whatever the policy: registry codes, program, unit type and vintage,
quantities, times, statuses. The fields below gate everything else (docs/reports.md).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

#: The policy's fields, each what it makes public; all are booleans.
FIELDS: dict[str, str] = {
    "account_holders": "the accounts report: account numbers, names, status and representatives",
    "parties": "who was issued, allocated, sent, received, retired or owed units: account "
    "numbers in every report, a retirement's stated reason, client-made operation ids",
    "serials": "serial blocks, in every report",
    "prices": "the price report: price per unit, quantity and date of each priced transaction",
    "emissions": "sources and their emissions per control period",
    "compliance": "compliance results: obligation, surrendered and shortfall per source",
}
_PROGRAM = re.compile(r"[A-Za-z0-9]{1,16}", re.ASCII)


class PolicyRefused(ValueError):
    """A policy file or value that cannot be used; the message says what to write."""


@dataclass(frozen=True, slots=True)
class DisclosurePolicy:
    program: str
    account_holders: bool
    parties: bool
    serials: bool
    prices: bool
    emissions: bool
    compliance: bool

    def allows(self, what: str) -> bool:
        if what not in FIELDS:
            raise KeyError(f"no disclosure field {what!r}")
        return bool(getattr(self, what))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _epa(program: str) -> DisclosurePolicy:
    # EPA's allowance tracking (CAMD) publishes accounts, their representatives and every
    # transaction with its serial blocks; it collects no prices.
    return DisclosurePolicy(
        program,
        account_holders=True,
        parties=True,
        serials=True,
        prices=False,
        emissions=True,
        compliance=True,
    )


#: The built-in policies.
DEFAULT_POLICIES: dict[str, DisclosurePolicy] = {
    **{p: _epa(p) for p in ("ARP", "CSNOX", "CSSO2G1", "CSSO2G2")},
    # The Clean Power Plan's model rule (rate-based, ERCs) had the tracking system publish
    # eligible resources, their sponsors, issued ERCs with serials and verification reports,
    # as EPA's allowance tracking does.
    "CPPR": _epa("CPPR"),
    # RGGI's tracking system publishes a transaction price report without the parties and
    # without serial numbers, and compliance by source; here no serial blocks and no parties
    # anywhere, so that nothing joins a price to who paid it.
    "RGGI": DisclosurePolicy(
        "RGGI",
        account_holders=False,
        parties=False,
        serials=False,
        prices=True,
        emissions=True,
        compliance=True,
    ),
}


def fallback(program: str) -> DisclosurePolicy:
    """A program nobody wrote a policy for: only what every report shows (quantities)."""
    return DisclosurePolicy(program, False, False, False, False, False, False)


@dataclass(frozen=True)
class PolicySet:
    """The policies a publication applies, by program."""

    policies: Mapping[str, DisclosurePolicy]

    def of(self, program: str) -> DisclosurePolicy:
        return self.policies.get(program) or fallback(program)

    def allows(self, what: str, programs: Iterable[str]) -> bool:
        """The safe rule: something touching several programs is published only if every one
        of them allows it."""
        return all(self.of(p).allows(what) for p in programs)

    def refusing(self, what: str, programs: Iterable[str]) -> list[str]:
        """The programs among ``programs`` whose policy keeps ``what`` private, sorted."""
        return sorted({p for p in programs if not self.of(p).allows(what)})

    @property
    def programs(self) -> tuple[str, ...]:
        return tuple(sorted(self.policies))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {p: self.policies[p].to_dict() for p in self.programs}


def default_policies() -> PolicySet:
    return PolicySet(dict(DEFAULT_POLICIES))


def with_overrides(base: PolicySet, overrides: Mapping[str, Any], source: str) -> PolicySet:
    """``base`` with each program's fields from ``overrides`` (``{program: {field: bool}}``);
    a program not in ``base`` starts from :func:`fallback`. Everything is checked."""
    if not isinstance(overrides, Mapping):
        raise PolicyRefused(f"{source}: expected a table of programs, e.g. [RGGI] parties = false")
    policies = dict(base.policies)
    for program, values in overrides.items():
        if not isinstance(program, str) or not _PROGRAM.fullmatch(program):
            raise PolicyRefused(
                f"{source}: {program!r} is not a program code (1-16 letters/digits)"
            )
        if not isinstance(values, Mapping):
            raise PolicyRefused(f"{source}: [{program}] must be a table of fields")
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise PolicyRefused(
                f"{source}: [{program}] has unknown field(s) {', '.join(map(str, unknown))}; "
                f"the fields are {', '.join(FIELDS)}"
            )
        for name, value in values.items():
            if not isinstance(value, bool):
                raise PolicyRefused(
                    f"{source}: [{program}] {name} = {value!r} must be true or false"
                )
        policies[program] = replace(policies.get(program) or fallback(program), **values)
    return PolicySet(policies)


def load_policies(path: Path | None) -> PolicySet:
    """The built-in policies, overridden by the TOML (``.toml``) or JSON file at ``path``."""
    base = default_policies()
    if path is None:
        return base
    try:
        text = path.read_text()
    except OSError as error:
        raise PolicyRefused(f"cannot read the policy file {path}: {error.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        kind = "TOML" if path.suffix == ".toml" else "JSON (name it .toml for TOML)"
        raise PolicyRefused(f"{path} is not {kind}: {error}") from None
    return with_overrides(base, data, str(path))


__all__ = [
    "DEFAULT_POLICIES",
    "FIELDS",
    "DisclosurePolicy",
    "PolicyRefused",
    "PolicySet",
    "default_policies",
    "fallback",
    "load_policies",
    "with_overrides",
]
