"""Test fixtures: the real app over HTTP, on SQLite or on PostgreSQL + Redis.

The backend is chosen by KEEL_TEST_DATABASE_URL / KEEL_TEST_REDIS_URL (SQLite and no Redis when
unset). A fresh, migrated database per run; every test starts from empty tables.
With CI=true an unreachable PostgreSQL or Redis fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from keel import migrations
from keel.app import create_app
from keel.settings import Settings

TEST_DATABASE_URL = os.environ.get("KEEL_TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("KEEL_TEST_REDIS_URL", "") or None
IN_CI = os.environ.get("CI", "").lower() == "true"
TABLES = [
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_cursor",
    "job_handoffs",
    "job_executors",
    "events",
    "event_tickets",
    "event_watermarks",
    "audit_log",
    "projects",
    "email_tokens",
    "oidc_handoffs",
    "oidc_logins",
    "oidc_identities",
    "auth_sessions",
    "users",
]

# Cheap Argon2 parameters for tests; one test runs the production parameters explicitly.
FAST_ARGON2 = {"argon2_memory_kib": 1024, "argon2_time_cost": 1, "argon2_parallelism": 1}


def is_postgres() -> bool:
    return TEST_DATABASE_URL.startswith("postgresql")


@dataclass
class Backend:
    """The database a test run uses: a migrated template (SQLite) or a fresh database (PG)."""

    kind: str
    url: str
    template: Path | None = None


def _pg_admin_url(url: str) -> str:
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


async def recreate_pg_database(url: str) -> None:
    name = make_url(url).database
    assert name, "the test database URL must name a database"
    assert name.replace("_", "").isalnum(), "test database name must be simple"
    engine = create_async_engine(_pg_admin_url(url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


async def _check_redis(url: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        await client.ping()
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    if is_postgres():
        try:
            asyncio.run(recreate_pg_database(TEST_DATABASE_URL))
        except OSError as exc:
            if IN_CI:
                pytest.fail(f"PostgreSQL unreachable at {TEST_DATABASE_URL}: {exc}")
            pytest.skip(f"PostgreSQL unreachable: {exc}")
        migrations.upgrade(TEST_DATABASE_URL)
        yield Backend(kind="postgresql", url=TEST_DATABASE_URL)
        return
    template = tmp_path_factory.mktemp("template") / "keel.db"
    migrations.upgrade(f"sqlite+aiosqlite:///{template}")
    yield Backend(kind="sqlite", url="", template=template)


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    if TEST_REDIS_URL is None:
        return None
    try:
        asyncio.run(_check_redis(TEST_REDIS_URL))
    except OSError as exc:
        if IN_CI:
            pytest.fail(f"Redis unreachable at {TEST_REDIS_URL}: {exc}")
        pytest.skip(f"Redis unreachable: {exc}")
    return TEST_REDIS_URL


async def _reset_postgres(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


async def _flush_redis(url: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture
async def database_url(backend: Backend, tmp_path: Path, redis_url: str | None) -> str:
    """A database URL whose tables are empty for this test."""
    if redis_url:
        await _flush_redis(redis_url)
    if backend.kind == "postgresql":
        await _reset_postgres(backend.url)
        return backend.url
    assert backend.template is not None
    path = tmp_path / "keel.db"
    shutil.copyfile(backend.template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def make_settings(
    database_url: str, redis_url: str | None, tmp_path: Path
) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "test",
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "redis_url": redis_url,
            "secret_key": "test-secret-" + "x" * 40,
            "log_format": "json",
            # Brute-force tests fail many logins; the slow-down is tested on its own.
            "login_failure_delay_max_seconds": 0,
            # The job worker starts only in the tests of jobs and webhooks (tests/webhooks).
            "jobs_enabled": False,
            # A full collection at every app start would cost the suite minutes; the tuning
            # has its own test (tests/platform/test_gc_tuning.py).
            "gc_tuning": False,
            **FAST_ARGON2,
        }
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


@asynccontextmanager
async def serve(
    settings: Settings, *, peer: str = "203.0.113.10"
) -> AsyncIterator[httpx.AsyncClient]:
    """An app of its own on `settings`, started, with a client over HTTP (`client.app`)."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app, client=(peer, 50000), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(
        app=app, client=("203.0.113.10", 50000), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as c:
        yield c


@dataclass
class RegisteredUser:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def register_user(
    client: httpx.AsyncClient,
    *,
    email: str | None = None,
    password: str = "correct horse battery staple",
    name: str = "Test User",
) -> RegisteredUser:
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": name}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return RegisteredUser(
        id=body["user"]["id"],
        email=email,
        password=password,
        access_token=body["accessToken"],
        refresh_token=body["refreshToken"],
    )


async def promote_to_admin(app: FastAPI, user_id: str) -> None:
    """Make a user an admin directly in the database (the CLI does it for real users).

    Their existing tokens still say role=user; sign in again for an admin token.
    """
    async with app.state.services.database.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE users SET role = 'admin' WHERE id = :id"),
            {"id": uuid.UUID(user_id) if is_postgres() else uuid.UUID(user_id).hex},
        )


@pytest.fixture
def user_factory(client: httpx.AsyncClient) -> Callable[..., Any]:
    async def factory(**kwargs: Any) -> RegisteredUser:
        return await register_user(client, **kwargs)

    return factory
