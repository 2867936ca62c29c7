"""Running the body of a write transaction: group commit on SQLite, retried conflicts on PostgreSQL.

`run_write(engine, body)` runs ``body(connection)`` in a write transaction and returns its result (or raises its
exception) once the transaction is committed, with the same meaning as::

    with write_transaction(engine) as connection:
        return body(connection)

- **SQLite** allows one writer at a time and, with ``synchronous=FULL``, pays an fsync (~4 ms here) per commit,
  so one transaction per click caps a store at a few hundred clicks per second whatever the CPU. Writer threads of
  a process therefore commit as a group: the first to arrive becomes the *leader*, waits for the write lock, then
  runs the bodies queued for the same database file by then (up to `MAX_BATCH`, its own among them, and those that
  arrived while it waited), each inside a ``SAVEPOINT`` so that one body's
  exception rolls back that body alone, commits once, and hands every thread its own result. A body that fails
  gets its exception; if the commit itself fails, every body of the group gets that error and none of their
  writes is kept. Nothing is acknowledged before the commit that makes it durable. Bodies must only touch the
  database through the connection they are given (they may run in another thread).
- **PostgreSQL** commits concurrent transactions together by itself (group commit of the WAL flush). A
  transaction that loses a lock conflict (deadlock, serialisation failure, lock timeout) or a race on a unique key,
  or that ran on a pooled connection the server had closed, is rolled back and run again, up to `RETRIES` times:
  bodies read what they need inside the transaction, so a rerun decides afresh.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from harness.storage.engine import translate_errors, write_transaction

T = TypeVar("T")

MAX_BATCH = 64
"""Most bodies one SQLite transaction runs (a leader then leads again for the rest)."""

RETRIES = 8
"""Attempts of a PostgreSQL transaction that keeps losing conflicts."""

TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "23505"})
"""serialization_failure, deadlock_detected, lock_not_available, unique_violation (a concurrent insert won)."""


class _Ticket(Generic[T]):
    """One body waiting in a commit queue, and what became of it."""

    __slots__ = ("body", "done", "error", "result")

    def __init__(self, body: Callable[[Connection], T]) -> None:
        self.body = body
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


class _CommitQueue:
    """The bodies waiting to be committed to one SQLite file by this process, and whether a leader is running."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.waiting: list[_Ticket[object]] = []
        self.leading = False


_QUEUES: dict[str, _CommitQueue] = {}
_QUEUES_LOCK = threading.Lock()


def run_write(engine: Engine, body: Callable[[Connection], T]) -> T:
    """Run ``body`` in a write transaction and return its result once committed (see the module docstring)."""
    if engine.dialect.name == "sqlite":
        return _group_commit(engine, body)
    return _with_retries(engine, body)


def _with_retries(engine: Engine, body: Callable[[Connection], T]) -> T:
    for attempt in range(RETRIES):
        try:
            with write_transaction(engine) as connection:
                return body(connection)
        except DBAPIError as exc:
            transient = exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) in TRANSIENT_SQLSTATES
            if attempt == RETRIES - 1 or not transient:
                raise
        time.sleep(random.uniform(0, 0.002 * 2**attempt))
    raise AssertionError("unreachable")


def _queue(engine: Engine) -> _CommitQueue:
    key = str(engine.url.database)
    with _QUEUES_LOCK:
        return _QUEUES.setdefault(key, _CommitQueue())


def _group_commit(engine: Engine, body: Callable[[Connection], T]) -> T:
    queue = _queue(engine)
    ticket: _Ticket[T] = _Ticket(body)
    with queue.cond:
        queue.waiting.append(ticket)  # type: ignore[arg-type]
        while not ticket.done:
            if queue.leading:
                queue.cond.wait()
                continue
            queue.leading = True
            queue.cond.release()
            try:
                _lead(engine, queue)
            finally:
                queue.cond.acquire()
                queue.leading = False
                queue.cond.notify_all()
    if ticket.error is not None:
        with translate_errors(engine):
            raise ticket.error
    return ticket.result  # type: ignore[return-value]


def _take(queue: _CommitQueue) -> list[_Ticket[object]]:
    with queue.cond:
        batch, queue.waiting = queue.waiting[:MAX_BATCH], queue.waiting[MAX_BATCH:]
    return batch


def _lead(engine: Engine, queue: _CommitQueue) -> None:
    """One transaction for the bodies queued once the write lock is held (those that arrived while the leader
    waited for it included); every ticket taken is done afterwards, with a result or an error."""
    batch: list[_Ticket[object]] = []
    try:
        with write_transaction(engine) as connection:
            batch = _take(queue)
            if len(batch) == 1:
                batch[0].result = batch[0].body(connection)
            else:
                for ticket in batch:
                    _run_in_savepoint(connection, ticket)
    except BaseException as exc:  # noqa: BLE001 - no transaction, or the commit (or the only body) failed
        batch = batch or _take(queue)
        for ticket in batch:
            if ticket.error is None:
                ticket.error, ticket.result = exc, None
    finally:
        for ticket in batch:
            ticket.done = True


def _run_in_savepoint(connection: Connection, ticket: _Ticket[object]) -> None:
    """``body`` between ``SAVEPOINT`` and ``RELEASE`` (``ROLLBACK TO`` first when it raises), sent to the driver
    directly: through ``Connection.begin_nested`` the two statements cost more than a whole vote."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute("SAVEPOINT harness_body")
        try:
            ticket.result = ticket.body(connection)
        except Exception as exc:  # noqa: BLE001 - handed to the ticket's thread, which raises it
            cursor.execute("ROLLBACK TO harness_body")
            ticket.error = exc
        cursor.execute("RELEASE harness_body")
    finally:
        cursor.close()
