"""The store: the only code of the project that issues SQL.

- `harness.storage.records`: the frozen records every caller sees (no SQLAlchemy types).
- `harness.storage.repository`: `Repository.open(url)`, one transaction per method.
- `harness.storage.assign`: the assignment and voting rules (quotas, uniqueness, idempotent votes), concurrency-safe.
- `harness.storage.schema` + ``migrations/``: SQLAlchemy tables and their Alembic revisions (`harness.storage.migrate`).
- `harness.storage.engine`: SQLite (WAL, busy timeout, ``BEGIN IMMEDIATE`` writers) and PostgreSQL engines.

Importing this package imports nothing else, so `records` stays cheap for the dashboards.
"""
