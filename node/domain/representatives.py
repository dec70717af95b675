"""Representatives and their rights.

Each account has exactly one authorized account representative (primary), at most one alternate
and any number of agents. Rights follow the UK registry: initiate, approve, read. Moving units
out of an account needs ``initiate``; until the approval workflow exists a single actor with
``initiate`` completes the move (documented in docs/ledger.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from .errors import InvalidArgument, RepresentativeConflict


class Role(StrEnum):
    PRIMARY = "primary"
    ALTERNATE = "alternate"
    AGENT = "agent"


class Right(StrEnum):
    INITIATE = "initiate"
    APPROVE = "approve"
    READ = "read"


ALL_RIGHTS = frozenset(Right)
DEFAULT_RIGHTS = {Role.PRIMARY: ALL_RIGHTS, Role.ALTERNATE: ALL_RIGHTS, Role.AGENT: ALL_RIGHTS}


@dataclass(frozen=True, slots=True)
class Representative:
    person_id: str
    role: Role
    rights: frozenset[Right]

    def __post_init__(self) -> None:
        if not self.person_id:
            raise InvalidArgument("a representative needs a person id")
        if not self.rights:
            raise InvalidArgument(f"representative {self.person_id} has no rights")
        if self.role in (Role.PRIMARY, Role.ALTERNATE) and self.rights != ALL_RIGHTS:
            raise InvalidArgument(
                f"the {self.role.value} representative holds every right; only agents are limited"
            )

    @classmethod
    def of(
        cls, person_id: str, role: Role | str, rights: Iterable[Right | str] = ()
    ) -> Representative:
        try:
            chosen_role = Role(role)
            chosen = frozenset(Right(r) for r in rights) or DEFAULT_RIGHTS[chosen_role]
        except ValueError:
            raise InvalidArgument(
                f"representative {person_id}: role must be one of "
                f"{', '.join(r.value for r in Role)} and rights among "
                f"{', '.join(r.value for r in Right)}",
                person=person_id,
            ) from None
        return cls(person_id, chosen_role, chosen)

    def to_dict(self) -> dict[str, object]:
        return {
            "person": self.person_id,
            "role": self.role.value,
            "rights": sorted(r.value for r in self.rights),
        }


def validate_roster(roster: Iterable[Representative]) -> None:
    """Exactly one primary, at most one alternate, nobody twice."""
    reps = list(roster)
    people = [r.person_id for r in reps]
    duplicates = sorted({p for p in people if people.count(p) > 1})
    if duplicates:
        raise RepresentativeConflict(
            f"{', '.join(duplicates)} would hold two roles on one account", people=duplicates
        )
    primaries = [r for r in reps if r.role is Role.PRIMARY]
    if len(primaries) != 1:
        raise RepresentativeConflict(
            f"an account needs exactly one authorized account representative, "
            f"this change leaves {len(primaries)}"
        )
    if sum(1 for r in reps if r.role is Role.ALTERNATE) > 1:
        raise RepresentativeConflict("an account has at most one alternate representative")
