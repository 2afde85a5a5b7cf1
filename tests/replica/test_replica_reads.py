"""Reads from a real streaming replica, with read-your-writes and a cache the replica's lag
cannot poison."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from keel.app import create_app
from keel.platform.replica import WriteFence, parse_lsn
from keel.settings import Settings
from tests.conftest import FAST_ARGON2, promote_to_admin, register_user
from tests.replica.conftest import ReplicaPair


@pytest.fixture
async def replica_app(
    replica_pair: ReplicaPair, redis_url: str | None, tmp_path: Path
) -> AsyncIterator[FastAPI]:
    admin = create_async_engine(replica_pair.primary_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text("TRUNCATE users, projects, events, audit_log CASCADE"))
    await admin.dispose()
    if redis_url:
        import redis.asyncio as redis

        client = redis.Redis.from_url(redis_url)
        await client.flushdb()
        await client.aclose()
    settings = Settings(
        env="test",
        data_dir=tmp_path / "data",
        database_url=replica_pair.primary_url,
        database_replica_url=replica_pair.replica_url,
        redis_url=redis_url,
        secret_key="test-secret-" + "x" * 40,
        log_format="json",
        login_failure_delay_max_seconds=0,
        **FAST_ARGON2,
    )
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


@pytest.fixture
async def client(replica_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=replica_app, client=("203.0.113.10", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as c:
        yield c


@pytest.fixture
async def standby(replica_pair: ReplicaPair) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(replica_pair.replica_url, isolation_level="AUTOCOMMIT")
    yield engine
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_wal_replay_resume()"))
    await engine.dispose()


async def _admin_headers(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    admin = await register_user(client)
    await promote_to_admin(app, admin.id)
    signed_in = await client.post(
        "/api/v1/auth/login", json={"email": admin.email, "password": admin.password}
    )
    assert signed_in.status_code == 200, signed_in.text
    return {"Authorization": f"Bearer {signed_in.json()['accessToken']}"}


async def _caught_up(primary: AsyncEngine, standby: AsyncEngine) -> None:
    """Wait (generously bounded; not a timing assertion) until the standby replays it all."""
    async with primary.connect() as conn:
        target = parse_lsn(await conn.scalar(text("SELECT pg_current_wal_lsn()::text")))
    for _ in range(600):
        async with standby.connect() as conn:
            replayed = await conn.scalar(text("SELECT pg_last_wal_replay_lsn()::text"))
        if replayed and parse_lsn(replayed) >= target:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the standby did not catch up")


async def test_reads_go_to_the_replica_and_a_writer_reads_its_own_writes(
    replica_app: FastAPI, client: httpx.AsyncClient, standby: AsyncEngine
) -> None:
    database = replica_app.state.services.database
    writer = await register_user(client)
    reader_headers = await _admin_headers(replica_app, client)
    await _caught_up(database.primary, standby)
    # The standby stops replaying: anything read from it is frozen from here on.
    async with standby.connect() as conn:
        await conn.execute(text("SELECT pg_wal_replay_pause()"))

    created = await client.post("/api/v1/projects", json={"name": "fresh"}, headers=writer.headers)
    assert created.status_code == 201, created.text
    project = created.json()
    # The writer sees its write at once (from the primary: the replica has not replayed it).
    mine = await client.get(f"/api/v1/projects/{project['id']}", headers=writer.headers)
    assert mine.status_code == 200
    assert mine.json()["name"] == "fresh"
    listed = await client.get("/api/v1/projects", headers=writer.headers)
    assert [p["id"] for p in listed.json()["data"]] == [project["id"]]

    # Another user's reads go to the replica: an admin (who sees every project) does not
    # see it yet, from the paused standby.
    theirs = await client.get("/api/v1/projects", headers=reader_headers)
    assert theirs.status_code == 200
    assert theirs.json()["data"] == []

    # Once the standby has replayed the write, the writer reads from it too.
    async with standby.connect() as conn:
        await conn.execute(text("SELECT pg_wal_replay_resume()"))
    await _caught_up(database.primary, standby)
    factory, replayed = await database.read_sessions(uuid.UUID(writer.id))
    assert factory is database.replica_sessions
    assert replayed is not None


async def test_a_lagging_replica_never_fills_the_cache_with_stale_data(
    replica_app: FastAPI, client: httpx.AsyncClient, standby: AsyncEngine
) -> None:
    database = replica_app.state.services.database
    writer = await register_user(client)
    admin_headers = await _admin_headers(replica_app, client)
    created = await client.post(
        "/api/v1/projects", json={"name": "version 1"}, headers=writer.headers
    )
    assert created.status_code == 201, created.text
    project = created.json()
    await _caught_up(database.primary, standby)
    async with standby.connect() as conn:
        await conn.execute(text("SELECT pg_wal_replay_pause()"))

    renamed = await client.patch(
        f"/api/v1/projects/{project['id']}",
        json={"name": "version 2"},
        headers={**writer.headers, "If-Match": created.headers["ETag"]},
    )
    assert renamed.status_code == 200, renamed.text
    # The admin has written nothing: it reads the lagging replica and may see version 1 there,
    # but the write renewed the cache key and is recorded, so version 1 must not be cached under it.
    url = f"/api/v1/projects/{project['id']}"
    stale = await client.get(url, headers=admin_headers)
    assert stale.json()["name"] == "version 1"  # served by the paused replica
    stale_list = await client.get("/api/v1/projects", headers=admin_headers)
    assert [p["name"] for p in stale_list.json()["data"]] == ["version 1"]
    async with standby.connect() as conn:
        await conn.execute(text("SELECT pg_wal_replay_resume()"))
    await _caught_up(database.primary, standby)
    assert (await client.get(url, headers=admin_headers)).json()["name"] == "version 2"
    fresh_list = await client.get("/api/v1/projects", headers=admin_headers)
    assert [p["name"] for p in fresh_list.json()["data"]] == ["version 2"]


async def test_an_unreadable_fence_routes_to_the_primary(replica_app: FastAPI) -> None:
    database = replica_app.state.services.database

    class Broken(WriteFence):
        async def user_lsn(self, user_id: uuid.UUID) -> int | None:
            return None

    database.fence = Broken(None)
    factory, replayed = await database.read_sessions(uuid.uuid4())
    assert factory is database.sessions
    assert replayed is None
