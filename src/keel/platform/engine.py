"""The database engines: pool settings, pings of idle connections, SQLite pragmas."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from keel.settings import Settings


def _json(value: Any) -> str:
    # Any: a JSON column's value. orjson: several times faster than json.dumps, same JSON.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _engine_kwargs(settings: Settings, url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # One writer at a time in SQLite: a small pool and a generous busy timeout.
        return {
            "connect_args": {"timeout": 30},
            "pool_size": 5,
            "max_overflow": 0,
            "json_serializer": _json,
        }
    return {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
        # Not pool_pre_ping: with asyncpg it costs three round trips (BEGIN, ping, ROLLBACK)
        # on every checkout. _ping_if_idle pings only connections that sat unused a while.
        "pool_recycle": 1800,
        "json_serializer": _json,
        "connect_args": {
            "server_settings": {
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "idle_in_transaction_session_timeout": "60000",
                "application_name": "keel",
                "timezone": "UTC",
            },
            "command_timeout": max(settings.db_statement_timeout_ms / 1000 * 2, 10),
        },
    }


_RETURNED_AT = "keel.pool.returned_at"


def _note_return(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # Any: the DBAPI connection type depends on the driver.
    record.info[_RETURNED_AT] = time.monotonic()


def _ping_if_idle(idle_seconds: float) -> Callable[[Any, ConnectionPoolEntry, Any], None]:
    """A pre-ping for connections that sat in the pool longer than `idle_seconds` (a
    restarted server or a dropped idle connection shows there); busy connections, which a
    failure would have just invalidated, skip the round trips. A dead one is replaced
    before the request uses it, as with pool_pre_ping."""

    def check(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        # Any: the DBAPI connection type depends on the driver.
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < idle_seconds:
            return  # just opened, or in use a moment ago
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("idle connection failed its ping") from exc

    return check


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Any: the DBAPI connection type depends on the driver (aiosqlite adapter here).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder of a SQLite file so a first start on an empty data dir just works."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def create_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    url = url or settings.effective_database_url
    ensure_sqlite_directory(url)
    engine = create_async_engine(url, **_engine_kwargs(settings, url))
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine.sync_engine.pool, "checkin", _note_return)
        event.listen(
            engine.sync_engine.pool, "checkout", _ping_if_idle(settings.db_ping_idle_seconds)
        )
    return engine
