"""Where a credit came from, kept with its issuance and carried with its serials.

Every ERC or offset block descends from exactly one issuance block, and that issuance from one
approved verification report. A provenance record names the issuance block whole (so any part
of it, held anywhere, finds it by containment), the project, the report's hash and the verifier.
The issuing registry writes it on approval; an interstate transfer carries it to the
destination, which stores it beside the serials it receives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgument
from .programs import CREDIT_UNIT_TYPES, CreditIssuance, ProgramCatalog
from .serials import UnitBlock


@dataclass(frozen=True, slots=True)
class Provenance:
    issuance: UnitBlock
    project: str
    project_name: str
    category: str
    sponsor: str
    report_sha256: str
    verifier: str
    verifier_name: str
    monitoring_period: str
    issued_at: str

    def covers(self, block: UnitBlock) -> bool:
        i = self.issuance
        return (
            i.unit_class == block.unit_class
            and i.serials.start <= block.serials.start
            and block.serials.end <= i.serials.end
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "issuance": self.issuance.to_dict(),
            "project": self.project,
            "project_name": self.project_name,
            "category": self.category,
            "sponsor": self.sponsor,
            "report_sha256": self.report_sha256,
            "verifier": self.verifier,
            "verifier_name": self.verifier_name,
            "monitoring_period": self.monitoring_period,
            "issued_at": self.issued_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        try:
            return cls(
                issuance=UnitBlock.from_dict(data["issuance"]),
                **{k: str(data[k]) for k in _TEXT_FIELDS},
            )
        except (KeyError, TypeError) as error:
            raise InvalidArgument(f"a provenance record lacks {error}") from None


_TEXT_FIELDS = (
    "project",
    "project_name",
    "category",
    "sponsor",
    "report_sha256",
    "verifier",
    "verifier_name",
    "monitoring_period",
    "issued_at",
)


def is_credit(block: UnitBlock) -> bool:
    return block.unit_class.unit_type in CREDIT_UNIT_TYPES


def needs_provenance(block: UnitBlock, programs: ProgramCatalog) -> bool:
    """Credits of a program that issues them on verification carry their provenance;
    allowances, and credits a program issues administratively, have none."""
    if not is_credit(block):
        return False
    rules = programs.programs.get(block.unit_class.program)
    return rules is None or rules.credit_issuance is CreditIssuance.VERIFICATION


def uncovered(
    blocks: Iterable[UnitBlock], records: Iterable[Provenance], programs: ProgramCatalog
) -> list[UnitBlock]:
    """The credit blocks that need a provenance record and have none."""
    kept = list(records)
    return [
        b for b in blocks if needs_provenance(b, programs) and not any(p.covers(b) for p in kept)
    ]
