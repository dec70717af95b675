"""Alembic migrations of the registry schema (run by ``regfed ledger upgrade`` and on start)."""
