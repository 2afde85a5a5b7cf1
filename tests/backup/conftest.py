"""Fixtures for backup tests: age keys, scratch databases, a running app on any database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pyrage import x25519
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from keel import migrations
from keel.app import create_app
from keel.settings import Settings
from tests.conftest import TEST_DATABASE_URL, is_postgres, recreate_pg_database
from tests.servers import free_port


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    return make_settings(rate_limit_enabled=False, backup_target=str(tmp_path / "backups"))


@pytest.fixture
def age_identity(tmp_path: Path) -> tuple[str, Path]:
    """(public key, identity file) of a fresh age key pair."""
    identity = x25519.Identity.generate()
    path = tmp_path / "backup.key"
    path.write_text(f"# created: test\n# public key: {identity.to_public()}\n{identity}\n")
    return str(identity.to_public()), path


def pg_scratch_url(suffix: str) -> str:
    name = f"{make_url(TEST_DATABASE_URL).database}_{suffix}"
    return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(url: str) -> None:
    admin = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            name = make_url(url).database
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


@pytest.fixture
async def pg_scratch() -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Makes empty PostgreSQL databases beside the test database; drops them afterwards."""
    made: list[str] = []

    async def make(suffix: str) -> str:
        url = pg_scratch_url(suffix)
        await recreate_pg_database(url)
        made.append(url)
        return url

    yield make
    for url in made:
        await drop_pg_database(url)


@pytest.fixture
async def scratch_url(tmp_path: Path, pg_scratch: Callable[[str], Awaitable[str]]) -> str:
    """An empty database of the run's backend to restore into (not yet migrated)."""
    if is_postgres():
        return await pg_scratch("restore")
    return f"sqlite+aiosqlite:///{tmp_path / 'restored.db'}"


@pytest.fixture
def needs_postgres() -> None:
    if not is_postgres():
        pytest.skip("crosses to PostgreSQL: runs in the PostgreSQL + Redis pass")


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app on `settings` (its database migrated first), over HTTP."""
    await asyncio.to_thread(migrations.upgrade, settings.effective_database_url)
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.20", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


async def count(url: str, table: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            if url.startswith("postgresql"):
                await conn.execute(text("SELECT set_config('keel.role', 'system', true)"))
            return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
    finally:
        await engine.dispose()


async def scalars(url: str, sql: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            if url.startswith("postgresql"):
                await conn.execute(text("SELECT set_config('keel.role', 'system', true)"))
            return list((await conn.execute(text(sql))).scalars())
    finally:
        await engine.dispose()


async def index_names(url: str) -> set[str]:
    if url.startswith("postgresql"):
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index'"
    return set(await scalars(url, sql))


def as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server) on loopback."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
