"""Who performs an operation. Every operation names its authenticated actor."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import InvalidArgument


class ActorKind(StrEnum):
    ADMINISTRATOR = "administrator"
    PERSON = "person"
    OVERSIGHT = "oversight"


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    id: str

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidArgument("an actor needs an id")

    @classmethod
    def administrator(cls, registry: str) -> Actor:
        return cls(ActorKind.ADMINISTRATOR, f"{registry}-admin")

    @classmethod
    def person(cls, person_id: str) -> Actor:
        return cls(ActorKind.PERSON, person_id)

    @property
    def is_administrator(self) -> bool:
        return self.kind is ActorKind.ADMINISTRATOR

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"
