"""Row and value conversions the storage modules share."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Row

from ..domain.serials import UnitBlock, UnitClass


def unit_class_of(row: Row[Any]) -> UnitClass:
    return UnitClass(row.issuer, row.program, row.unit_type, row.vintage)


def unit_values(block: UnitBlock) -> dict[str, Any]:
    uc = block.unit_class
    return {
        "issuer": uc.issuer,
        "program": uc.program,
        "unit_type": uc.unit_type,
        "vintage": uc.vintage,
        "start_serial": block.serials.start,
        "end_serial": block.serials.end,
    }
