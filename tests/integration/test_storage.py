"""The storage adapter: migrations, schema guards, engine settings, tampering detection."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from regfed.node import Selection, StatePurpose, Transfer, errors, open_existing, open_registry
from regfed.node.storage.engine import make_engine
from regfed.node.storage.migrate import current_revision, head_revision, upgrade
from regfed.node.storage.schema import metadata
from support import issue, op_id, open_general


def test_migrations_build_exactly_the_declared_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    before, after = upgrade(engine)
    assert (before, after) == (None, head_revision())
    assert upgrade(engine) == (head_revision(), head_revision())  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"schema.py and the migrations disagree: {diff}"
    engine.dispose()


def test_node_upgrades_its_database_on_start(db_url: str) -> None:
    reg = open_registry(db_url, "PA")
    assert current_revision(reg.engine) == head_revision()
    reg.close()
    again = open_existing(db_url)
    assert again.code == "PA"
    again.close()
    with pytest.raises(errors.InvalidArgument, match="belongs to registry PA"):
        open_registry(db_url, "NY")


def test_journal_is_append_only_in_the_schema(db_url: str) -> None:
    reg = open_registry(db_url, "PA")
    issue(reg, 10)
    for statement in (
        "UPDATE journal_entries SET actor = 'x'",
        "DELETE FROM journal_movements",
        "DELETE FROM issuances",
        "UPDATE journal_accounts SET account_id = 99",
    ):
        with pytest.raises(DBAPIError, match="append-only"), reg.engine.begin() as conn:
            conn.execute(text(statement))
    reg.close()


def test_postgres_schema_refuses_overlapping_blocks(tmp_path: object) -> None:
    from conftest import create_postgres_database, drop_postgres_database

    url = create_postgres_database()
    try:
        reg = open_registry(url, "PA")
        issue(reg, 100)
        columns = (
            "issuer, program, unit_type, vintage, start_serial, end_serial, account_id, state, "
            "version"
        )
        for start, end in ((50, 60), (100, 200), (1, 1)):
            with pytest.raises(DBAPIError, match="ex_blocks_serials"), reg.engine.begin() as conn:
                conn.execute(
                    text(
                        f"INSERT INTO blocks ({columns}) VALUES "
                        f"('PA', 'RGGI', 'allowance', 2025, {start}, {end}, 1, 'held', 1)"
                    )
                )
        with pytest.raises(DBAPIError, match="ex_issuances_serials"), reg.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO issuances (issuer, program, unit_type, vintage, start_serial, "
                    "end_serial, account_id, seq) "
                    "VALUES ('PA', 'RGGI', 'allowance', 2025, 5, 6, 1, 1)"
                )
            )
        # Another vintage is another unit: the same serials are allowed.
        with reg.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO blocks ({columns}) VALUES "
                    "('PA', 'RGGI', 'allowance', 2024, 1, 100, 1, 'held', 1)"
                )
            )
        reg.close()
    finally:
        drop_postgres_database(url)


def test_sqlite_runs_wal_with_full_synchronous(tmp_path: object) -> None:
    from pathlib import Path

    reg = open_registry(str(Path(str(tmp_path)) / "pa.db"), "PA")
    with reg.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    reg.close()


def test_many_engines_opening_one_new_sqlite_file_at_once_all_get_wal(tmp_path: object) -> None:
    # Switching a new file to WAL answered "database is locked" at once, without waiting out
    # the busy timeout, when another connection was opening it too (1 in 17 three-way races).
    import threading
    from pathlib import Path

    failures: list[BaseException] = []
    for attempt in range(25):
        url = f"sqlite:///{Path(str(tmp_path)) / f'new-{attempt}.db'}"
        barrier = threading.Barrier(6, timeout=30)

        def connect(url: str = url, barrier: threading.Barrier = barrier) -> None:
            engine = make_engine(url)
            try:
                barrier.wait()
                with engine.connect() as conn:
                    assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            except BaseException as error:  # collected: a thread's failure must fail the test
                failures.append(error)
            finally:
                engine.dispose()

        threads = [threading.Thread(target=connect) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert failures == [], f"attempt {attempt}: {failures}"


def test_verify_detects_tampering_with_holdings(db_url: str) -> None:
    reg = open_registry(db_url, "PA")
    acme = open_general(reg, "alice")
    issue(reg, 100)
    reg.ledger.transfer(
        Transfer(
            operation_id=op_id(),
            from_account=reg.state_account(StatePurpose.ALLOCATION).label,
            to_account=acme,
            selection=Selection(quantity=10),
        ),
        reg.ledger.administrator,
    )
    assert reg.queries.verify().ok
    with reg.engine.begin() as conn:  # an operator edits a row behind the ledger's back
        conn.execute(text("UPDATE blocks SET start_serial = 16 WHERE start_serial = 11"))
        conn.execute(text("UPDATE blocks SET end_serial = end_serial + 5 WHERE end_serial = 10"))
    report = reg.queries.verify()
    failed = {c.name for c in report.checks if not c.ok}
    assert failed == {"journal-replay"}
    reg.close()


def test_verify_detects_a_rewritten_journal(tmp_path: object) -> None:
    from pathlib import Path

    reg = open_registry(str(Path(str(tmp_path)) / "pa.db"), "PA")
    issue(reg, 100)
    with reg.engine.begin() as conn:  # dropping the guard is possible; the hash chain still tells
        conn.execute(text("DROP TRIGGER journal_entries_append_only_update"))
        conn.execute(text("UPDATE journal_entries SET actor = 'someone-else' WHERE seq = 4"))
    report = reg.queries.verify()
    assert [c.name for c in report.checks if not c.ok] == ["journal-chain"]
    reg.close()
