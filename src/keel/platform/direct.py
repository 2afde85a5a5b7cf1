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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

_T = TypeVar("_T")

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

    async def execute(driver: Any) -> None:
        # Any: asyncpg's Connection (untyped).
        await observed(observe, statement.sql, driver.execute(statement.sql, *arguments))

    await on_driver(connection, execute, sql=statement.sql)


async def observed(observe: StatementObserver | None, sql: str, call: Awaitable[_T]) -> _T:
    """Await a driver call, reporting its duration to the query-duration metric."""
    started = time.perf_counter()
    result = await call
    if observe is not None:
        observe(sql, time.perf_counter() - started)
    return result


async def on_driver(
    connection: AsyncConnection,
    work: Callable[[Any], Awaitable[_T]],
    *,
    sql: str,
    passes: tuple[type[Exception], ...] = (),
) -> _T:
    """Run `work` with the connection's driver connection (asyncpg's), raising what
    SQLAlchemy would have raised for a driver error (`sql` names the statement in it);
    exceptions of the `passes` types are the caller's own and pass unchanged."""
    proxied = await connection.get_raw_connection()
    try:
        return await work(proxied.driver_connection)
    except passes:
        raise
    except Exception as exc:
        raise await _as_sqlalchemy_error(connection, proxied.dbapi_connection, exc, sql) from exc


async def _as_sqlalchemy_error(
    connection: AsyncConnection, adapted: Any, exc: Exception, sql: str
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
        sql,
        None,
        error,
        dialect.loaded_dbapi.Error,
        connection_invalidated=invalidated,
        dialect=dialect,
    )
    return wrapped
