"""The Database (its engines come from keel.platform.engine), the one way to open a
transaction, and the after-commit pipeline."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    Uuid,
    bindparam,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session
from sqlalchemy.sql.elements import BindParameter

from keel.platform.direct import DirectStatement, StatementObserver, execute_direct
from keel.platform.engine import create_engine
from keel.platform.errors import ServiceUnavailable
from keel.platform.replica import ACTOR_KEY, REPLAY_KEY, WriteFence, parse_lsn
from keel.platform.unreachable import DATABASE_OUTAGE
from keel.settings import Settings

log = structlog.get_logger("keel.db")

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


# --- the after-commit pipeline ---------------------------------------------------------------
# Work that must follow a commit (cache invalidation, waking the event relay, jobs) is
# scheduled on the session with `after_commit` and nowhere else. KeelSession's listeners keep
# it until the commit and drop it on rollback; `transaction` then awaits it. A session
# committed outside `transaction` still runs its work, as tasks, so it cannot be forgotten.

AfterCommitWork = Callable[[], Awaitable[None]]
_PENDING = "keel.after_commit.pending"
_READY = "keel.after_commit.ready"
_MANAGED = "keel.after_commit.managed"
_DATABASE = "keel.database"
_ALONE = "keel.lone_statement"  # the session's one statement committed itself (insert_rows)
_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}
_background: set[asyncio.Task[None]] = set()


def after_commit(
    session: AsyncSession | Session, work: AfterCommitWork, *, key: str | None = None
) -> None:
    """Run `work` once this session's transaction has committed (never after a rollback).

    Work with the same `key` is scheduled once per transaction (the first one wins), so a
    feature can collect what changed in shared state and act on it once.
    """
    pending: dict[object, AfterCommitWork] = session.info.setdefault(_PENDING, {})
    pending.setdefault(key if key is not None else object(), work)


async def _logged(work: AfterCommitWork) -> None:
    try:
        await work()
    except Exception as exc:  # after the commit there is no caller left to fail
        log.error("after_commit_failed", error_type=type(exc).__name__)


class KeelSession(Session):
    """The sync session behind every AsyncSession Keel opens: carries the pipeline."""


@event.listens_for(KeelSession, "do_orm_execute")
def _nothing_after_a_lone_statement(state: ORMExecuteState) -> None:
    if state.session.info.get(_ALONE):  # it would commit on its own, apart from the first
        raise RuntimeError("a statement after insert_rows(alone=True) in one transaction")


@event.listens_for(KeelSession, "after_commit")
def _commit_done(session: Session) -> None:
    session.info.pop(_ALONE, None)
    pending: dict[object, AfterCommitWork] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    if session.info.get(_MANAGED):
        session.info.setdefault(_READY, {}).update(pending)
        return
    loop = asyncio.get_running_loop()
    for work in pending.values():
        task = loop.create_task(_logged(work))
        _background.add(task)
        task.add_done_callback(_background.discard)


@event.listens_for(KeelSession, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


@dataclass
class Database:
    """The engines and session factories the app uses; built once in create_app.

    With KEEL_DATABASE_REPLICA_URL, `read_sessions` opens read-only endpoints' sessions on the
    replica, except for a user whose last write the replica has not replayed yet.
    """

    primary: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    replica: AsyncEngine | None = None
    replica_sessions: async_sessionmaker[AsyncSession] | None = None
    fence: WriteFence = field(default_factory=lambda: WriteFence(None))
    # Whether a lone statement (insert_rows(alone=True)) may go straight to the driver
    # (keel.platform.direct); off with tracing, whose SQL spans come from SQLAlchemy's events.
    direct_statements: bool = True
    observe_statement: StatementObserver | None = None
    # Named signals a part of the app listens to (the event relay: "events committed"),
    # sent by after-commit work; kept here so that no module-level registry is needed.
    _listeners: dict[str, list[Callable[[], None]]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        primary = create_engine(settings)
        factory = async_sessionmaker(
            primary, expire_on_commit=False, autoflush=False, sync_session_class=KeelSession
        )
        database = cls(primary=primary, sessions=factory)
        factory.configure(info={_DATABASE: database})
        if settings.database_replica_url:
            database.replica = create_engine(settings, settings.database_replica_url)
            database.replica_sessions = async_sessionmaker(
                database.replica,
                expire_on_commit=False,
                autoflush=False,
                sync_session_class=KeelSession,
                info={_DATABASE: database},
            )
        return database

    async def read_sessions(
        self, user_id: uuid.UUID
    ) -> tuple[async_sessionmaker[AsyncSession], int | None]:
        """Where `user_id` reads now: the replica (and its replay position) unless it has not
        replayed the user's last write yet, or no replica is configured (then the primary)."""
        if self.replica is None or self.replica_sessions is None:
            return self.sessions, None
        needed = await self.fence.user_lsn(user_id)
        if needed is None:
            return self.sessions, None
        async with self.replica.connect() as conn:
            raw = await conn.scalar(text(_REPLAY_LSN))
        replayed = parse_lsn(raw) if raw else 0
        if replayed < needed:
            return self.sessions, None
        return self.replica_sessions, replayed

    async def record_write(self, session: AsyncSession) -> None:
        """After a commit, remember the primary's WAL position for read-your-writes."""
        raw = await session.scalar(text("SELECT pg_current_wal_lsn()::text"))
        await self.fence.record(user_id=session.info.get(ACTOR_KEY), lsn=parse_lsn(raw))

    def connect(self, signal: str, listener: Callable[[], None]) -> None:
        self._listeners.setdefault(signal, []).append(listener)

    def disconnect(self, signal: str, listener: Callable[[], None]) -> None:
        listeners = self._listeners.get(signal, [])
        if listener in listeners:
            listeners.remove(listener)

    def send(self, signal: str) -> None:
        for listener in list(self._listeners.get(signal, ())):
            listener()

    @property
    def dialect(self) -> str:
        return self.primary.dialect.name

    @property
    def direct_path(self) -> bool:
        """Whether statements may go straight to asyncpg (keel.platform.direct): on
        PostgreSQL, unless tracing needs SQLAlchemy's events."""
        return self.direct_statements and self.dialect == "postgresql"

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A transaction of its own (see `transaction`)."""
        return transaction(self.sessions)

    async def ping(self) -> None:
        async with self.primary.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.primary.dispose()
        if self.replica is not None:
            await self.replica.dispose()


# The replica's replay position (a primary given as "replica" counts its own WAL).
_REPLAY_LSN = (
    "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
    " ELSE pg_current_wal_lsn() END)::text"
)


async def may_fill_cache(session: AsyncSession) -> bool:
    """Whether what this session reads may go into the shared cache: always on the primary;
    on the replica only if it had replayed every write recorded so far (ask after fetching
    the cache key, before reading: a write that renewed the key is then recorded)."""
    replayed: int | None = session.info.get(REPLAY_KEY)
    if replayed is None:
        return True
    newest = await database_of(session).fence.newest()
    return newest is not None and replayed >= newest


def database_of(session: AsyncSession | Session) -> Database:
    """The Database whose factory opened this session."""
    database: Database = session.info[_DATABASE]
    return database


async def _run_pending(session: AsyncSession) -> None:
    """Run the work a committed transaction scheduled, in order; a failure is logged."""
    while ready := session.info.pop(_READY, None):
        for work in ready.values():
            await _logged(work)


@asynccontextmanager
async def transaction(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A transaction that commits on success and rolls back on error; once it has committed,
    the work it scheduled with `after_commit` runs (awaited, so a response sent after this
    reflects it). The one way Keel opens a transaction."""
    try:
        # Closing the session rolls back whatever is still open (an error in the body).
        async with factory() as session:
            session.info[_MANAGED] = True
            # The transaction begins with the first statement (autobegin): a request served
            # from the cache opens none, and skips begin/commit bookkeeping (~0.1 ms of CPU).
            yield session
            if not (session.in_transaction() or session.info.get(_PENDING)):
                return
            await session.commit()
            DATABASE_OUTAGE.recovered()
            database: Database | None = session.info.get(_DATABASE)
            if (
                database is not None
                and database.replica is not None
                and _READY in session.info
                and REPLAY_KEY not in session.info
            ):
                await database.record_write(session)
            await _run_pending(session)
    # A pool timeout propagates as is: keel.platform.errors renders it as a 503 wherever it
    # happens, in this transaction or in one a service opened itself.
    except OperationalError as exc:
        if "database is locked" in str(exc) or "connection" in str(exc).lower():
            DATABASE_OUTAGE.failed(exc)
            raise ServiceUnavailable(
                "The database is unavailable; try again shortly", headers={"Retry-After": "1"}
            ) from exc
        raise


