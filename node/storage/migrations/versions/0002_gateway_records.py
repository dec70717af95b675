"""gateway records: transfers, outbox, evidence, security log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

The evidence (every signed message sent or received) and the security log are append-only on
both engines, like the journal.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("transfer_evidence", "security_log")


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("transfer_id", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=12), nullable=False),
        sa.Column("peer", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("from_account", sa.String(length=20), nullable=False),
        sa.Column("to_account", sa.String(length=20), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(length=160), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("error_code", sa.String(length=48), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            "side IN ('source', 'destination', 'local')", name=op.f("ck_transfers_side")
        ),
        sa.CheckConstraint(
            "status IN ('proposed', 'accepted', 'completed', 'rejected', 'terminated', "
            "'cancelled')",
            name=op.f("ck_transfers_status"),
        ),
        sa.PrimaryKeyConstraint("transfer_id", name=op.f("pk_transfers")),
        sa.UniqueConstraint(
            "requested_by", "request_id", name=op.f("uq_transfers_requested_by_request_id")
        ),
    )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index("ix_transfers_settled", ["settled", "side"], unique=False)

    op.create_table(
        "transfer_outbox",
        sa.Column("transfer_id", sa.String(length=64), nullable=False),
        sa.Column("peer", sa.String(length=8), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("sender", sa.String(length=8), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("written_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["transfers.transfer_id"],
            name=op.f("fk_transfer_outbox_transfer_id_transfers"),
        ),
        sa.PrimaryKeyConstraint("transfer_id", name=op.f("pk_transfer_outbox")),
    )
    op.create_table(
        "transfer_evidence",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("transfer_id", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("sender", sa.String(length=8), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            "direction IN ('sent', 'received')", name=op.f("ck_transfer_evidence_direction")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_evidence")),
        sa.UniqueConstraint(
            "transfer_id",
            "direction",
            "digest",
            name=op.f("uq_transfer_evidence_transfer_id_direction_digest"),
        ),
    )
    op.create_table(
        "security_log",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("recorded_at", sa.String(length=32), nullable=False),
        sa.Column("peer", sa.String(length=160), nullable=False),
        sa.Column("api", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("transfer_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_log")),
    )
    _triggers()


def _triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # regfed_append_only() was created by 0001.
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION regfed_append_only()"
            )
        return
    for table in APPEND_ONLY:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'append-only table {table}'); END"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in APPEND_ONLY:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            for event in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_{event}")
    op.drop_table("security_log")
    op.drop_table("transfer_evidence")
    op.drop_table("transfer_outbox")
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_transfers_settled")
    op.drop_table("transfers")
