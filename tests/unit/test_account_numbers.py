"""Account numbers: ISO 7064 MOD 97-10 check digits over registry code and sequence."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regfed.node.domain.account_numbers import AccountNumber, check_digits
from regfed.node.domain.errors import (
    AccountNumberCheckFailed,
    AccountNumberMalformed,
    RegistryError,
)

pytestmark = pytest.mark.unit

SHAPE = re.compile(r"[A-Z]{2,4}-[0-9]{6}-[0-9]{2}")

registries = st.from_regex(r"[A-Z]{2,4}", fullmatch=True)
sequences = st.integers(1, 999_999)


@st.composite
def account_numbers(draw: st.DrawFn) -> AccountNumber:
    return AccountNumber.make(draw(registries), draw(sequences))


def mod97_valid(text: str) -> bool:
    """Independent oracle: letters A=10..Z=35, then the whole number is 1 modulo 97."""
    converted = "".join(
        str(string.ascii_uppercase.index(c) + 10) if c.isalpha() else c
        for c in text.replace("-", "")
    )
    return int(converted) % 97 == 1


def refusal_of(text: str) -> RegistryError | None:
    try:
        AccountNumber.parse(text)
    except (AccountNumberCheckFailed, AccountNumberMalformed) as error:
        return error
    return None


# -- formatting and round trip -------------------------------------------------------------------


@given(account_numbers())
def test_str_has_the_documented_shape_and_passes_mod_97(number: AccountNumber) -> None:
    text = str(number)
    assert SHAPE.fullmatch(text)
    assert text.startswith(f"{number.registry}-{number.sequence:06d}-")
    assert mod97_valid(text)
    assert 2 <= int(text[-2:]) <= 98


@given(account_numbers())
def test_round_trip_str_then_parse(number: AccountNumber) -> None:
    text = str(number)
    parsed = AccountNumber.parse(text)
    assert parsed == number
    assert str(parsed) == text


@given(account_numbers())
def test_parse_tolerates_case_and_surrounding_whitespace(number: AccountNumber) -> None:
    text = str(number)
    assert AccountNumber.parse(f"  {text.lower()}\n") == number


def test_check_digits_examples() -> None:
    # Computed by hand: "PA" -> 2510, "2510000017" + "00" mod 97 = 49; 98 - 49 = 49.
    assert check_digits("PA", 17) == "49"
    assert str(AccountNumber.make("PA", 17)) == "PA-000017-49"
    assert check_digits("PA", 1) == str(AccountNumber.make("PA", 1))[-2:]


@given(registries, sequences)
def test_check_digits_agree_with_the_oracle(registry: str, sequence: int) -> None:
    assert mod97_valid(f"{registry}-{sequence:06d}-{check_digits(registry, sequence)}")


# -- every single mistake is refused ------------------------------------------------------------


@given(account_numbers())
def test_every_single_digit_substitution_fails_the_check(number: AccountNumber) -> None:
    text = str(number)
    for i, ch in enumerate(text):
        if not ch.isdigit():
            continue
        for other in string.digits:
            if other == ch:
                continue
            typo = text[:i] + other + text[i + 1 :]
            error = refusal_of(typo)
            # A typo that zeroes the sequence is malformed; every other one fails the check.
            assert isinstance(error, AccountNumberCheckFailed | AccountNumberMalformed), typo
            zeroed = typo.split("-")[1] == "000000"
            assert isinstance(error, AccountNumberMalformed if zeroed else AccountNumberCheckFailed)
            assert error.details == {"number": typo}


@given(account_numbers())
def test_every_single_letter_substitution_fails_the_check(number: AccountNumber) -> None:
    """The check covers the registry code: a number typed for the wrong registry fails."""
    text = str(number)
    for i, ch in enumerate(text):
        if not ch.isalpha():
            continue
        for other in string.ascii_uppercase:
            if other == ch:
                continue
            typo = text[:i] + other + text[i + 1 :]
            assert isinstance(refusal_of(typo), AccountNumberCheckFailed), typo


@given(account_numbers(), st.sampled_from(string.ascii_letters + string.digits + "-_ ./"))
def test_any_single_character_substitution_is_refused(number: AccountNumber, other: str) -> None:
    text = str(number)
    for i, ch in enumerate(text):
        if other.upper() == ch:
            continue  # not a substitution: parse upper-cases its input
        typo = text[:i] + other + text[i + 1 :]
        error = refusal_of(typo)
        assert error is not None, typo
        assert error.code in ("ACCOUNT_NUMBER_CHECK_FAILED", "ACCOUNT_NUMBER_MALFORMED")


@given(account_numbers())
def test_every_adjacent_transposition_is_refused(number: AccountNumber) -> None:
    text = str(number)
    for i in range(len(text) - 1):
        if text[i] == text[i + 1]:
            continue  # swapping equal characters is not a mistake
        swapped = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        error = refusal_of(swapped)
        assert error is not None, swapped
        assert error.code in ("ACCOUNT_NUMBER_CHECK_FAILED", "ACCOUNT_NUMBER_MALFORMED")
        # A swap within the digits or within the letters keeps the shape: only the check fails.
        if SHAPE.fullmatch(swapped):
            assert isinstance(error, AccountNumberCheckFailed), swapped


# -- malformed numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "PA",
        "PA000017-49",
        "PA-00017-49",
        "PA-0000017-49",
        "PA-000017-4",
        "PA-000017-490",
        "PA_000017_49",
        "P-000017-49",
        "PENNS-000017-49",
        "P1-000017-49",
        "PA-00001A-49",
        "PA-000017-4A",
        "PA -000017-49",
        "PA-000017 -49",
        "12-000017-49",
    ],
)
def test_malformed_numbers_are_refused(text: str) -> None:
    with pytest.raises(AccountNumberMalformed) as caught:
        AccountNumber.parse(text)
    assert caught.value.code == "ACCOUNT_NUMBER_MALFORMED"
    assert caught.value.number == 1101
    assert caught.value.details == {"number": text}


@pytest.mark.parametrize(
    ("registry", "sequence"),
    [("PA", 0), ("PA", 1_000_000), ("PA", -1), ("P", 1), ("PENNS", 1), ("pa", 1), ("P1", 1)],
)
def test_make_refuses_what_cannot_be_numbered(registry: str, sequence: int) -> None:
    with pytest.raises(AccountNumberMalformed):
        AccountNumber.make(registry, sequence)


def test_make_accepts_the_extremes() -> None:
    assert str(AccountNumber.make("PA", 999_999)).startswith("PA-999999-")
    assert str(AccountNumber.make("ABCD", 1)).startswith("ABCD-000001-")


# -- known defects (see the report) --------------------------------------------------------------


def test_non_ascii_digit_substitution_is_refused() -> None:
    assert str(AccountNumber.make("PA", 17)) == "PA-000017-49"
    with pytest.raises((AccountNumberMalformed, AccountNumberCheckFailed)):
        AccountNumber.parse("PA-00001\u0667-49")


def test_the_documented_example_number_is_valid() -> None:
    assert str(AccountNumber.parse("PA-000017-49")) == str(AccountNumber.make("PA", 17))
    for doc in ("docs/ledger.md",):
        text = (Path(__file__).resolve().parents[2] / doc).read_text()
        assert "PA-000017-49" in text and "PA-000017-43" not in text
