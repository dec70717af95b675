"""The registry's domain: pure Python, free of SQLAlchemy and gRPC."""
