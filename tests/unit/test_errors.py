"""Typed errors: every code and number unique and stable, and round-trippable through dicts."""

from __future__ import annotations

import re

import pytest

from regfed.node.domain import errors
from regfed.node.domain.errors import RegistryError, all_error_types, error_from_dict

pytestmark = pytest.mark.unit

ALL = all_error_types()


def test_every_code_is_unique() -> None:
    codes = [cls.code for cls in ALL]
    assert len(codes) == len(set(codes))


def test_every_number_is_unique() -> None:
    numbers = [cls.number for cls in ALL]
    assert len(numbers) == len(set(numbers))


def test_every_error_defined_in_the_module_is_listed() -> None:
    defined = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, RegistryError)
    }
    assert defined == set(ALL)
    assert len(ALL) == len(set(ALL))


def test_codes_and_numbers_are_well_formed() -> None:
    assert [cls.number for cls in ALL] == sorted(cls.number for cls in ALL)
    for cls in ALL:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", cls.code), cls
        assert 1000 <= cls.number <= 1999, cls
        # A subclass declares its own code and number rather than inheriting them.
        if cls is not RegistryError:
            assert "code" in vars(cls) and "number" in vars(cls), cls


def test_only_contention_is_retryable() -> None:
    assert {cls.code for cls in ALL if cls.retryable} == {
        "CONCURRENT_MODIFICATION",
        "REGISTRY_BUSY",
    }


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.code)
def test_round_trip_through_dict(cls: type[RegistryError]) -> None:
    error = cls("something was refused", account="PA-000017-49", blocks=[{"start": 1, "end": 2}])
    data = error.to_dict()
    assert data["code"] == cls.code
    assert data["number"] == cls.number
    assert data["details"] == {"account": "PA-000017-49", "blocks": [{"start": 1, "end": 2}]}
    assert ("hint" in data) == bool(cls.hint)
    back = error_from_dict(data)
    assert type(back) is cls
    assert back.message == error.message
    assert back.details == error.details
    assert str(back) == f"{cls.code}: something was refused"


def test_to_dict_leaves_out_empty_details() -> None:
    assert errors.AccountNotFound("gone").to_dict() == {
        "code": "ACCOUNT_NOT_FOUND",
        "number": 1104,
        "message": "gone",
    }


def test_unknown_codes_come_back_as_the_base_error() -> None:
    back = error_from_dict({"code": "NO_SUCH_CODE", "message": "m"})
    assert type(back) is RegistryError
    assert back.message == "m"
    assert type(error_from_dict({})) is RegistryError
