"""Alembic environment: runs on the connection handed over by :mod:`..migrate`."""

from __future__ import annotations

from alembic import context

from regfed.node.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through `regfed ledger upgrade`, which supplies a connection"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
