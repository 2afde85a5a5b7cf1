"""A statement sent straight to the driver, below SQLAlchemy's execution layer (ADR 0023).

For one statement sent alone (a REST create's insert, in autocommit), SQLAlchemy's execution
layer -- the compiled-cache lookup, the execution context, the cursor adapter and its mutex,
the events -- cost as much CPU as the round trip itself (~120 us of ~500 us, measured in
docs/performance.md). `execute_direct` keeps what of that layer matters: the SQL text and
bind processing SQLAlchemy compiled, its exception classes (an `IntegrityError` is still one,
and a broken connection is invalidated), and the query-duration metric. What it skips is
the events, so SQL spans (tracing) exist only on the SQLAlchemy path: with tracing on, the
caller takes that path (`Database.direct_statements`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

# How long a statement took, by its text (the engine's query-duration histogram).
StatementObserver = Callable[[str, float], None]


@dataclass(frozen=True, slots=True)
class DirectStatement:
    """A statement as the driver takes it: SQL with positional parameters, and for each
    parameter its name and SQLAlchemy's bind processor for its type (or None)."""

    sql: str
    names: tuple[str, ...]
    # Any: a bind processor takes and returns the driver's value for the column type.
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def compile(cls, statement: ClauseElement, dialect: Dialect) -> DirectStatement:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        names = tuple(compiled.positiontup or ())
        processors = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        )
        return cls(sql=compiled.string, names=names, processors=processors)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        # Any: the statement's parameter values, of the columns' Python types.
        return [
            params[name] if process is None else process(params[name])
            for name, process in zip(self.names, self.processors, strict=True)
        ]


async def execute_direct(
    connection: AsyncConnection,
    statement: DirectStatement,
    params: Mapping[str, Any],
    *,
    observe: StatementObserver | None = None,
) -> None:
    """Run `statement` (which returns no rows) on the connection's driver connection."""
    arguments = statement.arguments(params)
    proxied = await connection.get_raw_connection()
    driver: Any = proxied.driver_connection  # Any: asyncpg's Connection (untyped)
    started = time.perf_counter()
    try:
        await driver.execute(statement.sql, *arguments)
    except Exception as exc:
        raise await _as_sqlalchemy_error(
            connection, proxied.dbapi_connection, exc, statement
        ) from exc
    if observe is not None:
        observe(statement.sql, time.perf_counter() - started)


async def _as_sqlalchemy_error(
    connection: AsyncConnection, adapted: Any, exc: Exception, statement: DirectStatement
) -> Exception:
    """The exception SQLAlchemy would have raised for the driver's `exc`, invalidating the
    connection (as SQLAlchemy does) when `exc` means the link is broken."""
    # Any: SQLAlchemy's adapter of the asyncpg connection. Its _handle_exception maps asyncpg's
    # exceptions to DBAPI classes (the mapping the SQLAlchemy path applies); it always raises.
    dialect = connection.dialect
    error: Any = exc  # Any: a DBAPI error once translated (SQLAlchemy types it so)
    try:
        adapted._handle_exception(exc)
    except Exception as translated:
        error = translated
    invalidated = dialect.is_disconnect(error, adapted, None)
    if invalidated:
        await connection.invalidate(error)
    wrapped: Exception = DBAPIError.instance(
        statement.sql,
        None,
        error,
        dialect.loaded_dbapi.Error,
        connection_invalidated=invalidated,
        dialect=dialect,
    )
    return wrapped
