"""Hot statements sent straight to the database driver, inside SQLAlchemy's open transaction.

Executing even a cached Core statement costs SQLAlchemy tens of microseconds of Python per call
(parameter processing, execution context, result metadata); the gateway's hot path runs about a
hundred statements per interstate transfer, and that overhead was a third of a transfer's CPU
(`regfed bench transfers`, profiled in process). A :class:`Prepared` statement is compiled once
per dialect and parameter shape by SQLAlchemy itself, then executed on the connection's DB-API
cursor: same SQL, same transaction, same savepoints. Driver errors come back wrapped as
SQLAlchemy's ``DBAPIError``, so callers translate them exactly as before.

Only plain statements qualify: no expanding ``IN`` parameters and no Python-side column
defaults (both need SQLAlchemy at execution time); compiling one of those raises at first use.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import Delete, Insert, Select, Update

Statement = Select[Any] | Insert | Update | Delete


@dataclass(frozen=True, slots=True)
class _Form:
    """One statement compiled for one dialect and one set of parameter names."""

    sql: str
    order: tuple[str, ...] | None  # bind names in order for positional drivers (SQLite)
    defaults: dict[str, Any]  # values SQLAlchemy bound itself (literals, LIMIT)
    row: Any  # namedtuple class of the result columns, or None

    def parameters(self, given: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        values = {**self.defaults, **given}
        if self.order is None:
            return values
        return tuple(values[name] for name in self.order)


def _row_class(fields: list[str]) -> Any:
    return namedtuple("Row", fields)


class Prepared:
    """A prebuilt Core statement executed on the raw driver cursor of an open connection."""

    __slots__ = ("_forms", "_variants", "statement")

    def __init__(self, statement: Statement, **variants: Statement) -> None:
        """``variants`` replace the statement for the dialect they are named after, for SQL
        that SQLAlchemy spells per dialect (``ON CONFLICT``, say)."""
        self.statement = statement
        self._variants = variants
        self._forms: dict[tuple[str, frozenset[str]], _Form] = {}

    def _form(self, dialect: Dialect, names: frozenset[str]) -> _Form:
        key = (dialect.name, names)
        form = self._forms.get(key)
        if form is None:
            form = self._compile(dialect, names)
            self._forms[key] = form
        return form

    def _compile(self, dialect: Dialect, names: frozenset[str]) -> _Form:
        statement = self._variants.get(dialect.name, self.statement)
        writes = isinstance(statement, Insert | Update)
        compiled = statement.compile(dialect=dialect, column_keys=sorted(names) if writes else None)
        if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
            raise ValueError("a prepared statement cannot fill Python-side column defaults")
        if any(b.expanding for b in compiled.binds.values()):
            raise ValueError("a prepared statement cannot take an expanding IN parameter")
        required = {name for name, bind in compiled.binds.items() if bind.required}
        if required - names:
            raise ValueError(f"no value for {', '.join(sorted(required - names))}")
        defaults = {k: v for k, v in compiled.params.items() if k not in required | names}
        row: Any = None
        if isinstance(statement, Select):
            # Rows read by attribute, as SQLAlchemy's Row is by the code that consumes them.
            fields = [str(c.key) for c in statement.selected_columns]
            row = _row_class(fields)
        order = tuple(compiled.positiontup or ()) if dialect.positional else None
        return _Form(compiled.string, order, defaults, row)

    def _cursor(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, _Form]:
        form = self._form(conn.dialect, frozenset(params))
        return _driver(conn, form.sql, form.parameters(params)), form

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        cursor, form = self._cursor(conn, params)
        try:
            return [form.row._make(r) for r in cursor.fetchall()]
        finally:
            cursor.close()

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any | None:
        """The only row, or ``None``; more than one row is a programming error."""
        found = self.rows(conn, params)
        if len(found) > 1:
            raise sa_exc.MultipleResultsFound("a prepared statement expected at most one row")
        return found[0] if found else None

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute a write; the number of rows it changed."""
        cursor, _form = self._cursor(conn, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute a write once per row (rows share one set of parameter names)."""
        if not rows:
            return
        form = self._form(conn.dialect, frozenset(rows[0]))
        arguments = [form.parameters(r) for r in rows]
        _driver(conn, form.sql, arguments, many=True).close()


def run_sql(conn: Connection, sql: str) -> None:
    """Execute one constant statement (a savepoint, say) on the driver, errors wrapped alike."""
    _driver(conn, sql, ()).close()


def _driver(conn: Connection, sql: str, arguments: Any, *, many: bool = False) -> Any:
    """Execute on the connection's DB-API cursor; the open cursor, or the driver's error
    wrapped as SQLAlchemy's ``DBAPIError`` (what ``translated_errors`` expects)."""
    dialect = conn.dialect
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if many:
            cursor.executemany(sql, arguments)
        else:
            cursor.execute(sql, arguments)
    except dialect.loaded_dbapi.Error as error:
        cursor.close()
        raise sa_exc.DBAPIError.instance(
            sql, arguments, error, dialect.loaded_dbapi.Error, dialect=dialect
        ) from error
    return cursor
