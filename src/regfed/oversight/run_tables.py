"""The oversight node's own tables (SQLAlchemy Core): its reconciliation runs and the
resolutions administrators record. Never a registry's database.

They are created when the store opens (no migrations yet: this is their first version), in one
write transaction holding a lock, so two processes opening a new database at once do not both
try to create them: PostgreSQL takes a transaction-scoped advisory lock, SQLite's ``BEGIN
IMMEDIATE`` holds the database's write lock. A database that already has them is left as it is.

The rules that matter are in the schema, not only in the code that writes: one scheduled run per
calendar day (a UNIQUE ``scheduled_for``, NULL for on-demand runs, and NULLs never collide), a
unique increasing ``sequence``, only known triggers and statuses, a finish time exactly when
finished, a follow-up exactly for ``completed_after_intervention``, and ``resolutions``
append-only (triggers refuse UPDATE and DELETE).
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)

from regfed.node.storage.engine import is_sqlite

from .run_errors import RunStoreUnusable

TRIGGERS = ("scheduled", "on_demand")
RUNNING = "running"
COMPLETED = "completed"
INCONSISTENT = "inconsistent"
INCOMPLETE = "incomplete"
COMPLETED_AFTER_INTERVENTION = "completed_after_intervention"
FAILED = "failed"
STATUSES = (RUNNING, COMPLETED, INCONSISTENT, INCOMPLETE, COMPLETED_AFTER_INTERVENTION, FAILED)

#: Any fixed number: the key of the advisory lock PostgreSQL holds while creating the tables.
_CREATE_LOCK = 0x7265_6766_6564  # "regfed"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: One row (id 1): the last sequence number given. Incrementing it is the first write of every
#: ``begin``, so concurrent begins queue on its row lock and take numbers in commit order.
run_sequence = Table(
    "run_sequence",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last", Integer, nullable=False),
    CheckConstraint("id = 1", name="one_row"),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("sequence", Integer, nullable=False, unique=True),
    Column("trigger", String(16), nullable=False),
    # The local calendar day of the nightly window; NULL for on-demand runs.
    Column("scheduled_for", Date, unique=True),
    Column("status", String(32), nullable=False),
    # UTC, ISO 8601 (e.g. 2025-03-09T07:30:00.000Z): text, so both engines give back the same.
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32)),
    # JSON: the registries the run set out to read, those it could not, the result's counts.
    Column("registries", Text, nullable=False),
    Column("missing", Text, nullable=False),
    Column("counts", Text, nullable=False),
    Column("discrepancies", Integer, nullable=False),
    # The signed result: canonical JSON bytes, the signature over them, the signing key's id.
    Column("document", LargeBinary),
    Column("signature", LargeBinary),
    Column("key_id", String(128)),
    # completed_after_intervention: the inconsistent run whose resolution this run confirms.
    Column("follows_up", String(64), ForeignKey("runs.run_id")),
    # failed: why (an exception's text, or interrupted by a stop).
    Column("reason", Text),
    CheckConstraint(_in('"trigger"', TRIGGERS), name="trigger"),
    CheckConstraint(_in("status", STATUSES), name="status"),
    CheckConstraint(
        # "trigger" quoted: a keyword in both dialects' grammars.
        """("trigger" = 'scheduled' AND scheduled_for IS NOT NULL)"""
        """ OR ("trigger" <> 'scheduled' AND scheduled_for IS NULL)""",
        name="scheduled_for_only_scheduled",
    ),
    CheckConstraint(
        "(status = 'running' AND finished_at IS NULL)"
        " OR (status <> 'running' AND finished_at IS NOT NULL)",
        name="finished_at_when_finished",
    ),
    CheckConstraint(
        f"(status = '{COMPLETED_AFTER_INTERVENTION}' AND follows_up IS NOT NULL)"
        f" OR (status <> '{COMPLETED_AFTER_INTERVENTION}' AND follows_up IS NULL)",
        name="follows_up_only_after_intervention",
    ),
    CheckConstraint("sequence > 0 AND discrepancies >= 0", name="numbers"),
)

resolutions = Table(
    "resolutions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id"), nullable=False, index=True),
    Column("resolved_by", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("recorded_at", String(32), nullable=False),
)

APPEND_ONLY = ("resolutions",)


def create_tables(conn: Connection) -> bool:
    """Create what is missing, inside the caller's write transaction; True if anything was."""
    if not is_sqlite(conn.engine):
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})
    present = set(inspect(conn).get_table_names())
    wanted = set(metadata.tables)
    if wanted <= present:
        return False
    if present & wanted:
        raise RunStoreUnusable(
            f"the run database has only some of its tables ({', '.join(sorted(present & wanted))})"
            ": it was not made by this version of regfed; give the oversight node its own "
            "database (setting database)"
        )
    metadata.create_all(conn)
    conn.execute(run_sequence.insert().values(id=1, last=0))
    _append_only_triggers(conn)
    return True


def _append_only_triggers(conn: Connection) -> None:
    if is_sqlite(conn.engine):
        for table in APPEND_ONLY:
            for event in ("UPDATE", "DELETE"):
                conn.execute(
                    text(
                        f"CREATE TRIGGER {table}_append_only_{event.lower()} BEFORE {event} "
                        f"ON {table} BEGIN SELECT RAISE(ABORT, 'append-only table {table}'); END"
                    )
                )
        return
    conn.execute(
        text(
            "CREATE OR REPLACE FUNCTION regfed_runs_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'append-only table %', TG_TABLE_NAME; "
            "END $$"
        )
    )
    for table in APPEND_ONLY:
        conn.execute(
            text(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION regfed_runs_append_only()"
            )
        )
