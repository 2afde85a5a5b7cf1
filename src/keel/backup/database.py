"""Reading a consistent snapshot out of, and loading a backup into, SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import (
    Column,
    MetaData,
    Table,
    event,
    func,
    inspect,
    literal,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from keel import migrations
from keel.backup.archive import ArchiveWriter, BackupError, Section, decoder_for
from keel.models import Base
from keel.platform.engine import ensure_sqlite_directory

BATCH_ROWS = 1000
# Rows per INSERT batch on restore: larger batches amortise round trips and index work.
LOAD_BATCH_ROWS = 5000
# Tables whose rows mean "this database is in use": restore refuses them without --force.
OCCUPANCY_TABLES = ("users", "projects")

Progress = Callable[[str, int], Awaitable[None]]


def open_engine(url: str) -> AsyncEngine:
    """A pool-less engine for one backup or restore, with real transactions on SQLite.

    pysqlite opens a transaction only before a write, so two SELECTs could see different
    data; BEGIN on the first statement gives a read snapshot (WAL lets writers go on).
    """
    ensure_sqlite_directory(url)
    if not url.startswith("sqlite"):
        return create_async_engine(
            url,
            poolclass=NullPool,
            connect_args={
                "server_settings": {"application_name": "keel-backup", "timezone": "UTC"}
            },
        )
    engine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Any: the DBAPI connection type depends on the driver (aiosqlite adapter here).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "begin", on_begin)
    return engine


async def _as_system(conn: AsyncConnection) -> None:
    """PostgreSQL row-level security hides projects from a transaction naming no actor."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT set_config('keel.role', 'system', true)"))


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(migrations.alembic_config("sqlite://"))


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return head