@dataclass(frozen=True, slots=True)
class RlsActor:
    """Who acts in a transaction, as PostgreSQL row-level security sees it."""

    user_id: uuid.UUID
    role: str


_SET_RLS = (
    "SELECT set_config('keel.user_id', :rls_user_id, true) AS user_id,"
    " set_config('keel.role', :rls_role, true) AS role"
)


def _rls_params(session: AsyncSession, actor: RlsActor) -> dict[str, str]:
    session.info[ACTOR_KEY] = actor.user_id
    return {"rls_user_id": str(actor.user_id), "rls_role": actor.role}


async def set_rls_actor(session: AsyncSession, *, user_id: uuid.UUID, role: str) -> None:
    """Tell PostgreSQL row-level security who acts in this transaction (no-op on SQLite)."""
    params = _rls_params(session, RlsActor(user_id, role))
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(text(_SET_RLS), params)


# --- writing several rows in one round trip --------------------------------------------------

InsertRow = tuple[Table, Mapping[str, Any]]
_Shape = tuple[tuple[Table, tuple[str, ...]], ...]
_SINGLES: dict[tuple[str, tuple[str, ...]], Insert] = {}
_ShapeKey = tuple[tuple[str, tuple[str, ...]], ...]  # table names and columns of a shape
_COMBINED: dict[_ShapeKey, Insert] = {}
_DIRECT: dict[_ShapeKey, DirectStatement] = {}


