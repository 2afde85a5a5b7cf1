"""Cached reads are never stale after a write, on one instance and across instances."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from keel.app import create_app
from keel.settings import Settings
from tests.conftest import RegisteredUser
from tests.projects.conftest import API, create


async def test_reads_follow_every_write(client: httpx.AsyncClient, alice: RegisteredUser) -> None:
    first = await client.get(API, headers=alice.headers)  # first page now cached
    assert first.json()["data"] == []
    project = await create(client, alice, name="Fresh")
    url = f"{API}/{project['id']}"
    listed = await client.get(API, headers=alice.headers)
    assert [p["name"] for p in listed.json()["data"]] == ["Fresh"]
    assert (await client.get(url, headers=alice.headers)).json()["name"] == "Fresh"
    await client.patch(url, json={"name": "Renamed"}, headers=alice.headers)
    assert (await client.get(url, headers=alice.headers)).json()["name"] == "Renamed"
    listed = await client.get(API, headers=alice.headers)
    assert [p["name"] for p in listed.json()["data"]] == ["Renamed"]
    await client.delete(url, headers=alice.headers)
    assert (await client.get(url, headers=alice.headers)).status_code == 404
    assert (await client.get(API, headers=alice.headers)).json()["data"] == []


async def test_admin_list_follows_a_users_write(
    client: httpx.AsyncClient, alice: RegisteredUser, admin: RegisteredUser
) -> None:
    assert (await client.get(API, headers=admin.headers)).json()["data"] == []
    await create(client, alice)
    assert len((await client.get(API, headers=admin.headers)).json()["data"]) == 1
    scoped = await client.get(API, params={"userId": alice.id}, headers=admin.headers)
    assert len(scoped.json()["data"]) == 1


@pytest.fixture
async def second_instance(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    if not settings.redis_url:
        pytest.skip("instances share invalidations only through Redis")
    other = create_app(settings)
    async with LifespanManager(other, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=other, client=("203.0.113.11", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as c:
            yield c


async def test_a_write_on_one_instance_is_seen_by_the_other(
    client: httpx.AsyncClient, second_instance: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    project = await create(client, alice, name="Shared")
    url = f"{API}/{project['id']}"
    # Warm the other instance's caches, then write through the first one.
    assert (await second_instance.get(url, headers=alice.headers)).json()["name"] == "Shared"
    assert len((await second_instance.get(API, headers=alice.headers)).json()["data"]) == 1
    await client.patch(url, json={"name": "Changed"}, headers=alice.headers)
    await create(client, alice, name="Another")
    for _ in range(50):  # invalidation travels by pub/sub: allow it a moment
        seen = (await second_instance.get(url, headers=alice.headers)).json()["name"]
        listed = (await second_instance.get(API, headers=alice.headers)).json()["data"]
        if seen == "Changed" and len(listed) == 2:
            break
        await asyncio.sleep(0.02)
    assert seen == "Changed"
    assert {p["name"] for p in listed} == {"Changed", "Another"}
