"""Schema migrations, driven programmatically with Alembic (no ``alembic.ini`` at run time).

`Repository.open` calls `ensure_current` (a store is migrated to the newest revision on open), and ``harness db
upgrade`` / ``harness db current`` expose `upgrade` and `current_revision` to an admin who migrates a shared
PostgreSQL explicitly. Migrators serialise: SQLite by ``BEGIN IMMEDIATE``, PostgreSQL by a transaction-scoped
advisory lock, so several app processes opening one fresh store at once migrate it exactly once.

A store whose revision this code does not know was migrated by a newer harness: opening it raises `StorageError`
rather than guessing at its tables.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from harness.errors import StorageError
from harness.storage.engine import make_engine, mask_url, read_transaction, write_transaction

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Alembic's script location: ``env.py`` and ``versions/`` (shipped as package data)."""

_ALEMBIC = threading.Lock()
"""Alembic keeps its running migration context in module globals (``alembic.context``, ``alembic.op``), so only one
thread of a process may migrate at a time, whatever the store."""

_ADVISORY_LOCK_KEY = 0x4A52_4E45_5353  # arbitrary constant shared by every harness process migrating PostgreSQL


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic `Config` pointing at the packaged migrations, carrying ``connection`` for ``env.py``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this code knows (what `upgrade` migrates to)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def known_revisions() -> frozenset[str]:
    """Every revision id shipped with this code."""
    return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions())


def current_revision(engine: Engine) -> str | None:
    """The store's revision (``None`` for an empty store).

    Raises:
        StorageError: the store cannot be reached.
    """
    with read_transaction(engine) as connection:
        return _revision(connection)


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def check_known(engine: Engine, revision: str | None) -> None:
    """Raise `StorageError` when ``revision`` was written by a newer harness than this one."""
    if revision is not None and revision not in known_revisions():
        raise StorageError(
            f"store {mask_url(engine.url)} has schema revision {revision!r}, newer than this harness knows "
            f"(newest: {head_revision()!r}); upgrade unclip-harness (pip install -U unclip-harness) or use another "
            "store (HARNESS_DB_URL / --url)"
        )


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the store up to ``revision`` in one transaction; returns ``(before, after)`` revisions.

    Raises:
        StorageError: the store cannot be reached or written, or its revision is newer than this code.
    """
    with _ALEMBIC, write_transaction(engine) as connection:
        _lock(connection)
        before = _revision(connection)
        check_known(engine, before)
        _run(command.upgrade, connection, revision)
        return before, _revision(connection)


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    """Migrate the store down to ``revision`` (``"base"`` drops every table); returns ``(before, after)``."""
    with _ALEMBIC, write_transaction(engine) as connection:
        _lock(connection)
        before = _revision(connection)
        check_known(engine, before)
        _run(command.downgrade, connection, revision)
        return before, _revision(connection)


def ensure_current(engine: Engine) -> None:
    """Migrate the store to head unless it is there already (the common case costs one read).

    Raises:
        StorageError: the store cannot be reached or written, or its revision is newer than this code.
    """
    current = current_revision(engine)
    check_known(engine, current)
    if current != head_revision():
        upgrade(engine)


def _run(action: Callable[[Config, str], None], connection: Connection, revision: str) -> None:
    try:
        action(alembic_config(connection), revision)
    except CommandError as exc:
        raise StorageError(
            f"cannot migrate to revision {revision!r}: {str(exc).splitlines()[0]}; known revisions: "
            f"{', '.join(sorted(known_revisions()))} (or 'head')"
        ) from None


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})


def upgrade_store(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Open the store at ``url``, migrate it to ``revision``, close it; returns ``(before, after)`` (``harness db``)."""
    engine = make_engine(url)
    try:
        return upgrade(engine, revision)
    finally:
        engine.dispose()


def store_revision(url: str) -> str | None:
    """The revision of the store at ``url`` without changing it (``None`` for an empty or missing store)."""
    if _missing_sqlite_file(url):
        return None  # do not create a file just to look at it
    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def _missing_sqlite_file(url: str) -> bool:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False  # make_engine reports the bad URL
    database = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not Path(database).exists()
