"""The registry's tables (SQLAlchemy Core). Alembic migrations create and upgrade them.

PostgreSQL adds what SQLAlchemy cannot express portably (see the initial migration): the
exclusion constraints that keep serial ranges of one unit class disjoint, and the triggers that
keep the journal append-only. SQLite gets the same triggers; its disjointness is checked in code
inside write transactions that hold the database's write lock.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a real int8.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

registry_meta = Table(
    "registry_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("number", String(20), nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("purpose", String(16)),
    Column("set_aside", String(64)),
    Column("name", String(200), nullable=False),
    Column("source_id", String(64), unique=True),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("opened_at", String(32), nullable=False),
    CheckConstraint("type IN ('compliance', 'general', 'state')", name="type"),
    CheckConstraint("status IN ('open', 'restricted', 'closed')", name="status"),
)

representatives = Table(
    "representatives",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("person_id", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("rights", String(64), nullable=False),
    Column("appointed_at", String(32), nullable=False),
    UniqueConstraint("account_id", "person_id"),
    CheckConstraint("role IN ('primary', 'alternate', 'agent')", name="role"),
)
# At most one primary and one alternate per account, in the schema on both engines.
Index(
    "uq_representatives_one_per_role",
    representatives.c.account_id,
    representatives.c.role,
    unique=True,
    sqlite_where=text("role <> 'agent'"),
    postgresql_where=text("role <> 'agent'"),
)


def _unit_columns() -> list[Column[object]]:
    return [
        Column("issuer", String(8), nullable=False),
        Column("program", String(16), nullable=False),
        Column("unit_type", String(16), nullable=False),
        Column("vintage", Integer, nullable=False),
        Column("start_serial", BigInteger, nullable=False),
        Column("end_serial", BigInteger, nullable=False),
    ]


issuances = Table(
    "issuances",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    *_unit_columns(),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    CheckConstraint("0 <= start_serial AND start_serial <= end_serial", name="range"),
)
Index(
    "ix_issuances_class",
    issuances.c.issuer,
    issuances.c.program,
    issuances.c.unit_type,
    issuances.c.vintage,
    issuances.c.end_serial,
)

blocks = Table(
    "blocks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    *_unit_columns(),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attributed_account_id", Id, ForeignKey("accounts.id")),
    Column("transfer_id", String(64)),
    Column("quarantined", Boolean, nullable=False, server_default=text("false")),
    Column("version", Integer, nullable=False),
    CheckConstraint("0 <= start_serial AND start_serial <= end_serial", name="range"),
    CheckConstraint(
        "state IN ('held', 'escrowed', 'incoming', 'surrendered', 'retired')", name="state"
    ),
)
# Selection order (oldest vintage, then issuer/program/type, lowest serial) straight off the index.
Index(
    "ix_blocks_selection",
    blocks.c.account_id,
    blocks.c.state,
    blocks.c.vintage,
    blocks.c.issuer,
    blocks.c.program,
    blocks.c.unit_type,
    blocks.c.start_serial,
)
Index(
    "ix_blocks_class",
    blocks.c.issuer,
    blocks.c.program,
    blocks.c.unit_type,
    blocks.c.vintage,
    blocks.c.start_serial,
)
Index("ix_blocks_attributed", blocks.c.attributed_account_id)
Index("ix_blocks_transfer", blocks.c.transfer_id)

journal_entries = Table(
    "journal_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("operation_id", String(128)),
    Column("kind", String(32), nullable=False),
    Column("actor", String(160), nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_journal_entries_recorded_at", journal_entries.c.recorded_at)

journal_movements = Table(
    "journal_movements",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, ForeignKey("journal_entries.seq"), nullable=False),
    *_unit_columns(),
    Column("from_account_id", Id),
    Column("from_state", String(16)),
    Column("from_attributed_account_id", Id),
    # No destination: the serials left this registry (an interstate transfer's debit, an unpin).
    Column("to_account_id", Id),
    Column("to_state", String(16)),
    Column("to_attributed_account_id", Id),
)
Index("ix_journal_movements_seq", journal_movements.c.seq)

# Which accounts each journal entry concerns: the account statement's index.
journal_accounts = Table(
    "journal_accounts",
    metadata,
    Column("seq", BigInteger, ForeignKey("journal_entries.seq"), primary_key=True),
    Column("account_id", Id, primary_key=True),
)
Index("ix_journal_accounts_account", journal_accounts.c.account_id, journal_accounts.c.seq)

# One row: the last sequence number and hash. Locking it orders journal appends, so that
# sequence order is commit order, gapless, and the hash chain has no forks.
journal_head = Table(
    "journal_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

operations = Table(
    "operations",
    metadata,
    Column("operation_id", String(128), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("result", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("recorded_at", String(32), nullable=False),
)

# Serial allocation per unit class: locked by issuance so concurrent issuers never race.
serial_counters = Table(
    "serial_counters",
    metadata,
    Column("issuer", String(8), primary_key=True),
    Column("program", String(16), primary_key=True),
    Column("unit_type", String(16), primary_key=True),
    Column("vintage", Integer, primary_key=True),
    Column("next_serial", BigInteger, nullable=False),
)

emissions = Table(
    "emissions",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id"), primary_key=True),
    Column("program", String(16), primary_key=True),
    Column("period", String(9), primary_key=True),
    Column("tons", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    # Rate-based programs: ``tons`` holds CO2 in lb, with the generation and the source's
    # standard (lb/MWh, canonical decimal text). NULL under mass-based programs.
    Column("mwh", BigInteger),
    Column("standard", String(24)),
    CheckConstraint("tons >= 0", name="tons"),
)

deductions = Table(
    "deductions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("program", String(16), nullable=False),
    Column("period", String(9), nullable=False),
    Column("obligation", BigInteger, nullable=False),
    Column("deducted", BigInteger, nullable=False),
    Column("shortfall", BigInteger, nullable=False),
    # Units deducted per unit type, JSON ({"allowance": 97, "offset": 3}): share limits count
    # earlier deductions. NULL for deductions recorded before credits existed (allowances).
    Column("by_type", Text),
)
Index("ix_deductions_account", deductions.c.account_id, deductions.c.program, deductions.c.period)

# -- projects, verifiers, documents and the provenance of credits (docs/credits.md) ---------

projects = Table(
    "projects",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("number", Integer, nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("sponsor_account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("category", String(40), nullable=False),
    Column("program", String(16), nullable=False),
    Column("location", String(200), nullable=False),
    Column("capacity_mw", String(24)),
    Column("baseline", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("registered_seq", BigInteger, nullable=False),
    CheckConstraint("status IN ('proposed', 'approved', 'suspended', 'terminated')", name="status"),
)

accreditations = Table(
    "accreditations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("verifier", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("person", String(128), nullable=False),
    Column("categories", Text, nullable=False),
    Column("valid_from", String(10), nullable=False),
    Column("valid_to", String(10), nullable=False),
    Column("conflicts", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
)
Index("ix_accreditations_verifier", accreditations.c.verifier)

documents = Table(
    "documents",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(24), nullable=False),
    Column("title", String(200), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("public", Boolean, nullable=False),
    Column("series", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("supersedes", String(64)),
    Column("submitted_by", String(160), nullable=False),
    Column("submitted_at", String(32), nullable=False),
    Column("facts", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    UniqueConstraint("series", "version"),
)
Index("ix_documents_subject", documents.c.subject, documents.c.kind)

# The bytes, apart from what is said about them: the identity is their SHA-256.
document_contents = Table(
    "document_contents",
    metadata,
    Column("sha256", String(64), ForeignKey("documents.sha256"), primary_key=True),
    Column("content", LargeBinary, nullable=False),
)

document_reviews = Table(
    "document_reviews",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sha256", String(64), ForeignKey("documents.sha256"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reviewer", String(160), nullable=False),
    Column("reasons", Text, nullable=False),
    Column("reviewed_at", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    CheckConstraint("status IN ('under-review', 'approved', 'rejected')", name="status"),
)
Index("ix_document_reviews_sha256", document_reviews.c.sha256)

# One row per credit issuance known here: written by the issuing registry on approval
# ('issued'), and by every registry that later receives any of its serials ('received').
provenance = Table(
    "provenance",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    *_unit_columns(),
    Column("project", String(24), nullable=False),
    Column("project_name", String(200), nullable=False),
    Column("category", String(40), nullable=False),
    Column("sponsor", String(20), nullable=False),
    Column("report_sha256", String(64), nullable=False, unique=True),
    Column("verifier", String(32), nullable=False),
    Column("verifier_name", String(200), nullable=False),
    Column("monitoring_period", String(24), nullable=False),
    Column("issued_at", String(32), nullable=False),
    Column("origin", String(8), nullable=False),
    Column("seq", BigInteger, nullable=False),
    UniqueConstraint("issuer", "program", "unit_type", "vintage", "start_serial"),
    CheckConstraint("origin IN ('issued', 'received')", name="origin"),
)
Index("ix_provenance_project", provenance.c.project)

# -- the gateway's records: interstate transfers, what to re-send, and every signed message ----

# One row per transfer this registry takes part in (as source, destination, or both for an
# intrastate transfer made through the client API). ``record`` is the protocol core's record.
transfers = Table(
    "transfers",
    metadata,
    Column("transfer_id", String(64), primary_key=True),
    Column("side", String(12), nullable=False),
    Column("peer", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("settled", Boolean, nullable=False),
    Column("record", Text, nullable=False),
    Column("from_account", String(20), nullable=False),
    Column("to_account", String(20), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("requested_by", String(160)),
    Column("request_id", String(128)),
    Column("request_fingerprint", String(64)),
    Column("error_code", String(48)),
    Column("error_message", Text),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    # The price per unit the trader gave (source and local records only), canonical text
    # (``12.50``) and ISO 4217 currency; both NULL when none was given.
    Column("price_amount", String(24)),
    Column("price_currency", String(3)),
    UniqueConstraint("requested_by", "request_id"),
    CheckConstraint("side IN ('source', 'destination', 'local')", name="side"),
    CheckConstraint(
        "status IN ('proposed', 'accepted', 'completed', 'rejected', 'terminated', 'cancelled')",
        name="status",
    ),
)
Index("ix_transfers_settled", transfers.c.settled, transfers.c.side)

# The one message of a transfer re-sent until acknowledged, as signed: byte for byte.
transfer_outbox = Table(
    "transfer_outbox",
    metadata,
    Column("transfer_id", String(64), ForeignKey("transfers.transfer_id"), primary_key=True),
    Column("peer", String(8), nullable=False),
    Column("step", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("sender", String(8), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("written_at", Float, nullable=False),
)

# Every signed message sent or received, kept forever (append-only): the receipts.
transfer_evidence = Table(
    "transfer_evidence",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("transfer_id", String(64), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("step", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("sender", String(8), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("recorded_at", String(32), nullable=False),
    UniqueConstraint("transfer_id", "direction", "digest"),
    CheckConstraint("direction IN ('sent', 'received')", name="direction"),
)

# Refused inputs (bad signatures, replays, wrong roles...): outside the ledger's digest.
security_log = Table(
    "security_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("recorded_at", String(32), nullable=False),
    Column("peer", String(160), nullable=False),
    Column("api", String(16), nullable=False),
    Column("code", String(48), nullable=False),
    Column("message", Text, nullable=False),
    Column("transfer_id", String(64)),
)

APPEND_ONLY_TABLES = (
    "journal_entries",
    "journal_movements",
    "journal_accounts",
    "issuances",
    "deductions",
    "transfer_evidence",
    "security_log",
    "accreditations",
    "documents",
    "document_contents",
    "document_reviews",
    "provenance",
)