def is_known_revision(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


async def current_revision(conn: AsyncConnection) -> str | None:
    def read(sync: Connection) -> str | None:
        if not inspect(sync).has_table("alembic_version"):
            return None
        return sync.execute(text("SELECT version_num FROM alembic_version")).scalar()

    return await conn.run_sync(read)


# --- snapshot -------------------------------------------------------------------------------


@asynccontextmanager
async def snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One read-only transaction that sees a single point in time while writers go on."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # As pg_dump does: a serializable, read-only, deferrable transaction waits for a
            # snapshot no concurrent serializable transaction can invalidate, then never fails.
            await conn.execution_options(
                isolation_level="SERIALIZABLE",
                postgresql_readonly=True,
                postgresql_deferrable=True,
            )
        async with conn.begin():
            if conn.dialect.name == "postgresql":
                # A large table takes longer than the request-sized timeouts allow.
                await conn.execute(text("SET LOCAL statement_timeout = 0"))
                await conn.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            await _as_system(conn)
            yield conn


async def dump(
    conn: AsyncConnection, writer: ArchiveWriter, *, progress: Progress | None = None
) -> None:
    """Stream every table, in foreign-key order, through the writer (server-side cursors)."""
    for table in Base.metadata.sorted_tables:
        columns = [column.name for column in table.columns]
        await asyncio.to_thread(writer.write_table, table.name, columns)
        result = await conn.stream(
            select(table)
            .order_by(*table.primary_key.columns)
            .execution_options(yield_per=BATCH_ROWS)
        )
        rows = 0
        async for partition in result.partitions(BATCH_ROWS):
            batch = [tuple(row) for row in partition]
            rows += len(batch)
            # Compression and encryption run off the event loop, so a scheduled backup does
            # not stall the requests this instance serves.
            await asyncio.to_thread(writer.write_rows, batch)
        if progress is not None:
            await progress(table.name, rows)


# --- restore --------------------------------------------------------------------------------


async def count_rows(conn: AsyncConnection, tables: list[str]) -> dict[str, int]:
    existing = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    counts = {}
    for name in tables:
        if name in existing:
            table = Table(name, MetaData())
            counts[name] = int(
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            )
    return counts


def _section_table(section: Section) -> tuple[Table, list[str]]:
    """A table with the backup's columns, typed as the models type them (by name)."""
    model = Base.metadata.tables.get(section.table)
    if model is None:
        raise BackupError(f"the backup holds table {section.table!r}, unknown to this Keel")
    columns = []
    for name in section.columns:
        known = model.columns.get(name)
        columns.append(Column(name, known.type if known is not None else None))
    self_refs = [
        fk.parent.name
        for fk in model.foreign_keys
        if fk.column.table is model and fk.parent.name in section.columns
    ]
    return Table(section.table, MetaData(), *columns), self_refs


class _Links:
    """Self-references (a session's parent) set after the whole table is in, in any order.

    Rows are written with the reference empty and the pair kept in a temporary table, so
    the order of rows in the file never violates the foreign key and memory stays flat.
    """

    def __init__(self, table: Table, key: str, column: str) -> None:
        self.target, self.key, self.column = table, key, column
        self.temp = Table(
            f"keel_restore_{table.name}_{column}",
            MetaData(),
            Column("k", table.c[key].type, primary_key=True),
            Column("v", table.c[column].type),
            prefixes=["TEMPORARY"],
        )
        self.pending = 0

    async def apply(self, conn: AsyncConnection) -> None:
        if not self.pending:
            return
        link = self.temp
        await conn.execute(
            self.target.update()
            .where(self.target.c[self.key].in_(select(link.c.k)))
            .values(
                {
                    self.column: select(link.c.v)
                    .where(link.c.k == self.target.c[self.key])
                    .scalar_subquery()
                }
            )
        )
        await conn.execute(text(f"DROP TABLE {link.name}"))


async def _clear_seeded(conn: AsyncConnection, tables: list[str]) -> None:
    """Drop rows a migration seeded (the webhook fan-out's cursor) in the freshly migrated
    target: the backup's rows, or its lack of rows, are what the restore must reproduce."""
    for name in reversed(tables):
        model = Base.metadata.tables.get(name)
        if model is None:
            continue
        if await conn.scalar(select(literal(1)).select_from(model).limit(1)) is not None:
            await conn.execute(model.delete())


async def load(
    conn: AsyncConnection,
    sections: Iterator[Section],
    *,
    tables: list[str],
) -> dict[str, int]:
    """Insert every section's rows (the caller's transaction), in the file's FK order, into
    the backup's `tables` (emptied of migration-seeded rows first).

    Returns the rows inserted per table (tables without rows are left out)."""
    await _as_system(conn)
    await _clear_seeded(conn, tables)
    indexes = await _drop_secondary_indexes(conn)
    counts: dict[str, int] = {}
    links: dict[str, _Links] = {}
    table: Table | None = None
    decoders: list[Any] = []  # Any: one decoder per column
    self_refs: list[str] = []
    while True:
        section = await asyncio.to_thread(next, sections, None)
        if section is None:
            break
        if table is None or table.name != section.table:
            if table is not None and table.name in links:
                await links[table.name].apply(conn)
            table, self_refs = _section_table(section)
            decoders = [decoder_for(column.type) for column in table.columns]
            if self_refs:
                key = next(iter(Base.metadata.tables[table.name].primary_key.columns)).name
                links[table.name] = _Links(table, key, self_refs[0])
                await conn.run_sync(links[table.name].temp.create)
        names = section.columns
        records = [
            {name: decode(value) for name, decode, value in zip(names, decoders, row, strict=True)}
            for row in section.rows
        ]
        if self_refs:
            link = links[table.name]
            pairs = [
                {"k": record[link.key], "v": record[link.column]}
                for record in records
                if record[link.column] is not None
            ]
            for record in records:
                record[link.column] = None
            if pairs:
                await conn.execute(link.temp.insert(), pairs)
                link.pending += len(pairs)
        if records:
            await conn.execute(table.insert(), records)
            counts[table.name] = counts.get(table.name, 0) + len(records)
    if table is not None and table.name in links:
        await links[table.name].apply(conn)
    for definition in indexes:
        await conn.exec_driver_sql(definition)
    await _reset_sequences(conn)
    return counts


async def _drop_secondary_indexes(conn: AsyncConnection) -> list[str]:
    """Drop the indexes no constraint needs, to build each once after the load instead of
    row by row (on PostgreSQL the trigram GIN indexes made that 4x slower). Returns their
    definitions, as the freshly migrated database has them."""
    if conn.dialect.name == "postgresql":
        query = (
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = indexname)"
        )
    else:  # SQLite: indexes of constraints are 'sqlite_autoindex_…' and have no SQL
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    definitions = []
    for name, definition in (await conn.execute(text(query))).all():
        await conn.exec_driver_sql(f'DROP INDEX "{name}"')
        definitions.append(str(definition))
    return definitions


async def _reset_sequences(conn: AsyncConnection) -> None:
    """Identity/serial columns continue after the restored ids (SQLite does this itself)."""
    if conn.dialect.name != "postgresql":
        return
    for table in Base.metadata.sorted_tables:
        for column in table.primary_key.columns:
            if column.autoincrement is True:
                after = func.coalesce(select(func.max(column)).scalar_subquery(), 0) + 1
                sequence = func.pg_get_serial_sequence(table.name, column.name)
                await conn.execute(select(func.setval(sequence, after, False)))
