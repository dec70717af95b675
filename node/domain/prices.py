"""The price per unit a transfer was agreed at: a decimal amount and an ISO 4217 currency.

Prices are reported to the public (the price report, docs/reports.md), so they are checked
strictly when the transfer is made: a positive amount written in ASCII digits with at most two
decimals (cents), below a trillion per unit, and a currency of three capital letters. They are
kept as text in one canonical spelling (``12.50``), never as a float: ``12.5`` and ``12.50`` are
the same price, and a binary float would not round-trip a cent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .errors import InvalidArgument

#: Decimal places a price may have: cents.
PRICE_DECIMALS = 2
#: Digits before the decimal point (below 10^12 per unit: far beyond any allowance's price,
#: and well inside what every consumer of the reports can hold exactly).
PRICE_INTEGER_DIGITS = 12
DEFAULT_CURRENCY = "USD"

_AMOUNT = re.compile(
    rf"(0|[1-9][0-9]{{0,{PRICE_INTEGER_DIGITS - 1}}})(?:\.([0-9]{{1,{PRICE_DECIMALS}}}))?",
    re.ASCII,
)
_CANONICAL = re.compile(
    rf"(0|[1-9][0-9]{{0,{PRICE_INTEGER_DIGITS - 1}}})\.[0-9]{{{PRICE_DECIMALS}}}", re.ASCII
)
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Price:
    """A price per unit: ``amount`` in canonical form (``12.50``), ``currency`` (``USD``).

    Made with :meth:`parse` from what a person or a client typed; the constructor accepts only
    the canonical form, so a stored price never needs normalising again."""

    amount: str
    currency: str = DEFAULT_CURRENCY

    def __post_init__(self) -> None:
        if not isinstance(self.amount, str) or not _CANONICAL.fullmatch(self.amount):
            raise InvalidArgument(
                f"price {self.amount!r} is not in canonical form (digits, a point, "
                f"{PRICE_DECIMALS} decimals): make it with Price.parse"
            )
        if Decimal(self.amount) <= 0:
            raise InvalidArgument(f"a price must be positive, got {self.amount}", price=self.amount)
        _check_currency(self.currency)

    @classmethod
    def parse(cls, amount: str, currency: str = "") -> Price:
        """A price from text: ``12``, ``12.5`` or ``12.50``; the currency defaults to USD."""
        text = amount if isinstance(amount, str) else repr(amount)
        match = _AMOUNT.fullmatch(text)
        if match is None:
            raise InvalidArgument(
                f"price {text[:40]!r} is not a positive decimal amount with at most "
                f"{PRICE_DECIMALS} decimals and {PRICE_INTEGER_DIGITS} digits before the point, "
                "e.g. 12.50",
                price=text[:40],
            )
        whole, decimals = match.group(1), match.group(2) or ""
        canonical = f"{whole}.{decimals.ljust(PRICE_DECIMALS, '0')}"
        return cls(canonical, _check_currency(currency or DEFAULT_CURRENCY))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Price:
        return cls(str(data["amount"]), str(data["currency"]))

    def to_dict(self) -> dict[str, str]:
        return {"amount": self.amount, "currency": self.currency}

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def _check_currency(currency: str) -> str:
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise InvalidArgument(
            f"currency {str(currency)[:20]!r} is not an ISO 4217 code of three capital letters, "
            "e.g. USD",
            currency=str(currency)[:20],
        )
    return currency


__all__ = ["DEFAULT_CURRENCY", "PRICE_DECIMALS", "PRICE_INTEGER_DIGITS", "Price"]
