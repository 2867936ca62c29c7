"""The store: the only code of the project that issues SQL.

- `harness.storage.records`: the frozen records every caller sees (no SQLAlchemy types).
- `harness.storage.repository`: `Repository.open(url)`, one transaction per method.
- `harness.storage.assign`: the assignment and voting rules (quotas, uniqueness, idempotent votes, stale slots),
  kept with per-item counters, concurrency-safe; `harness.storage.tour` picks the next item by index seeks;
  `harness.storage.onestep` does the common vote and claim in one statement each on PostgreSQL.
- `harness.storage.progress`: progress counts of annotators and studies.
- `harness.storage.schema` + ``migrations/``: SQLAlchemy tables and their Alembic revisions (`harness.storage.migrate`).
- `harness.storage.engine`: SQLite (WAL, busy timeout, ``BEGIN IMMEDIATE`` writers behind a per-file writer gate)
  and PostgreSQL engines; `harness.storage.writes` runs write transactions (group commit on SQLite, retried
  conflicts on PostgreSQL); `harness.storage.prepared` runs the hot statements on the driver cursor.

Importing this package imports nothing else, so `records` stays cheap for the dashboards.
"""
