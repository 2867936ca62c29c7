"""Alembic environment: runs the migrations on the connection `harness.storage.migrate` passes in.

`harness.storage.migrate` puts an open SQLAlchemy ``Connection`` (already inside the transaction that serialises
concurrent migrators) into ``config.attributes["connection"]``; offline (``--sql``) mode is not supported.
"""

from __future__ import annotations

from alembic import context

from harness.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the store's migrations through harness.storage.migrate (harness db upgrade), not alembic")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
