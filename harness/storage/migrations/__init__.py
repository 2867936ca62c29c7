"""Alembic migrations of the store, driven programmatically by `harness.storage.migrate` (no alembic.ini)."""
