"""transfer prices: the price per unit a source registry recorded for a transfer

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-18

Both columns are NULL when no price was given (every transfer recorded before this revision),
and set together otherwise: the amount in canonical text (``12.50``, never a float) and its
ISO 4217 currency.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns without a default: a plain ALTER TABLE ADD COLUMN on both engines.
    op.add_column("transfers", sa.Column("price_amount", sa.String(length=24), nullable=True))
    op.add_column("transfers", sa.Column("price_currency", sa.String(length=3), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_column("price_currency")
        batch_op.drop_column("price_amount")
