"""Alembic revisions of the store, one file per revision, never edited once released."""
