"""Shared fixtures: a fresh registry database on each engine.

PostgreSQL tests use ``REGFED_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/``)
and create a throwaway database per test. When the server is unreachable they skip on a
developer's machine but FAIL in CI (``CI=true``): PostgreSQL tests must run there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("REGFED_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _admin_url() -> str:
    url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database="postgres")
    return url.render_as_string(hide_password=False)


def postgres_available() -> str | None:
    """None when reachable, else the reason."""
    try:
        engine = create_engine(_admin_url(), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as error:
        return str(error).splitlines()[0]


def require_postgres() -> None:
    reason = postgres_available()
    if reason is None:
        return
    message = f"PostgreSQL is not reachable at {POSTGRES_URL}: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: PostgreSQL tests must run, not skip)")
    pytest.skip(message)


def create_postgres_database() -> str:
    """Create an empty database and return its URL; drop it with :func:`drop_postgres_database`."""
    require_postgres()
    name = f"regfed_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


_TIERS = ("unit", "integration", "sim", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test belongs to exactly one tier: the folder it lives in."""
    for item in items:
        parts = Path(str(item.path)).parts
        tier = next((t for t in _TIERS if t in parts), None)
        if tier is None:
            raise pytest.UsageError(f"{item.nodeid} is outside the tier folders {_TIERS}")
        item.add_marker(getattr(pytest.mark, tier))
        if Path(str(item.path)).name == "test_scenarios.py":
            item.add_marker(pytest.mark.conformance)
