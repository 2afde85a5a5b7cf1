"""Database engines (primary and optional read replica) and the per-request transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    MetaData,
    TypeDecorator,
    Uuid,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry

from keel.platform.errors import ServiceUnavailable
from keel.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSON on SQLite, JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")
UUIDType = Uuid(as_uuid=True)
# 64-bit ids on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
BigIntPK = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def _engine_kwargs(settings: Settings, url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # One writer at a time in SQLite: a small pool and a generous busy timeout.
        return {"connect_args": {"timeout": 30}, "pool_size": 5, "max_overflow": 0}
    return {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
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
    return engine


@dataclass
class Database:
    """The engines and session factories the app uses; built once in create_app."""

    primary: AsyncEngine
    replica: AsyncEngine | None
    sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        primary = create_engine(settings)
        replica = (
            create_engine(settings, settings.database_replica_url)
            if settings.database_replica_url
            else None
        )
        factory = async_sessionmaker(primary, expire_on_commit=False, autoflush=False)
        read_factory = (
            async_sessionmaker(replica, expire_on_commit=False, autoflush=False)
            if replica is not None
            else factory
        )
        return cls(primary=primary, replica=replica, sessions=factory, read_sessions=read_factory)

    @property
    def dialect(self) -> str:
        return self.primary.dialect.name

    async def ping(self) -> None:
        async with self.primary.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.primary.dispose()
        if self.replica is not None:
            await self.replica.dispose()


def get_database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


async def _transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    try:
        async with factory() as session, session.begin():
            yield session
    # A pool timeout propagates as is: keel.platform.errors renders it as a 503 wherever it
    # happens, in this transaction or in one a service opened itself.
    except OperationalError as exc:
        if "database is locked" in str(exc) or "connection" in str(exc).lower():
            raise ServiceUnavailable(
                "The database is unavailable; try again shortly", headers={"Retry-After": "1"}
            ) from exc
        raise


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the handler returns, rolled back on error."""
    async for session in _transaction(get_database(request).sessions):
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A read-only transaction, on the replica when one is configured."""
    async for session in _transaction(get_database(request).read_sessions):
        yield session


AfterCommit = Callable[[Request, AsyncSession], Awaitable[None]]


def session_then(after_commit: AfterCommit) -> Callable[[Request], AsyncIterator[AsyncSession]]:
    """A request-transaction dependency that runs `after_commit` once the commit succeeded
    (never after a rollback): for work such as cache invalidation that must not run early."""

    async def dependency(request: Request) -> AsyncIterator[AsyncSession]:
        async with asynccontextmanager(get_session)(request) as session:
            yield session
        await after_commit(request, session)

    return dependency


# scope="function": the transaction commits before the response is sent, so a failed commit
# becomes an error response instead of a success the client believes.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]


async def set_rls_actor(session: AsyncSession, *, user_id: uuid.UUID, role: str) -> None:
    """Tell PostgreSQL row-level security who acts in this transaction (no-op on SQLite)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(
        text("SELECT set_config('keel.user_id', :uid, true), set_config('keel.role', :role, true)"),
        {"uid": str(user_id), "role": role},
    )
