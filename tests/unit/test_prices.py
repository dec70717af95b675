"""Prices on transfers: strict parsing, one canonical spelling, and the idempotency fingerprint
(a price is part of the request; a transfer without one keeps its old fingerprint)."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regfed.node.domain.commands import Selection, Transfer
from regfed.node.domain.errors import InvalidArgument
from regfed.node.domain.prices import Price

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("12", "12.00"), ("12.5", "12.50"), ("12.50", "12.50"), ("0.01", "0.01"), ("0.5", "0.50")],
)
def test_amounts_are_kept_in_one_canonical_spelling(text: str, canonical: str) -> None:
    assert Price.parse(text).amount == canonical
    assert Price.parse(text) == Price.parse(canonical)


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "0.00",
        "-1",
        "+1",
        "1e3",
        "12.345",
        "12.",
        ".5",
        " 12",
        "12 ",
        "١٢",  # Arabic-Indic digits: Decimal() would take them
        "NaN",
        "Infinity",
        "1_000",
        "0012",
        "1,000.00",
        "1234567890123",  # 13 digits before the point
        "",
    ],
)
def test_anything_but_a_positive_cent_amount_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="price"):
        Price.parse(text)


@pytest.mark.parametrize("currency", ["usd", "US", "USDX", "U$D", "１２３"])
def test_currency_is_three_capital_letters(currency: str) -> None:
    with pytest.raises(InvalidArgument, match="currency"):
        Price.parse("1.00", currency)


def test_currency_defaults_to_usd() -> None:
    assert Price.parse("1") == Price("1.00", "USD")
    assert Price.parse("1", "EUR").currency == "EUR"


def test_the_constructor_takes_only_the_canonical_form() -> None:
    for amount in ("12.5", "12", "0.00", "-1.00"):
        with pytest.raises(InvalidArgument):
            Price(amount)


@given(st.integers(min_value=1, max_value=10**14 - 1))
def test_any_number_of_cents_round_trips(cents: int) -> None:
    text = f"{cents // 100}.{cents % 100:02d}"
    price = Price.parse(text)
    assert price.amount == text
    assert Price.from_dict(price.to_dict()) == price


def _transfer(price: Price | None) -> Transfer:
    return Transfer(
        operation_id="op-1",
        from_account="PA-000004-88",
        to_account="PA-000005-85",
        selection=Selection(quantity=5),
        price=price,
    )


def test_a_transfer_without_a_price_keeps_its_fingerprint() -> None:
    # The fingerprint as stored before prices existed: no "price" key at all.
    before = {
        "kind": "transfer",
        "from_account": "PA-000004-88",
        "to_account": "PA-000005-85",
        "selection": {
            "quantity": 5,
            "program": None,
            "unit_type": None,
            "vintage": None,
            "blocks": [],
        },
        "memo": "",
    }
    canonical = json.dumps(before, sort_keys=True, separators=(",", ":"))
    assert _transfer(None).fingerprint() == hashlib.sha256(canonical.encode()).hexdigest()


def test_the_price_is_part_of_a_transfers_fingerprint() -> None:
    prints = {
        _transfer(None).fingerprint(),
        _transfer(Price.parse("12.50")).fingerprint(),
        _transfer(Price.parse("12.51")).fingerprint(),
        _transfer(Price.parse("12.50", "EUR")).fingerprint(),
    }
    assert len(prints) == 4
    assert _transfer(Price.parse("12.5")).fingerprint() == _transfer(Price("12.50")).fingerprint()
