"""Engines for the two supported databases.

SQLite (embedded default): WAL, ``synchronous=FULL`` (a committed transfer survives power loss),
foreign keys on, and explicit ``BEGIN IMMEDIATE`` for write transactions, because the sqlite3
module's legacy transaction handling would otherwise start a transaction only at the first write
and SQLAlchemy's ``with_for_update()`` renders nothing on SQLite. Reads use a deferred BEGIN: a
snapshot in WAL mode.

PostgreSQL (production) through psycopg 3; writes run READ COMMITTED with row locks and
compare-and-set updates, reads REPEATABLE READ, read only.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..domain.errors import InvalidArgument

SQLITE_BUSY_TIMEOUT_MS = 10_000
SUPPORTED_BACKENDS = ("sqlite", "postgresql", "postgres")
WRITE = "regfed_write"


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and plain file paths as well as full SQLAlchemy URLs; refuse a
    database regfed does not run on, with what to give instead."""
    if "://" not in url:
        return f"sqlite:///{url}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None
    if parsed is None or parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        shown = url if parsed is None else parsed.render_as_string(hide_password=True)
        raise InvalidArgument(
            f"database URL {shown} is not one regfed runs on: give sqlite:///FILE (or a plain "
            "file path) or postgresql://USER@HOST[:PORT]/DBNAME",
            backend=None if parsed is None else parsed.get_backend_name(),
        )
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module: we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _use_wal(cursor: Any) -> None:
    """Switch a database file to WAL (a no-op once it is: the mode is stored in the file).

    The switch needs the file to itself, and SQLite answers "database is locked" at once, not
    after the busy timeout, while another connection is opening the same new file (seen with
    three processes creating the oversight run database together). So it is retried here until
    the busy timeout has passed, then the error is let through.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
