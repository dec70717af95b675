"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Beyond the tables: on PostgreSQL, exclusion constraints keep the serial ranges of one unit
class disjoint (btree_gist), for issuances and for blocks; on both engines, triggers make the
journal, issuances and deductions append-only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=True),
        sa.Column("set_aside", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'restricted', 'closed')", name=op.f("ck_accounts_status")
        ),
        sa.CheckConstraint(
            "type IN ('compliance', 'general', 'state')", name=op.f("ck_accounts_type")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("number", name=op.f("uq_accounts_number")),
        sa.UniqueConstraint("source_id", name=op.f("uq_accounts_source_id")),
    )
    op.create_table(
        "journal_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("operation_id", sa.String(length=128), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("recorded_at", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_journal_entries")),
    )
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.create_index("ix_journal_entries_recorded_at", ["recorded_at"], unique=False)

    op.create_table(
        "journal_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_journal_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_head")),
    )
    op.create_table(
        "operations",
        sa.Column("operation_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("operation_id", name=op.f("pk_operations")),
    )
    op.create_table(
        "registry_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_registry_meta")),
    )
    op.create_table(
        "serial_counters",
        sa.Column("issuer", sa.String(length=8), nullable=False),
        sa.Column("program", sa.String(length=16), nullable=False),
        sa.Column("unit_type", sa.String(length=16), nullable=False),
        sa.Column("vintage", sa.Integer(), nullable=False),
        sa.Column("next_serial", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "issuer", "program", "unit_type", "vintage", name=op.f("pk_serial_counters")
        ),
    )
    op.create_table(
        "blocks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("issuer", sa.String(length=8), nullable=False),
        sa.Column("program", sa.String(length=16), nullable=False),
        sa.Column("unit_type", sa.String(length=16), nullable=False),
        sa.Column("vintage", sa.Integer(), nullable=False),
        sa.Column("start_serial", sa.BigInteger(), nullable=False),
        sa.Column("end_serial", sa.BigInteger(), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column(
            "attributed_account_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("transfer_id", sa.String(length=64), nullable=True),
        sa.Column("quarantined", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "state IN ('held', 'escrowed', 'incoming', 'surrendered', 'retired')",
            name=op.f("ck_blocks_state"),
        ),
        sa.CheckConstraint(
            "0 <= start_serial AND start_serial <= end_serial", name=op.f("ck_blocks_range")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_blocks_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["attributed_account_id"],
            ["accounts.id"],
            name=op.f("fk_blocks_attributed_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocks")),
    )
    with op.batch_alter_table("blocks", schema=None) as batch_op:
        batch_op.create_index("ix_blocks_attributed", ["attributed_account_id"], unique=False)
        batch_op.create_index("ix_blocks_transfer", ["transfer_id"], unique=False)
        batch_op.create_index(
            "ix_blocks_class",
            ["issuer", "program", "unit_type", "vintage", "start_serial"],
            unique=False,
        )
        batch_op.create_index(
            "ix_blocks_selection",
            ["account_id", "state", "vintage", "issuer", "program", "unit_type", "start_serial"],
            unique=False,
        )

    op.create_table(
        "deductions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("program", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=9), nullable=False),
        sa.Column("obligation", sa.BigInteger(), nullable=False),
        sa.Column("deducted", sa.BigInteger(), nullable=False),
        sa.Column("shortfall", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_deductions_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deductions")),
    )
    with op.batch_alter_table("deductions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deductions_account", ["account_id", "program", "period"], unique=False
        )

    op.create_table(
        "emissions",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("program", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=9), nullable=False),
        sa.Column("tons", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("tons >= 0", name=op.f("ck_emissions_tons")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_emissions_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "program", "period", name=op.f("pk_emissions")),
    )
    op.create_table(
        "issuances",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("issuer", sa.String(length=8), nullable=False),
        sa.Column("program", sa.String(length=16), nullable=False),
        sa.Column("unit_type", sa.String(length=16), nullable=False),
        sa.Column("vintage", sa.Integer(), nullable=False),
        sa.Column("start_serial", sa.BigInteger(), nullable=False),
        sa.Column("end_serial", sa.BigInteger(), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "0 <= start_serial AND start_serial <= end_serial", name=op.f("ck_issuances_range")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_issuances_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issuances")),
    )
    with op.batch_alter_table("issuances", schema=None) as batch_op:
        batch_op.create_index(
            "ix_issuances_class",
            ["issuer", "program", "unit_type", "vintage", "end_serial"],
            unique=False,
        )

    op.create_table(
        "journal_accounts",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["seq"], ["journal_entries.seq"], name=op.f("fk_journal_accounts_seq_journal_entries")
        ),
        sa.PrimaryKeyConstraint("seq", "account_id", name=op.f("pk_journal_accounts")),
    )
    with op.batch_alter_table("journal_accounts", schema=None) as batch_op:
        batch_op.create_index("ix_journal_accounts_account", ["account_id", "seq"], unique=False)

    op.create_table(
        "journal_movements",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("issuer", sa.String(length=8), nullable=False),
        sa.Column("program", sa.String(length=16), nullable=False),
        sa.Column("unit_type", sa.String(length=16), nullable=False),
        sa.Column("vintage", sa.Integer(), nullable=False),
        sa.Column("start_serial", sa.BigInteger(), nullable=False),
        sa.Column("end_serial", sa.BigInteger(), nullable=False),
        sa.Column(
            "from_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column(
            "from_attributed_account_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "to_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column(
            "to_attributed_account_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["seq"], ["journal_entries.seq"], name=op.f("fk_journal_movements_seq_journal_entries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_movements")),
    )
    with op.batch_alter_table("journal_movements", schema=None) as batch_op:
        batch_op.create_index("ix_journal_movements_seq", ["seq"], unique=False)

    op.create_table(
        "representatives",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("person_id", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("rights", sa.String(length=64), nullable=False),
        sa.Column("appointed_at", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            "role IN ('primary', 'alternate', 'agent')", name=op.f("ck_representatives_role")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_representatives_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_representatives")),
        sa.UniqueConstraint(
            "account_id", "person_id", name=op.f("uq_representatives_account_id_person_id")
        ),
    )
    with op.batch_alter_table("representatives", schema=None) as batch_op:
        batch_op.create_index(
            "uq_representatives_one_per_role",
            ["account_id", "role"],
            unique=True,
            sqlite_where=sa.text("role <> 'agent'"),
            postgresql_where=sa.text("role <> 'agent'"),
        )

    _constraints_and_triggers()


EXCLUSIVE_RANGES = {
    "issuances": "ex_issuances_serials",
    "blocks": "ex_blocks_serials",
}
APPEND_ONLY = (
    "journal_entries",
    "journal_movements",
    "journal_accounts",
    "issuances",
    "deductions",
)


def _constraints_and_triggers() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        for table, name in EXCLUSIVE_RANGES.items():
            op.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {name} EXCLUDE USING gist ("
                "issuer WITH =, program WITH =, unit_type WITH =, vintage WITH =, "
                "int8range(start_serial, end_serial, '[]') WITH &&)"
            )
        op.execute(
            "CREATE FUNCTION regfed_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'append-only table %', TG_TABLE_NAME; END $$"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION regfed_append_only()"
            )
    else:
        for table in APPEND_ONLY:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_append_only_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'append-only table {table}'); END"
                )


def _drop_constraints_and_triggers() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS regfed_append_only()")
    else:
        for table in APPEND_ONLY:
            for event in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_{event}")


def downgrade() -> None:
    _drop_constraints_and_triggers()
    with op.batch_alter_table("representatives", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_representatives_one_per_role",
            sqlite_where=sa.text("role <> 'agent'"),
            postgresql_where=sa.text("role <> 'agent'"),
        )

    op.drop_table("representatives")
    with op.batch_alter_table("journal_movements", schema=None) as batch_op:
        batch_op.drop_index("ix_journal_movements_seq")

    op.drop_table("journal_movements")
    with op.batch_alter_table("journal_accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_journal_accounts_account")

    op.drop_table("journal_accounts")
    with op.batch_alter_table("issuances", schema=None) as batch_op:
        batch_op.drop_index("ix_issuances_class")

    op.drop_table("issuances")
    op.drop_table("emissions")
    with op.batch_alter_table("deductions", schema=None) as batch_op:
        batch_op.drop_index("ix_deductions_account")

    op.drop_table("deductions")
    with op.batch_alter_table("blocks", schema=None) as batch_op:
        batch_op.drop_index("ix_blocks_selection")
        batch_op.drop_index("ix_blocks_class")
        batch_op.drop_index("ix_blocks_transfer")
        batch_op.drop_index("ix_blocks_attributed")

    op.drop_table("blocks")
    op.drop_table("serial_counters")
    op.drop_table("registry_meta")
    op.drop_table("operations")
    op.drop_table("journal_head")
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_journal_entries_recorded_at")

    op.drop_table("journal_entries")
    op.drop_table("accounts")
