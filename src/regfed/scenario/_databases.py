"""Where a scenario's registries keep their data: SQLite files in the run's folder, or one
fresh database per registry on a PostgreSQL server, created for the run and dropped after it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError


class DatabaseChoiceError(ValueError):
    """The ``--db`` value cannot be used; the message says what to give instead."""


def parse_db_choice(value: str | None) -> URL | None:
    """``sqlite`` (or nothing): None. ``postgresql://[USER@]HOST[:PORT][/ANY]``: the server."""
    if value is None or value == "sqlite":
        return None
    try:
        url = make_url(value)
    except ArgumentError:
        url = None
    if url is None or url.get_backend_name() != "postgresql":
        raise DatabaseChoiceError(
            f"--db {value!r}: give sqlite or a PostgreSQL server URL, "
            "e.g. postgresql://postgres@127.0.0.1:5432/"
        )
    return url.set(drivername="postgresql+psycopg")


@dataclass
class Databases:
    server: URL | None = None
    created: list[str] = field(default_factory=list)
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def kind(self) -> str:
        if self.server is None:
            return "SQLite"
        return f"PostgreSQL at {self.server.host or 'localhost'}:{self.server.port or 5432}"

    def create(self, codes: list[str]) -> dict[str, str]:
        """The database URL of each registry (none on SQLite: the federation's default)."""
        if self.server is None:
            return {}
        urls = {}
        for code in codes:
            name = f"regfed_scenario_{self.run}_{code.lower()}"
            self._admin(f'CREATE DATABASE "{name}"')
            self.created.append(name)
            urls[code] = self.server.set(database=name).render_as_string(hide_password=False)
        return urls

    def drop(self) -> None:
        while self.created:
            self._admin(f'DROP DATABASE IF EXISTS "{self.created.pop()}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        assert self.server is not None
        engine = create_engine(self.server.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(statement))
        except OperationalError as error:
            raise DatabaseChoiceError(
                f"{self.kind} refused {statement.split(maxsplit=1)[0]} DATABASE: "
                f"{error.orig}; check the server is up and the user may create databases"
            ) from None
        finally:
            engine.dispose()
