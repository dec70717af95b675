"""Prepared statements on both engines: what the driver returns equals what SQLAlchemy returns,
they run inside SQLAlchemy's transaction and savepoints, and their errors are translated as
before."""

from __future__ import annotations

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from regfed.node.domain.errors import ConcurrentModification
from regfed.node.storage.engine import make_engine
from regfed.node.storage.prepared import Prepared
from regfed.node.storage.store import translated_errors

meta = MetaData()
notes = Table(
    "prepared_notes",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(16), nullable=False),
    Column("body", String(64), nullable=False),
    Column("flag", Boolean, nullable=False),
)
_INSERT = Prepared(insert(notes))
_BY_OWNER = select(notes).where(notes.c.owner == bindparam("who")).order_by(notes.c.id)
_FIRST_OF_OWNER = _BY_OWNER.limit(1)
_FLAGGED = select(notes.c.id).where(notes.c.flag.is_(True), notes.c.body == "kept")
_RENAME = Prepared(update(notes).where(notes.c.id == bindparam("p_id")))
_DROP = Prepared(delete(notes).where(notes.c.owner == bindparam("who")))


def _rows(n: int) -> list[dict[str, object]]:
    return [
        {"id": i, "owner": "a" if i % 2 else "b", "body": "kept", "flag": i % 3 == 0}
        for i in range(1, n + 1)
    ]


def test_results_equal_sqlalchemy_execution(db_url: str) -> None:
    engine = make_engine(db_url)
    meta.create_all(engine)
    with engine.begin() as conn:
        _INSERT.run_many(conn, _rows(9))
        for query, params in (
            (_BY_OWNER, {"who": "a"}),
            (_FIRST_OF_OWNER, {"who": "b"}),  # LIMIT bound by SQLAlchemy itself
            (_FLAGGED, {}),  # literals bound by SQLAlchemy itself
        ):
            expected = [tuple(r) for r in conn.execute(query, params)]
            got = Prepared(query).rows(conn, params)
            assert [tuple(r) for r in got] == expected
            assert expected  # the comparison is not vacuous
        row = Prepared(_FIRST_OF_OWNER).first(conn, {"who": "a"})
        assert row is not None
        assert (row.id, row.owner, bool(row.flag)) == (1, "a", False)
        assert Prepared(_FIRST_OF_OWNER).first(conn, {"who": "nobody"}) is None
        with pytest.raises(sa_exc.MultipleResultsFound):
            Prepared(_BY_OWNER).first(conn, {"who": "a"})
        assert _RENAME.run(conn, {"p_id": 2, "body": "renamed"}) == 1
        assert _RENAME.run(conn, {"p_id": 99, "body": "renamed"}) == 0
        assert _DROP.run(conn, {"who": "a"}) == 5
    with engine.connect() as conn:
        query = select(notes.c.id, notes.c.body).order_by(notes.c.id)
        assert [tuple(r) for r in conn.execute(query)] == [
            (2, "renamed"),
            (4, "kept"),
            (6, "kept"),
            (8, "kept"),
        ]
    engine.dispose()


def test_writes_follow_the_transaction_and_its_savepoints(db_url: str) -> None:
    engine = make_engine(db_url)
    meta.create_all(engine)
    with engine.begin() as conn:
        _INSERT.run(conn, _rows(1)[0])
        savepoint = conn.begin_nested()
        _INSERT.run(conn, {**_rows(2)[1]})
        savepoint.rollback()
    with engine.connect() as conn:
        assert [r.id for r in Prepared(select(notes)).rows(conn, {})] == [1]
    with pytest.raises(RuntimeError), engine.begin() as conn:
        _INSERT.run(conn, {**_rows(3)[2]})
        raise RuntimeError("the transaction is abandoned")
    with engine.connect() as conn:
        assert [r.id for r in Prepared(select(notes)).rows(conn, {})] == [1]
    engine.dispose()


def test_driver_errors_are_translated_like_sqlalchemy_errors(db_url: str) -> None:
    engine = make_engine(db_url)
    meta.create_all(engine)
    with engine.begin() as conn:
        _INSERT.run(conn, _rows(1)[0])
    with pytest.raises(ConcurrentModification), translated_errors(), engine.begin() as conn:
        _INSERT.run(conn, _rows(1)[0])  # the same primary key again
    with pytest.raises(sa_exc.IntegrityError), engine.begin() as conn:
        _INSERT.run_many(conn, [_rows(2)[1], _rows(2)[1]])
    engine.dispose()


def test_a_dialect_variant_replaces_the_statement_on_its_own_dialect(db_url: str) -> None:
    engine = make_engine(db_url)
    meta.create_all(engine)
    # Insert-if-absent is spelled per dialect; the generic insert would raise on a conflict.
    once = Prepared(
        insert(notes),
        sqlite=sqlite.insert(notes).on_conflict_do_nothing(index_elements=["id"]),
        postgresql=postgresql.insert(notes).on_conflict_do_nothing(index_elements=["id"]),
    )
    first, again = _rows(1)[0], {**_rows(1)[0], "body": "replaced?"}
    with engine.begin() as conn:
        assert once.run(conn, first) == 1
        assert once.run(conn, again) == 0  # left as it was, no error, transaction still usable
        assert [r.body for r in Prepared(select(notes)).rows(conn, {})] == ["kept"]
    engine.dispose()


def test_statements_it_cannot_run_faithfully_are_refused_at_first_use(db_url: str) -> None:
    engine = make_engine(db_url)
    meta.create_all(engine)
    with engine.begin() as conn:
        with pytest.raises(ValueError, match="who"):
            Prepared(_BY_OWNER).rows(conn, {})  # a parameter left out
        expanding = select(notes).where(notes.c.id.in_(bindparam("ids", expanding=True)))
        with pytest.raises(ValueError, match="expanding"):
            Prepared(expanding).rows(conn, {"ids": [1]})
    engine.dispose()
