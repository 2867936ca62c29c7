"""Statements of the vote path, written in SQLAlchemy Core, compiled once per dialect and run on the driver cursor.

A click runs eight short statements; through ``Connection.execute`` each costs ~150 µs of Python on top of the
database's own ~25 µs (execution context, parameter and result objects), which made the interpreter, not the
database, the bottleneck of the store. `Prepared` keeps the statement a Core construct (dialect-portable, typed)
but compiles it once per dialect and then calls the driver directly, converting parameters and result columns with
the statement's own SQLAlchemy types (their dialect implementation's ``bind_processor`` / ``result_processor``), so values are exactly
what ``Connection.execute`` would bind and return. psycopg then prepares the statement on the server after a few
executions (its ``prepare_threshold``).

It runs inside the caller's SQLAlchemy transaction, on the same driver connection. Driver errors are re-raised as
SQLAlchemy's `DBAPIError` subclasses (`IntegrityError`, `OperationalError`, ...), as ``Connection.execute`` raises
them.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable


def _arguments(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The driver's positional arguments (``?`` in order) from a name -> value mapping."""
    if len(names) == 1:
        return lambda values: (values[names[0]],)
    return itemgetter(*names) if names else (lambda values: ())


@dataclass(frozen=True)
class _Plan:
    """A statement compiled for one dialect: SQL, parameter order/defaults/converters, result converters."""

    sql: str
    arguments: Callable[[Mapping[str, Any]], Any]
    defaults: Mapping[str, Any]
    binders: tuple[tuple[str, Callable[[Any], Any]], ...]
    readers: tuple[tuple[int, Callable[[Any], Any]], ...]
    row_type: Any


class Prepared:
    """A Core statement run on the driver cursor (see the module docstring).

    Args:
        statement: a ``select``, or an ``insert``/``update`` (with ``returning`` for `rows`/`first`); its
            ``bindparam`` names are the parameters of every call.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._plans: dict[str, _Plan] = {}

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = self.statement.compile(dialect=dialect)  # type: ignore[attr-defined]
            binds = compiled.binds
            columns = list(getattr(self.statement, "exported_columns", ()))
            plan = _Plan(
                sql=compiled.string,
                arguments=_arguments(tuple(compiled.positiontup)) if dialect.positional else dict,
                defaults={name: b.value for name, b in binds.items() if not b.required},
                binders=tuple(
                    (name, proc)
                    for name, b in binds.items()
                    if (proc := b.type.dialect_impl(dialect).bind_processor(dialect)) is not None
                ),
                readers=tuple(
                    (k, read)
                    for k, c in enumerate(columns)
                    if (read := c.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
                ),
                row_type=namedtuple("Row", [c.key for c in columns], rename=True) if columns else None,
            )
            self._plans[dialect.name] = plan
        return plan

    def _execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        plan = self._plans.get(conn.dialect.name) or self._plan(conn.dialect)
        values = {**plan.defaults, **params}
        for name, binder in plan.binders:
            values[name] = binder(values[name])
        args = plan.arguments(values)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(plan.sql, args)
        except conn.dialect.loaded_dbapi.Error as exc:
            cursor.close()
            raise DBAPIError.instance(plan.sql, args, exc, conn.dialect.loaded_dbapi.Error) from exc
        return cursor

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every result row, as named tuples with the statement's column keys and converted values."""
        cursor = self._execute(conn, params)
        try:
            raw = cursor.fetchall()
        finally:
            cursor.close()
        plan = self._plans[conn.dialect.name]
        if not plan.readers:
            return [plan.row_type._make(row) for row in raw]
        out = []
        for row in raw:
            values = list(row)
            for k, read in plan.readers:
                values[k] = read(values[k])
            out.append(plan.row_type._make(values))
        return out

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any | None:
        """The first result row, or ``None``."""
        found = self.rows(conn, params)
        return found[0] if found else None

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute a statement without results; returns the driver's row count."""
        cursor = self._execute(conn, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()
