"""Programs, their account rules and control periods.

Rules are per program and configurable: a registry starts from :data:`BUILTIN_PROGRAMS` and an
operator may add or override programs in the node's configuration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import InvalidArgument, UnknownProgram

_PERIOD = re.compile(r"([0-9]{4})(?:-([0-9]{4}))?", re.ASCII)


@dataclass(frozen=True, order=True, slots=True)
class ControlPeriod:
    """A compliance control period, written ``YYYY`` or ``YYYY-YYYY`` (inclusive years)."""

    first_year: int
    last_year: int

    @classmethod
    def parse(cls, text: str) -> ControlPeriod:
        match = _PERIOD.fullmatch(text.strip())
        if not match or int(match.group(1)) < 1900:
            raise InvalidArgument(f"period {text!r} is not YYYY or YYYY-YYYY", period=text)
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if last < first:
            raise InvalidArgument(f"period {text!r} ends before it starts", period=text)
        return cls(first, last)

    def __str__(self) -> str:
        if self.first_year == self.last_year:
            return str(self.first_year)
        return f"{self.first_year}-{self.last_year}"


@dataclass(frozen=True, slots=True)
class ProgramRules:
    code: str
    name: str
    #: RGGI and the Acid Rain Program: yes. California's CITSS: no, only deduction removes units.
    compliance_account_may_send: bool
    #: Unit types compliance deduction may use, in the order it uses them.
    deduction_unit_types: tuple[str, ...] = ("allowance",)
    #: Units owed per reported ton.
    units_per_ton: int = 1
    control_period_years: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        types = self.deduction_unit_types
        if (
            not types
            or len(set(types)) != len(types)
            or not all(isinstance(t, str) and t for t in types)
        ):
            raise InvalidArgument(
                f"program {self.code}: deduction unit types must be distinct names, got {types!r}"
            )
        if self.units_per_ton < 1 or self.control_period_years < 1:
            raise InvalidArgument(f"program {self.code}: units per ton and period must be >= 1")

    def eligible_vintage(self, vintage: int, period: ControlPeriod) -> bool:
        """Banked units of any earlier vintage count; future vintages do not."""
        return vintage <= period.last_year

    def obligation(self, tons: int) -> int:
        return tons * self.units_per_ton

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "compliance_account_may_send": self.compliance_account_may_send,
            "deduction_unit_types": list(self.deduction_unit_types),
            "units_per_ton": self.units_per_ton,
            "control_period_years": self.control_period_years,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProgramRules:
        """Read a program from configuration JSON, refusing anything but the documented types."""

        def field_of(name: str, kind: type, default: Any = None) -> Any:
            value = data.get(name, default)
            if value is None:
                raise InvalidArgument(f"program definition lacks {name!r}")
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise InvalidArgument(
                    f"program {data.get('code')!r}: {name!r} must be a JSON {kind.__name__}, "
                    f"got {value!r}"
                )
            return value

        code = field_of("code", str)
        types = field_of("deduction_unit_types", list, ["allowance"])
        return cls(
            code=code,
            name=field_of("name", str, code),
            compliance_account_may_send=field_of("compliance_account_may_send", bool),
            deduction_unit_types=tuple(types),
            units_per_ton=field_of("units_per_ton", int, 1),
            control_period_years=field_of("control_period_years", int, 1),
        )


BUILTIN_PROGRAMS: dict[str, ProgramRules] = {
    p.code: p
    for p in (
        ProgramRules("RGGI", "Regional Greenhouse Gas Initiative", True, control_period_years=3),
        ProgramRules("ARP", "Acid Rain Program", True),
        ProgramRules(
            "CAQC", "California-Quebec cap-and-trade (CITSS rules)", False, control_period_years=3
        ),
        ProgramRules("CSNOX", "CSAPR NOx annual", True),
        ProgramRules("CSSO2G1", "CSAPR SO2 group 1", True),
        ProgramRules("CSSO2G2", "CSAPR SO2 group 2", True),
    )
}


@dataclass(frozen=True, slots=True)
class ProgramCatalog:
    programs: Mapping[str, ProgramRules]

    @classmethod
    def default(cls) -> ProgramCatalog:
        return cls(dict(BUILTIN_PROGRAMS))

    def with_overrides(self, overrides: list[Mapping[str, Any]]) -> ProgramCatalog:
        merged = dict(self.programs)
        for item in overrides:
            if not isinstance(item, Mapping):
                raise InvalidArgument(
                    f"a program definition is a JSON object with a code and its rules, not {item!r}"
                )
            rules = ProgramRules.from_dict(item)
            merged[rules.code] = replace(rules)
        return ProgramCatalog(merged)

    def get(self, code: str) -> ProgramRules:
        try:
            return self.programs[code]
        except KeyError:
            raise UnknownProgram(
                f"program {code!r} is not known to this registry",
                program=code,
                known=sorted(self.programs),
            ) from None
