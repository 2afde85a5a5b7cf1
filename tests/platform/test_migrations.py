"""Every migration upgrades and downgrades cleanly, and the result matches the models."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, make_url
from sqlalchemy.ext.asyncio import create_async_engine

import keel.models
from keel import migrations
from tests.conftest import TEST_DATABASE_URL, is_postgres, recreate_pg_database


async def _fresh_pg_database() -> str:
    url = make_url(TEST_DATABASE_URL)
    fresh = url.set(database=f"{url.database}_migrations").render_as_string(hide_password=False)
    await recreate_pg_database(fresh)
    return fresh


async def _tables_and_diff(url: str) -> tuple[set[str], list[object]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:

            def inspect_sync(sync_conn: object) -> tuple[set[str], list[object]]:
                inspector = inspect(sync_conn)
                tables = set(inspector.get_table_names())
                context = MigrationContext.configure(sync_conn)  # type: ignore[arg-type]
                # Expression indexes (created_at DESC) cannot be compared by autogenerate, so
                # indexes are checked by name below and left out of the structural diff.
                diff = [
                    d
                    for d in compare_metadata(context, keel.models.Base.metadata)
                    if not (isinstance(d, tuple) and d[0] in {"add_index", "remove_index"})
                ]
                db_indexes = {ix["name"] for table in tables for ix in inspector.get_indexes(table)}
                model_indexes = {
                    str(ix.name)
                    for table in keel.models.Base.metadata.tables.values()
                    for ix in table.indexes
                }
                missing = model_indexes - db_indexes
                if missing:
                    diff.append(("missing_indexes", sorted(missing)))
                return tables, diff

            return await conn.run_sync(inspect_sync)
    finally:
        await engine.dispose()


@pytest.fixture
def migration_url(tmp_path: Path) -> str:
    if is_postgres():
        return asyncio.run(_fresh_pg_database())
    return f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"


def _user_tables(tables: set[str]) -> set[str]:
    return {t for t in tables if t != "alembic_version"}


def test_upgrade_downgrade_upgrade_round_trip(migration_url: str) -> None:
    migrations.upgrade(migration_url)
    tables, diff = asyncio.run(_tables_and_diff(migration_url))
    assert set(keel.models.Base.metadata.tables) <= tables
    # The migrated schema is exactly what the models declare (no drift between the two).
    assert diff == []

    migrations.downgrade(migration_url, "base")
    tables, _ = asyncio.run(_tables_and_diff(migration_url))
    assert _user_tables(tables) == set()

    migrations.upgrade(migration_url)
    tables, _ = asyncio.run(_tables_and_diff(migration_url))
    assert set(keel.models.Base.metadata.tables) <= tables


def test_each_revision_downgrades_one_step(migration_url: str) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations.alembic_config(migration_url))
    revisions = [r.revision for r in script.walk_revisions()]  # head first
    migrations.upgrade(migration_url)
    for revision in revisions:
        migrations.downgrade(migration_url, "-1")
        migrations.upgrade(migration_url, revision)
        migrations.downgrade(migration_url, "-1")
    tables, _ = asyncio.run(_tables_and_diff(migration_url))
    assert _user_tables(tables) == set()