def _param(table: Table, name: str) -> BindParameter[Any]:
    # Any: the column's Python type.
    return bindparam(f"{table.name}__{name}", type_=table.c[name].type)


def _single_insert(table: Table, columns: tuple[str, ...]) -> Insert:
    """INSERT of one row with one bind parameter per column (`<table>__<column>`)."""
    key = (table.name, columns)
    statement = _SINGLES.get(key)
    if statement is None:
        statement = _SINGLES[key] = insert(table).values(
            {name: _param(table, name) for name in columns}
        )
    return statement


def _combined_insert(shape: _Shape, key: _ShapeKey) -> Insert:
    """One PostgreSQL statement for the rows of `shape` (named by `key`): the RLS settings
    first (a materialised WITH clause every row is selected from, so each row's policy check
    runs after them), then each row but the last in a data-modifying WITH clause."""
    statement = _COMBINED.get(key)
    if statement is None:
        settings = text(_SET_RLS).columns(user_id=String, role=String).cte("keel_rls")
        settings = settings.prefix_with("MATERIALIZED")
        writes = [
            insert(table).from_select(
                list(columns),
                select(*(_param(table, name) for name in columns)).select_from(settings),
            )
            for table, columns in shape
        ]
        statement = writes[-1]
        for index, write in enumerate(writes[:-1]):
            statement = statement.add_cte(write.cte(f"keel_write_{index}"))
        _COMBINED[key] = statement
    return statement


async def insert_rows(
    session: AsyncSession, rows: Sequence[InsertRow], *, rls: RlsActor, alone: bool = False
) -> None:
    """Insert one row into each table (distinct tables) in the caller's transaction, as
    `rls` (set for the rest of the transaction, as set_rls_actor does).

    On PostgreSQL this is one statement, so one round trip with the RLS settings included
    (none of the rows sees another inside the statement; foreign keys are checked at its
    end). SQLite has no data-modifying WITH clause: one statement per row, in order.

    `alone`: the caller promises this is the whole transaction. When the session has run
    nothing yet, PostgreSQL then runs the statement as its own transaction (one statement is
    atomic: all rows or none), without the BEGIN and COMMIT round trips; `transaction` still
    runs the after-commit work once it returns. Nothing may run in the session after it.
    """
    params = [
        {f"{table.name}__{name}": value for name, value in values.items()} for table, values in rows
    ]
    settings = _rls_params(session, rls)
    if session.get_bind().dialect.name == "postgresql":
        shape = tuple((table, tuple(values)) for table, values in rows)
        key = tuple((table.name, columns) for table, columns in shape)
        merged = {name: value for row in params for name, value in row.items()}
        alone = alone and not session.in_transaction()
        statement, arguments = _combined_insert(shape, key), {**merged, **settings}
        if not alone:
            await session.execute(statement, arguments)
            return
        connection = await session.connection(execution_options=_AUTOCOMMIT)
        database: Database | None = session.info.get(_DATABASE)
        if database is not None and database.direct_path:
            direct = _DIRECT.get(key)
            if direct is None:
                direct = _DIRECT[key] = DirectStatement.compile(statement, connection.dialect)
            await execute_direct(connection, direct, arguments, observe=database.observe_statement)
        else:
            await session.execute(statement, arguments)
        session.info[_ALONE] = True
        return
    for (table, values), row_params in zip(rows, params, strict=True):
        await session.execute(_single_insert(table, tuple(values)), row_params)
