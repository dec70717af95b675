"""Serial numbers, ranges and unit classes.

A unit is identified by (issuer, program, unit type, vintage, serial): real EPA data reuses the
same serial range under different vintages, so a serial alone identifies nothing. Holdings are
inclusive ranges; all arithmetic here is on range ends, so its cost never depends on quantity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import InvalidArgument

#: Serials are stored as signed 64-bit integers (PostgreSQL int8).
MAX_SERIAL = 2**63 - 2


class UnitType(StrEnum):
    ALLOWANCE = "allowance"
    ERC = "erc"
    OFFSET = "offset"


@dataclass(frozen=True, order=True, slots=True)
class UnitClass:
    """Everything that identifies a unit except its serial."""

    issuer: str
    program: str
    unit_type: str
    vintage: int

    def __post_init__(self) -> None:
        if not self.issuer or not self.program or not self.unit_type:
            raise InvalidArgument("issuer, program and unit type are required")
        if not 1900 <= self.vintage <= 9999:
            raise InvalidArgument(f"vintage {self.vintage} is not a year", vintage=self.vintage)

    def label(self) -> str:
        return f"{self.issuer}/{self.program}/{self.unit_type}/{self.vintage}"


@dataclass(frozen=True, order=True, slots=True)
class SerialRange:
    """An inclusive range of serials ``[start, end]``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end <= MAX_SERIAL:
            raise InvalidArgument(
                f"serial range {self.start}-{self.end} is empty or out of bounds",
                start=self.start,
                end=self.end,
            )

    @property
    def quantity(self) -> int:
        return self.end - self.start + 1

    def overlaps(self, other: SerialRange) -> bool:
        return self.start <= other.end and other.start <= self.end

    def contains(self, other: SerialRange) -> bool:
        return self.start <= other.start and other.end <= self.end

    def intersection(self, other: SerialRange) -> SerialRange | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return SerialRange(start, end) if start <= end else None

    def minus(self, other: SerialRange) -> list[SerialRange]:
        """What is left of this range once ``other`` is taken out (0, 1 or 2 pieces)."""
        if not self.overlaps(other):
            return [self]
        pieces: list[SerialRange] = []
        if self.start < other.start:
            pieces.append(SerialRange(self.start, other.start - 1))
        if other.end < self.end:
            pieces.append(SerialRange(other.end + 1, self.end))
        return pieces

    def first(self, quantity: int) -> SerialRange:
        """The lowest ``quantity`` serials of this range."""
        if not 0 < quantity <= self.quantity:
            raise InvalidArgument(f"cannot take {quantity} from {self}", quantity=quantity)
        return SerialRange(self.start, self.start + quantity - 1)

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


@dataclass(frozen=True, order=True, slots=True)
class UnitBlock:
    """A range of serials of one unit class: the thing that is held, moved and named."""

    unit_class: UnitClass
    serials: SerialRange

    @property
    def quantity(self) -> int:
        return self.serials.quantity

    def to_dict(self) -> dict[str, object]:
        uc = self.unit_class
        return {
            "issuer": uc.issuer,
            "program": uc.program,
            "unit_type": uc.unit_type,
            "vintage": uc.vintage,
            "start": self.serials.start,
            "end": self.serials.end,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnitBlock:
        return cls(
            UnitClass(
                str(data["issuer"]),
                str(data["program"]),
                str(data["unit_type"]),
                int(data["vintage"]),
            ),
            SerialRange(int(data["start"]), int(data["end"])),
        )

    def __str__(self) -> str:
        return f"{self.unit_class.label()}:{self.serials}"


def merge_adjacent(ranges: list[SerialRange]) -> list[SerialRange]:
    """Sort and join ranges that touch or overlap: a canonical form for comparing holdings."""
    out: list[SerialRange] = []
    for r in sorted(ranges):
        if out and r.start <= out[-1].end + 1:
            last = out[-1]
            out[-1] = SerialRange(last.start, max(last.end, r.end))
        else:
            out.append(r)
    return out
