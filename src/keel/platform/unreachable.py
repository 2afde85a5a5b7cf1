"""Telling "the database cannot be reached" apart from a bug, so it answers 503, logged once."""

from __future__ import annotations

import sqlite3

import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from keel.platform.outage import Outage

log = structlog.get_logger("keel.db")

# SQLSTATE classes and codes that mean the server or the link to it is gone, not the query:
# 08 connection exception; 57P01-57P05 admin/crash shutdown, cannot connect now, idle
# session timeout; 25006 read-only transaction (a failed-over primary that is now a
# replica); 53300 too many connections.
UNREACHABLE_SQLSTATE_PREFIXES = ("08", "57P")
UNREACHABLE_SQLSTATES = frozenset({"25006", "53300"})
RETRY_AFTER_SECONDS = 2

# One per process: logs "database_unavailable" once when requests start failing for this
# reason, and "database_recovered" once a transaction commits again. No skipping: every
# request tries the database, so recovery needs no restart.
DATABASE_OUTAGE = Outage("database", logger=log, retry_seconds=0.0)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 16:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _unreachable_one(exc: BaseException) -> bool:
    if isinstance(exc, PoolTimeout | ConnectionError | TimeoutError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc) or "unable to open" in str(exc)
    if isinstance(exc, OSError):  # refused, reset, unreachable host, DNS failure…
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate in UNREACHABLE_SQLSTATES or sqlstate.startswith(
            UNREACHABLE_SQLSTATE_PREFIXES
        )
    # asyncpg's client-side errors for a dead link (ConnectionDoesNotExistError,
    # InternalClientError "connection is closed"…), without importing the driver here.
    name = type(exc).__name__
    return type(exc).__module__.startswith("asyncpg") and (
        "Connection" in name or name == "InterfaceError"
    )


def database_unreachable(exc: BaseException) -> bool:
    """Whether the error (or one it was raised from) says the database cannot be reached."""
    return any(_unreachable_one(link) for link in _chain(exc))
