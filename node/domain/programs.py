"""Programs, their account rules and control periods.

Rules are per program and configurable: a registry starts from :data:`BUILTIN_PROGRAMS` and an
operator may add or override programs in the node's configuration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from typing import Any

from .errors import InvalidArgument, UnitNotAccepted, UnknownProgram

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


class Basis(StrEnum):
    """How a program's obligation is measured."""

    #: Units owed per ton emitted (allowance programs: RGGI, the Acid Rain Program).
    MASS = "mass"
    #: A source complies when CO2 / (MWh + ERCs) is at most its standard (lb/MWh): the Clean
    #: Power Plan's rate-based model rule, as the seeds describe it.
    RATE = "rate"


class CreditIssuance(StrEnum):
    """How ERCs and offsets of a program come into being in a registry."""

    #: Only by approving an accredited verifier's verification report (RGGI offsets, ERCs).
    VERIFICATION = "verification"
    #: The administrator issues them, verification having happened outside the registry
    #: (California's ARB issues offset credits verified in external offset project registries).
    ADMINISTRATIVE = "administrative"


#: Unit types that are credits for verified reductions, not allowances under a cap.
CREDIT_UNIT_TYPES = frozenset({"erc", "offset"})


def share(text: str | Fraction, what: str) -> Fraction:
    """A share of an obligation, exactly: "0.033" or "33/1000", strictly between 0 and 1."""
    try:
        value = Fraction(Decimal(text)) if isinstance(text, str) else Fraction(text)
    except (InvalidOperation, ValueError, ZeroDivisionError):
        raise InvalidArgument(f"{what}: {text!r} is not a number like 0.033") from None
    if not 0 < value < 1:
        raise InvalidArgument(f"{what}: a share must be between 0 and 1, got {text!r}")
    return value


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
    #: Unit types a registry holds and receives under this program (default: the deduction
    #: types). Anything else is refused on issuance and on arrival from another registry.
    unit_types: tuple[str, ...] = ()
    #: Issuing registries whose units are accepted; empty: any registry of the federation.
    issuers: tuple[str, ...] = ()
    #: Most of a source's obligation each unit type may cover (RGGI: offsets, 3.3%).
    share_limits: Mapping[str, Fraction] = field(default_factory=dict)
    basis: Basis = Basis.MASS
    credit_issuance: CreditIssuance = CreditIssuance.VERIFICATION

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
        if not self.unit_types:
            object.__setattr__(self, "unit_types", types)
        if not set(types) <= set(self.unit_types):
            raise InvalidArgument(
                f"program {self.code}: deduction unit types {list(types)} must all be accepted "
                f"unit types {list(self.unit_types)}"
            )
        for unit_type, limit in self.share_limits.items():
            if unit_type not in types:
                raise InvalidArgument(
                    f"program {self.code}: a share limit for {unit_type!r}, which deduction "
                    "does not use"
                )
            share(limit, f"program {self.code} share limit of {unit_type}")

    def accepts(self, unit_type: str, issuer: str) -> bool:
        return unit_type in self.unit_types and (not self.issuers or issuer in self.issuers)

    def require_accepts(self, unit_type: str, issuer: str, registry: str) -> None:
        """Refuse units this registry may not hold under this program, saying what it takes."""
        if self.accepts(unit_type, issuer):
            return
        if unit_type not in self.unit_types:
            why = f"does not accept {unit_type} units (it accepts {', '.join(self.unit_types)})"
        else:
            why = f"does not accept units issued by {issuer} (only {', '.join(self.issuers)})"
        raise UnitNotAccepted(
            f"registry {registry} under {self.code} {why}",
            registry=registry,
            program=self.code,
            unit_type=unit_type,
            issuer=issuer,
            accepted_unit_types=list(self.unit_types),
            accepted_issuers=list(self.issuers) or "any",
        )

    def share_limit(self, unit_type: str, obligation: int) -> int | None:
        """How many units of ``unit_type`` may cover ``obligation`` at most (rounded down:
        a limit is never exceeded), or None without a limit."""
        limit = self.share_limits.get(unit_type)
        if limit is None:
            return None
        return int(obligation * Fraction(limit))

    def eligible_vintage(self, vintage: int, period: ControlPeriod) -> bool:
        """Banked units of any earlier vintage count; future vintages do not."""
        return vintage <= period.last_year

    def obligation(self, tons: int) -> int:
        return tons * self.units_per_ton

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "compliance_account_may_send": self.compliance_account_may_send,
            "deduction_unit_types": list(self.deduction_unit_types),
            "units_per_ton": self.units_per_ton,
            "control_period_years": self.control_period_years,
        }
        # Only what differs from the defaults: older configuration files stay as they were.
        if self.unit_types != self.deduction_unit_types:
            out["unit_types"] = list(self.unit_types)
        if self.issuers:
            out["issuers"] = list(self.issuers)
        if self.share_limits:
            out["share_limits"] = {
                k: decimal_text(Fraction(v)) for k, v in sorted(self.share_limits.items())
            }
        if self.basis is not Basis.MASS:
            out["basis"] = self.basis.value
        if self.credit_issuance is not CreditIssuance.VERIFICATION:
            out["credit_issuance"] = self.credit_issuance.value
        return out

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
        limits = field_of("share_limits", dict, {})
        basis = field_of("basis", str, Basis.MASS.value)
        issuance = field_of("credit_issuance", str, CreditIssuance.VERIFICATION.value)
        try:
            basis_value, issuance_value = Basis(basis), CreditIssuance(issuance)
        except ValueError:
            raise InvalidArgument(
                f"program {code!r}: basis is mass or rate and credit_issuance is verification "
                f"or administrative, got {basis!r} and {issuance!r}"
            ) from None
        return cls(
            code=code,
            name=field_of("name", str, code),
            compliance_account_may_send=field_of("compliance_account_may_send", bool),
            deduction_unit_types=tuple(types),
            units_per_ton=field_of("units_per_ton", int, 1),
            control_period_years=field_of("control_period_years", int, 1),
            unit_types=tuple(field_of("unit_types", list, types)),
            issuers=tuple(field_of("issuers", list, [])),
            share_limits={
                str(k): share(str(v), f"program {code!r} share limit of {k}")
                for k, v in limits.items()
            },
            basis=basis_value,
            credit_issuance=issuance_value,
        )


