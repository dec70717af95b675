"""credits: projects, verifier accreditations, documents and their reviews, provenance;
rate-based emissions; deductions per unit type

Revision ID: 0004
Revises: 0003
Create Date: 2027-02-01

Accreditations, documents (and their bytes), reviews and provenance are append-only on both
engines, like the journal: a project's status is the one mutable record, and every change of
it is a journal entry.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = (
    "accreditations",
    "documents",
    "document_contents",
    "document_reviews",
    "provenance",
)


def _unit_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("issuer", sa.String(length=8), nullable=False),
        sa.Column("program", sa.String(length=16), nullable=False),
        sa.Column("unit_type", sa.String(length=16), nullable=False),
        sa.Column("vintage", sa.Integer(), nullable=False),
        sa.Column("start_serial", sa.BigInteger(), nullable=False),
        sa.Column("end_serial", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    op.add_column("emissions", sa.Column("mwh", sa.BigInteger(), nullable=True))
    op.add_column("emissions", sa.Column("standard", sa.String(length=24), nullable=True))
    op.add_column("deductions", sa.Column("by_type", sa.Text(), nullable=True))
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sponsor_account_id", Id, nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("program", sa.String(length=16), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column("capacity_mw", sa.String(length=24), nullable=True),
        sa.Column("baseline", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("registered_seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('proposed', 'approved', 'suspended', 'terminated')",
            name=op.f("ck_projects_status"),
        ),
        sa.ForeignKeyConstraint(
            ["sponsor_account_id"],
            ["accounts.id"],
            name=op.f("fk_projects_sponsor_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("number", name=op.f("uq_projects_number")),
    )
    op.create_table(
        "accreditations",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("verifier", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("person", sa.String(length=128), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.String(length=10), nullable=False),
        sa.Column("valid_to", sa.String(length=10), nullable=False),
        sa.Column("conflicts", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accreditations")),
    )
    op.create_index("ix_accreditations_verifier", "accreditations", ["verifier"])
    op.create_table(
        "documents",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=24), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("series", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("supersedes", sa.String(length=64), nullable=True),
        sa.Column("submitted_by", sa.String(length=160), nullable=False),
        sa.Column("submitted_at", sa.String(length=32), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_documents")),
        sa.UniqueConstraint("series", "version", name=op.f("uq_documents_series_version")),
    )
    op.create_index("ix_documents_subject", "documents", ["subject", "kind"])
    op.create_table(
        "document_contents",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"], ["documents.sha256"], name=op.f("fk_document_contents_sha256_documents")
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_document_contents")),
    )
    op.create_table(
        "document_reviews",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reviewer", sa.String(length=160), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("reviewed_at", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('under-review', 'approved', 'rejected')",
            name=op.f("ck_document_reviews_status"),
        ),
        sa.ForeignKeyConstraint(
            ["sha256"], ["documents.sha256"], name=op.f("fk_document_reviews_sha256_documents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_reviews")),
    )
    op.create_index("ix_document_reviews_sha256", "document_reviews", ["sha256"])
    op.create_table(
        "provenance",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        *_unit_columns(),
        sa.Column("project", sa.String(length=24), nullable=False),
        sa.Column("project_name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("sponsor", sa.String(length=20), nullable=False),
        sa.Column("report_sha256", sa.String(length=64), nullable=False),
        sa.Column("verifier", sa.String(length=32), nullable=False),
        sa.Column("verifier_name", sa.String(length=200), nullable=False),
        sa.Column("monitoring_period", sa.String(length=24), nullable=False),
        sa.Column("issued_at", sa.String(length=32), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("origin IN ('issued', 'received')", name=op.f("ck_provenance_origin")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provenance")),
        sa.UniqueConstraint("report_sha256", name=op.f("uq_provenance_report_sha256")),
        sa.UniqueConstraint(
            "issuer",
            "program",
            "unit_type",
            "vintage",
            "start_serial",
            name=op.f("uq_provenance_issuer_program_unit_type_vintage_start_serial"),
        ),
    )
    op.create_index("ix_provenance_project", "provenance", ["project"])
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
    op.drop_index("ix_provenance_project", table_name="provenance")
    op.drop_table("provenance")
    op.drop_index("ix_document_reviews_sha256", table_name="document_reviews")
    op.drop_table("document_reviews")
    op.drop_table("document_contents")
    op.drop_index("ix_documents_subject", table_name="documents")
    op.drop_table("documents")
    op.drop_index("ix_accreditations_verifier", table_name="accreditations")
    op.drop_table("accreditations")
    op.drop_table("projects")
    with op.batch_alter_table("deductions", schema=None) as batch_op:
        batch_op.drop_column("by_type")
    with op.batch_alter_table("emissions", schema=None) as batch_op:
        batch_op.drop_column("standard")
        batch_op.drop_column("mwh")
