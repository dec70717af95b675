"""Accounts and the rules that depend only on the account itself."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .account_numbers import AccountNumber
from .errors import AccountClosed, AccountRestricted, AccountTypeMismatch, InvalidArgument


class AccountType(StrEnum):
    COMPLIANCE = "compliance"
    GENERAL = "general"
    STATE = "state"


class StatePurpose(StrEnum):
    """What a state account is for. Each registry has one of each except set-asides."""

    ALLOCATION = "allocation"
    SET_ASIDE = "set-aside"
    RETIREMENT = "retirement"
    #: Where compliance deduction keeps surrendered units (attributed to the account they left).
    SURRENDER = "surrender"


class AccountStatus(StrEnum):
    OPEN = "open"
    #: May receive, may not send.
    RESTRICTED = "restricted"
    #: Holds nothing, sends and receives nothing.
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    number: AccountNumber
    type: AccountType
    name: str
    status: AccountStatus
    purpose: StatePurpose | None = None
    set_aside: str | None = None
    source_id: str | None = None

    def __post_init__(self) -> None:
        if (self.type is AccountType.STATE) != (self.purpose is not None):
            raise InvalidArgument("state accounts, and only they, have a purpose")
        if (self.purpose is StatePurpose.SET_ASIDE) != (self.set_aside is not None):
            raise InvalidArgument("set-aside accounts, and only they, have a set-aside name")
        if (self.type is AccountType.COMPLIANCE) != (self.source_id is not None):
            raise InvalidArgument("compliance accounts, and only they, are bound to a source")

    @property
    def label(self) -> str:
        return str(self.number)

    def ensure_can_send(self) -> None:
        if self.status is AccountStatus.CLOSED:
            raise AccountClosed(f"account {self.label} is closed", account=self.label)
        if self.status is AccountStatus.RESTRICTED:
            raise AccountRestricted(
                f"account {self.label} is restricted and cannot send", account=self.label
            )

    def ensure_can_receive(self) -> None:
        if self.status is AccountStatus.CLOSED:
            raise AccountClosed(f"account {self.label} is closed", account=self.label)
        if self.type is AccountType.STATE and self.purpose in (
            StatePurpose.RETIREMENT,
            StatePurpose.SURRENDER,
        ):
            raise AccountTypeMismatch(
                f"account {self.label} only receives through retirement or compliance deduction",
                account=self.label,
            )

    def ensure_state_account(self) -> None:
        if self.type is not AccountType.STATE:
            raise AccountTypeMismatch(
                f"account {self.label} is a {self.type.value} account, not a state account",
                account=self.label,
            )
