"""Engines for the two supported backends and the transactions the repository runs in.

- **SQLite** (default, one machine): WAL journal (readers never block the writer), ``busy_timeout`` (a writer waits
  for the lock instead of failing with "database is locked"), foreign keys on. The driver's own transaction
  handling is switched off so that `write_transaction` can start with ``BEGIN IMMEDIATE``: the write lock is taken
  up front, so two writers never both read and then collide on the upgrade to a write (which SQLite would fail
  without waiting).
- **PostgreSQL** (a team, several app processes): ``postgresql+psycopg://user:password@host:port/db``; writers
  take row locks of the rows they change only (see `harness.storage.assign`).

Writes should go through `harness.storage.writes.run_write` (group commit on SQLite, retried conflicts on
PostgreSQL), which runs on `write_transaction`.

Connection problems become `harness.errors.StorageError` with one line naming the URL (password masked) and the fix.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    NoSuchModuleError,
    ProgrammingError,
    SQLAlchemyError,
)

from harness.errors import StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

BUSY_TIMEOUT_MS = 30_000
"""How long an SQLite writer waits for the write lock before giving up."""

CONNECT_TIMEOUT_S = 5
"""How long a PostgreSQL connection attempt may take."""

CHECKPOINT_EVERY = 16
"""SQLite: a process runs a ``PASSIVE`` WAL checkpoint after every this many of its write transactions."""

PING_AFTER_IDLE_S = 5.0
"""A pooled PostgreSQL connection idle for longer than this is pinged (``SELECT 1``) before use."""

_WRITE = "harness_write"


class WriterGate:
    """The queue of the writers of one SQLite file, taken before ``BEGIN IMMEDIATE``.

    Threads of this process queue on a `threading.Lock` (whatever `Engine` they use); processes then queue on an
    exclusive ``flock`` of the sidecar file ``<store>-writers``. SQLite's own busy handler polls for its write lock
    with sleeps that grow to 100 ms, so under contention a waiting process keeps losing the lock to the process that
    just released it (p99 of seconds); a thread lock and ``flock`` wake a waiter as soon as the lock is free. Without
    ``fcntl`` (Windows) or a writable directory, processes fall back to SQLite's busy handler.
    """

    def __init__(self, database: Path) -> None:
        self.threads = threading.Lock()
        self.path = database.with_name(database.name + "-writers")
        self._file: Any = None
        self._pid = 0
        self._commits = 0
        self._finish = False

    def checkpoint_due(self) -> bool:
        """Count a commit; true every `CHECKPOINT_EVERY` commits of this process (see `write_transaction`)."""
        with self.threads:
            self._commits += 1
            due = self._commits % CHECKPOINT_EVERY == 0
            self._finish = self._finish or due
            return due

    def finish_due(self) -> bool:
        """Whether a checkpoint ran outside the gate since the last call (call it holding the gate)."""
        finish, self._finish = self._finish, False
        return finish

    def _lock_file(self) -> Any:
        if self._pid != os.getpid():  # first use, or a forked child: its own open file, so its own lock
            try:
                self._file = open(self.path, "a+b")  # noqa: SIM115 - kept open for the life of the process
            except OSError:
                self._file = None
            self._pid = os.getpid()
        return self._file

    def __enter__(self) -> None:
        self.threads.acquire()
        try:
            if fcntl is not None and (file := self._lock_file()) is not None:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        except BaseException:
            self.threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if fcntl is not None and self._file is not None and self._pid == os.getpid():
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        finally:
            self.threads.release()


_SQLITE_WRITERS: dict[str, WriterGate] = {}
"""The writer gate of each SQLite file this process opened."""
_SQLITE_WRITERS_LOCK = threading.Lock()


def mask_url(url: str | URL) -> str:
    """The URL as text with its password replaced by ``***`` (safe to print)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url).split("@")[-1]


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 40) -> Engine:
    """Create the engine for a store URL, configured for its backend (nothing is connected yet).

    Args:
        url: ``sqlite:///path/to/file.db`` or ``postgresql+psycopg://user:pw@host:port/db``.
        pool_size: connections kept open.
        max_overflow: extra connections opened under load (one per concurrent request thread).

    Raises:
        StorageError: the URL is malformed, names an unsupported backend or driver, or names an SQLite file whose
            directory cannot be created.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"store URL {mask_url(url)!r} is not a database URL; use sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB (HARNESS_DB_URL or --url)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, pool_size=pool_size, max_overflow=max_overflow)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            engine = create_engine(
                parsed,
                pool_size=pool_size,
                max_overflow=max_overflow,
                connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
            )
            event.listen(engine, "checkin", _note_checkin)
            event.listen(engine, "checkout", _ping_if_idle)
            return engine
        except (NoSuchModuleError, ImportError) as exc:
            raise StorageError(
                f"store URL {mask_url(parsed)}: driver not available ({exc}); use postgresql+psycopg:// "
                "and install psycopg (pip install 'psycopg[binary]')"
            ) from None
    raise StorageError(
        f"store URL {mask_url(parsed)}: unsupported backend {backend!r}; use sqlite:///PATH or "
        "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
    )


def _note_checkin(dbapi_connection: Any, connection_record: Any) -> None:
    connection_record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    """Pessimistic disconnect handling without a round trip per transaction.

    ``pool_pre_ping`` would send ``SELECT 1`` before every transaction (one round trip in ten of a vote). A
    connection used within `PING_AFTER_IDLE_S` is handed out as is (a server that died since fails that transaction,
    whose connection the pool then discards); an older one is pinged, and a dead one replaced (raising
    `DisconnectionError` makes the pool retry with a fresh connection).
    """
    idle = time.monotonic() - connection_record.info.get("checked_in", 0.0)
    if idle <= PING_AFTER_IDLE_S:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()
    except Exception as exc:
        raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _sqlite_engine(url: URL, *, pool_size: int, max_overflow: int) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise StorageError(
            f"store URL {url} is an in-memory SQLite database, which each thread would see empty; "
            "give a file path: sqlite:///PATH/harness.db"
        )
    path = Path(database).expanduser().resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a directory" if blocker else (exc.strerror or str(exc))
        raise StorageError(
            f"cannot create the directory of the SQLite store {path} ({reason}); "
            "choose a writable location with HARNESS_HOME, HARNESS_DB_URL or --url"
        ) from None
    engine = create_engine(
        url.set(database=str(path)),
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    with _SQLITE_WRITERS_LOCK:
        _SQLITE_WRITERS.setdefault(str(path), WriterGate(path))
    return engine


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_on_begin)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA wal_autocheckpoint = 0")  # see WriterGate.checkpoint
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (persistent, so only the first connection to a fresh file changes anything).

    Switching needs an exclusive lock, and SQLite answers "database is locked" at once, without its busy handler,
    when another connection is opening or migrating the same fresh file; so the switch is retried until
    `BUSY_TIMEOUT_MS` has passed.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _sqlite_on_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction: one consistent snapshot, committed (nothing to commit) at exit."""
    with translate_errors(engine), engine.connect() as connection, connection.begin():
        yield connection


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction, committed at exit and rolled back on any exception.

    On SQLite it starts with ``BEGIN IMMEDIATE`` (the write lock, waited for up to `BUSY_TIMEOUT_MS`), so the whole
    transaction runs alone among writers; writers first pass the file's `WriterGate`, which hands the lock over
    without SQLite's polling delays.

    WAL checkpoints (copying the log back into the database file, with its fsync) run mostly *outside* the gate:
    SQLite's automatic checkpoint is off on these connections (it would run inside ``COMMIT``, while every writer of
    every process waits). Every `CHECKPOINT_EVERY` commits a process runs a ``PASSIVE`` checkpoint after releasing
    the gate (the bulk of the copying; it never blocks writers), and its next transaction, holding the gate, first
    copies what was appended meanwhile, so that the log is then fully copied and its write starts the log over
    (SQLite rewinds the WAL only then; without this step it grows without bound under continuous writes).
    """
    gate = _SQLITE_WRITERS.get(str(engine.url.database)) if engine.dialect.name == "sqlite" else None
    with translate_errors(engine):
        with gate or nullcontext():
            if gate is not None and gate.finish_due():
                _checkpoint(engine)
            with engine.connect() as connection:
                connection.execution_options(**{_WRITE: True})
                with connection.begin():
                    yield connection
        if gate is not None and gate.checkpoint_due():
            _checkpoint(engine)


def _checkpoint(engine: Engine) -> None:
    """A ``PASSIVE`` WAL checkpoint on a pooled connection, outside any transaction (the driver connection is in
    autocommit mode: `_sqlite_on_connect`)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            cursor.close()
    finally:
        raw.close()