def decimal_text(value: Fraction) -> str:
    """A number as the decimal a person writes ("0.033", "771.5"), exact where the fraction
    allows (else ``n/d``): shares in program rules, rate standards in emission records."""
    text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    return text if Fraction(Decimal(text)) == value else f"{value.numerator}/{value.denominator}"


BUILTIN_PROGRAMS: dict[str, ProgramRules] = {
    p.code: p
    for p in (
        ProgramRules(
            "RGGI",
            "Regional Greenhouse Gas Initiative",
            True,
            control_period_years=3,
            deduction_unit_types=("allowance", "offset"),
            # Model Rule: offsets may cover at most 3.3% of a source's obligation.
            share_limits={"offset": Fraction(33, 1000)},
        ),
        ProgramRules("ARP", "Acid Rain Program", True),
        ProgramRules(
            "CAQC", "California-Quebec cap-and-trade (CITSS rules)", False, control_period_years=3
        ),
        ProgramRules("CSNOX", "CSAPR NOx annual", True),
        ProgramRules("CSSO2G1", "CSAPR SO2 group 1", True),
        ProgramRules("CSSO2G2", "CSAPR SO2 group 2", True),
        ProgramRules(
            "CPPR",
            "Clean Power Plan rate-based trading (model rule, stayed 2016): ERCs",
            True,
            deduction_unit_types=("erc",),
            basis=Basis.RATE,
        ),
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
