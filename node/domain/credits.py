"""Projects that earn credits, and the verifiers accredited to verify them.

An *eligible resource* (renewable generation, energy efficiency) earns emission reduction
credits (ERCs) under a rate-based program; an *offset project* (Pennsylvania's rule names
landfill methane capture, avoided methane from agricultural manure, reforestation) earns
offsets. Either is registered under a sponsor's general account and earns nothing until the
administrator approves it and an accredited verifier's report on it is approved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from .errors import InvalidArgument, ReviewConflict, VerifierNotAccredited

PROJECT_ID = re.compile(r"^[A-Z]{2,4}-P[0-9]{4,}$", re.ASCII)
VERIFIER_ID = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$", re.ASCII)


class ProjectKind(StrEnum):
    ELIGIBLE_RESOURCE = "eligible-resource"
    OFFSET_PROJECT = "offset-project"


#: Each category, the kind of project it is, and so the unit type it earns.
CATEGORIES: Mapping[str, ProjectKind] = {
    "renewable-generation": ProjectKind.ELIGIBLE_RESOURCE,
    "energy-efficiency": ProjectKind.ELIGIBLE_RESOURCE,
    "landfill-methane": ProjectKind.OFFSET_PROJECT,
    "agricultural-manure-methane": ProjectKind.OFFSET_PROJECT,
    "reforestation": ProjectKind.OFFSET_PROJECT,
}

UNIT_TYPE_OF = {ProjectKind.ELIGIBLE_RESOURCE: "erc", ProjectKind.OFFSET_PROJECT: "offset"}


def kind_of(category: str) -> ProjectKind:
    try:
        return CATEGORIES[category]
    except KeyError:
        raise InvalidArgument(
            f"{category!r} is not a project category (one of: {', '.join(CATEGORIES)})",
            category=category,
        ) from None


class ProjectStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


#: Which status may follow which. Terminated is final.
PROJECT_TRANSITIONS: Mapping[ProjectStatus, frozenset[ProjectStatus]] = {
    ProjectStatus.PROPOSED: frozenset({ProjectStatus.APPROVED, ProjectStatus.TERMINATED}),
    ProjectStatus.APPROVED: frozenset({ProjectStatus.SUSPENDED, ProjectStatus.TERMINATED}),
    ProjectStatus.SUSPENDED: frozenset({ProjectStatus.APPROVED, ProjectStatus.TERMINATED}),
    ProjectStatus.TERMINATED: frozenset(),
}


def check_project_transition(project_id: str, now: ProjectStatus, to: ProjectStatus) -> None:
    if to not in PROJECT_TRANSITIONS[now]:
        allowed = ", ".join(sorted(s.value for s in PROJECT_TRANSITIONS[now])) or "nothing"
        raise ReviewConflict(
            f"project {project_id} is {now.value}; it may become {allowed}, not {to.value}",
            project=project_id,
            status=now.value,
        )


def capacity_text(value: str | None) -> str | None:
    """Nameplate capacity in MW as canonical decimal text, or None."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidArgument(f"capacity {value!r} is not a number of MW") from None
    if not number.is_finite() or number <= 0 or number > 100_000:
        raise InvalidArgument(f"capacity {value!r} MW must be positive and at most 100000")
    return format(number.normalize(), "f")


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    sponsor_account_id: int
    sponsor: str
    category: str
    program: str
    location: str
    capacity_mw: str | None
    baseline: str
    status: ProjectStatus

    @property
    def kind(self) -> ProjectKind:
        return kind_of(self.category)

    @property
    def unit_type(self) -> str:
        return UNIT_TYPE_OF[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.id,
            "name": self.name,
            "sponsor": self.sponsor,
            "kind": self.kind.value,
            "category": self.category,
            "unit_type": self.unit_type,
            "program": self.program,
            "location": self.location,
            "capacity_mw": self.capacity_mw,
            "baseline": self.baseline,
            "status": self.status.value,
        }


def parse_day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{what} {text!r} is not a date YYYY-MM-DD") from None


@dataclass(frozen=True, slots=True)
class Accreditation:
    """One accreditation of a verifier: for these categories, between these days inclusive,
    with the projects and sponsors it declared a conflict of interest with."""

    verifier: str
    name: str
    person: str
    categories: tuple[str, ...]
    valid_from: date
    valid_to: date
    conflicts: tuple[str, ...]

    def __post_init__(self) -> None:
        if not VERIFIER_ID.match(self.verifier):
            raise InvalidArgument(
                f"verifier id {self.verifier!r} is 2-32 capital letters, digits and hyphens"
            )
        if not self.categories:
            raise InvalidArgument("an accreditation names at least one category")
        for category in self.categories:
            kind_of(category)
        if self.valid_to < self.valid_from:
            raise InvalidArgument(
                f"accreditation of {self.verifier} ends ({self.valid_to}) before it starts "
                f"({self.valid_from})"
            )

    def covers(self, category: str, on: date) -> bool:
        return category in self.categories and self.valid_from <= on <= self.valid_to

    def to_dict(self) -> dict[str, Any]:
        return {
            "verifier": self.verifier,
            "name": self.name,
            "person": self.person,
            "categories": list(self.categories),
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat(),
            "conflicts": list(self.conflicts),
        }


def require_accredited(
    accreditations: list[Accreditation], verifier: str, project: Project, on: date
) -> Accreditation:
    """The accreditation under which ``verifier`` may verify ``project`` on day ``on``.

    Refused when none covers the project's category that day, or when the verifier declared
    a conflict of interest with the project or its sponsor: such a report supports nothing.
    """
    for accreditation in accreditations:
        if {project.id, project.sponsor} & set(accreditation.conflicts):
            raise VerifierNotAccredited(
                f"verifier {verifier} declared a conflict of interest with project {project.id} "
                f"or its sponsor {project.sponsor}",
                verifier=verifier,
                project=project.id,
            )
    for accreditation in accreditations:
        if accreditation.covers(project.category, on):
            return accreditation
    held = [f"{', '.join(a.categories)} {a.valid_from}..{a.valid_to}" for a in accreditations]
    raise VerifierNotAccredited(
        f"verifier {verifier} is not accredited for {project.category} on {on}"
        + (f" (accredited: {'; '.join(held)})" if held else " (no accreditation at all)"),
        verifier=verifier,
        category=project.category,
        on=on.isoformat(),
    )