@contextmanager
def translate_errors(engine: Engine) -> Iterator[None]:
    """Turn "cannot connect / cannot write" driver errors into a one-line `StorageError`; re-raise the rest."""
    try:
        yield
    except SQLAlchemyError as exc:
        message = connection_problem(engine.url, exc)
        if message is None:
            raise
        raise StorageError(message) from exc


def connection_problem(url: URL, exc: BaseException) -> str | None:
    """A one-line description with a fix when ``exc`` means the store is unreachable or read-only, else ``None``."""
    if not isinstance(exc, DBAPIError) or isinstance(exc, (IntegrityError, ProgrammingError)):
        return None
    text = str(exc.orig or exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    lowered = text.lower()
    if url.get_backend_name() == "sqlite":
        markers = ("unable to open database", "readonly database", "disk i/o error", "not a database", "locked")
        if any(marker in lowered for marker in markers):
            fix = (
                "another process holds the write lock for too long; retry, or use PostgreSQL for many writers"
                if "locked" in lowered
                else "choose a writable SQLite file with HARNESS_HOME, HARNESS_DB_URL or --url"
            )
            return f"SQLite store {url.database}: {first}; {fix}"
        return None
    pg_markers = ("connection", "could not", "timeout", "password authentication", "does not exist", "server closed")
    if any(marker in lowered for marker in pg_markers):
        return (
            f"cannot use the PostgreSQL store {mask_url(url)}: {first}; check that the server runs and that "
            "host, port, user, password and database in HARNESS_DB_URL / --url are right"
        )
    return None
