"""Database URLs: the two databases regfed runs on are accepted in their short forms; any other
is refused with a typed error that says what to give, and never shows a password."""

from __future__ import annotations

import pytest

from regfed.node.domain.errors import InvalidArgument
from regfed.node.storage.engine import normalize_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("pa.db", "sqlite:///pa.db"),
        ("sqlite:///pa.db", "sqlite:///pa.db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
    ],
)
def test_the_supported_databases_in_their_short_forms(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize("url", ["mysql://u:secret@h/db", "oracle://h/db", "nonsense://"])
def test_another_database_is_refused_saying_what_to_give(url: str) -> None:
    with pytest.raises(InvalidArgument, match="postgresql://USER@HOST") as refused:
        normalize_url(url)
    assert "secret" not in refused.value.message
