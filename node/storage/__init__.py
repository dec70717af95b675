"""Persistence adapter: SQLAlchemy Core tables, engines, migrations and the store."""
