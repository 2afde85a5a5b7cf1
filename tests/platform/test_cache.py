"""The two-tier cache: bounds, single flight, cross-instance invalidation, Redis outages."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from keel.app import create_redis
from keel.platform.cache import Cache, MemoryCache
from keel.platform.metrics import REGISTRY
from keel.platform.tiered_cache import INVALIDATION_CHANNEL, KEY_PREFIX, TieredCache
from keel.settings import Settings
from tests.conftest import FAST_ARGON2, TEST_REDIS_URL, register_user
from tests.servers import free_port, run_server

needs_redis = pytest.mark.skipif(not TEST_REDIS_URL, reason="L2 needs Redis")


def counter(name: str, layer: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_total", {"cache_layer": layer}) or 0.0


async def test_memory_cache_bounds_size_and_expires_entries() -> None:
    cache = MemoryCache(max_items=2, ttl=60)
    await cache.set("a", b"1")
    await cache.set("b", b"2")
    assert await cache.get("a") == b"1"  # a is now the most recently used
    await cache.set("c", b"3")
    assert await cache.get("b") is None  # least recently used went out
    assert await cache.get("a") == b"1"
    await cache.set("short", b"x", ttl=0.01)
    await asyncio.sleep(0.03)
    assert await cache.get("short") is None
    await cache.delete("a", "missing")
    assert await cache.get("a") is None
    await cache.close()
    assert await cache.get("c") is None


async def test_memory_cache_of_size_zero_stores_nothing() -> None:
    cache = MemoryCache(max_items=0)
    await cache.set("a", b"1")
    assert await cache.get("a") is None


async def test_memory_cache_counts_l1_hits_and_misses() -> None:
    hits, misses = counter("cache_hits", "l1"), counter("cache_misses", "l1")
    cache = MemoryCache()
    await cache.get("k")
    await cache.set("k", b"v")
    await cache.get("k")
    await cache.get("k")
    assert counter("cache_hits", "l1") == hits + 2
    assert counter("cache_misses", "l1") == misses + 1


@pytest.fixture
async def redis_client(make_settings: Callable[..., Settings]) -> AsyncIterator[Redis]:
    if not TEST_REDIS_URL:
        pytest.skip("needs Redis")
    client = create_redis(make_settings())
    assert client is not None
    yield client
    await client.aclose()


@pytest.fixture
async def tiered_pair(
    redis_client: Redis, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[TieredCache, TieredCache]]:
    """Two caches on one Redis, as two instances would have."""
    other = create_redis(make_settings())
    assert other is not None
    first = TieredCache(redis=redis_client, l1=MemoryCache(ttl=60), l2_ttl=60, repeat_delay=0.05)
    second = TieredCache(redis=other, l1=MemoryCache(ttl=60), l2_ttl=60, repeat_delay=0.05)
    await first.start()
    await second.start()
    yield first, second
    await first.close()
    await second.close()
    await other.aclose()


async def _single_flight(cache: Cache) -> None:
    calls = 0
    gate = asyncio.Event()

    async def compute() -> bytes:
        nonlocal calls
        calls += 1
        await gate.wait()
        return b"value"

    waiters = [asyncio.create_task(cache.get_or_set("hot", compute)) for _ in range(20)]
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(*waiters) == [b"value"] * 20
    assert calls == 1
    assert await cache.get_or_set("hot", compute) == b"value"
    assert calls == 1


async def test_concurrent_misses_compute_once_in_memory() -> None:
    await _single_flight(MemoryCache())


@needs_redis
async def test_concurrent_misses_compute_once_tiered(
    tiered_pair: tuple[TieredCache, TieredCache],
) -> None:
    await _single_flight(tiered_pair[0])


async def test_failed_computation_reaches_every_waiter_and_is_not_cached() -> None:
    cache = MemoryCache()
    gate = asyncio.Event()

    async def broken() -> bytes:
        await gate.wait()
        raise RuntimeError("database down")

    waiters = [asyncio.create_task(cache.get_or_set("k", broken)) for _ in range(5)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await cache.get("k") is None

    async def fine() -> bytes:
        return b"ok"

    assert await cache.get_or_set("k", fine) == b"ok"


async def test_cancelled_computation_lets_a_waiter_compute() -> None:
    cache = MemoryCache()
    started = asyncio.Event()

    async def slow() -> bytes:
        started.set()
        await asyncio.sleep(10)
        return b"never"

    async def quick() -> bytes:
        return b"quick"

    first = asyncio.create_task(cache.get_or_set("k", slow))
    await started.wait()
    second = asyncio.create_task(cache.get_or_set("k", quick))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == b"quick"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_invalidation_during_computation_discards_the_fill() -> None:
    cache = MemoryCache()
    gate = asyncio.Event()

    async def old_value() -> bytes:
        await gate.wait()
        return b"old"

    fill = asyncio.create_task(cache.get_or_set("k", old_value))
    await asyncio.sleep(0.01)
    await cache.delete("k")  # a write happened while the old row was being read
    gate.set()
    assert await fill == b"old"  # the caller still gets its answer...
    assert await cache.get("k") is None  # ...but it is not kept


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


async def _eventually_holds(cache: Cache, key: str, value: bytes | None) -> None:
    async def holds() -> bool:
        return await cache.get(key) == value

    await _eventually(holds)


@needs_redis
async def test_l2_serves_other_instance_and_delete_invalidates_its_l1(
    tiered_pair: tuple[TieredCache, TieredCache],
) -> None:
    first, second = tiered_pair
    l2_hits = counter("cache_hits", "l2")
    await first.set("project:1", b"v1")
    assert await second.get("project:1") == b"v1"  # from L2, now in second's L1
    assert counter("cache_hits", "l2") == l2_hits + 1
    assert await second.get("project:1") == b"v1"  # from L1
    assert counter("cache_hits", "l2") == l2_hits + 1

    await first.delete("project:1")

    await _eventually_holds(second, "project:1", None)


@needs_redis
async def test_set_on_one_instance_replaces_the_other_instances_l1(
    tiered_pair: tuple[TieredCache, TieredCache],
) -> None:
    first, second = tiered_pair
    await first.set("user:1", b"old")
    assert await second.get("user:1") == b"old"
    await first.set("user:1", b"new")

    await _eventually_holds(second, "user:1", b"new")


@needs_redis
async def test_stale_fill_after_delete_is_removed_by_the_repeated_delete(
    tiered_pair: tuple[TieredCache, TieredCache], redis_client: Redis
) -> None:
    first, second = tiered_pair
    await first.delete("project:9")
    # A slow reader on the other instance stores the pre-write value right after the delete.
    await redis_client.set("keel:cache:project:9", b"stale", ex=60)

    async def gone() -> bool:
        return await redis_client.get("keel:cache:project:9") is None

    await _eventually(gone)
    assert await second.get("project:9") is None


@needs_redis
async def test_get_or_set_fill_is_shared_through_l2(
    tiered_pair: tuple[TieredCache, TieredCache],
) -> None:
    first, second = tiered_pair

    async def compute() -> bytes:
        return b"computed"

    async def never() -> bytes:
        raise AssertionError("the other instance must read L2")

    assert await first.get_or_set("list:1", compute, ttl=30) == b"computed"
    assert await second.get_or_set("list:1", never) == b"computed"


async def test_redis_outage_degrades_to_l1_and_logs_once(
    capsys: pytest.CaptureFixture[str], make_settings: Callable[..., Settings]
) -> None:
    from keel.platform.logging import configure_logging

    configure_logging()
    dead = create_redis(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    assert dead is not None
    cache = TieredCache(redis=dead, l1=MemoryCache(), l2_ttl=60)
    await cache.start()
    try:
        await cache.set("k", b"v")
        assert await cache.get("k") == b"v"  # L1 still works
        assert await cache.get("other") is None
        await cache.delete("k")
        assert await cache.get("k") is None

        async def compute() -> bytes:
            return b"fresh"

        assert await cache.get_or_set("x", compute) == b"fresh"
        with pytest.raises(RedisError):
            await cache.ping()
    finally:
        await cache.close()
        await dead.aclose()
    assert capsys.readouterr().out.count("cache_redis_unavailable") == 1


@needs_redis
async def test_writes_through_one_server_process_reach_the_other(
    database_url: str, redis_url: str | None, tmp_path: Path
) -> None:
    """Two real instances on one PostgreSQL + Redis: neither serves the other's stale data
    longer than the L1 TTL (in practice: the pub/sub delay)."""
    assert redis_url
    env = {
        "KEEL_DATABASE_URL": database_url,
        "KEEL_REDIS_URL": redis_url,
        "KEEL_SECRET_KEY": "test-secret-" + "x" * 40,
        "KEEL_DATA_DIR": str(tmp_path / "data"),
        "KEEL_RATE_LIMIT_ENABLED": "false",
        **{f"KEEL_{k.upper()}": str(v) for k, v in FAST_ARGON2.items()},
    }

    async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
        # Bounded by the L1 TTL (5 s): the worst case if an invalidation message were lost.
        for _ in range(250):
            if await check():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the other instance kept serving stale data")

    with run_server(env, log_dir=tmp_path) as first, run_server(env, log_dir=tmp_path) as second:
        async with (
            httpx.AsyncClient(base_url=first.url) as a,
            httpx.AsyncClient(base_url=second.url) as b,
        ):
            user = await register_user(a)
            created = await a.post(
                "/api/v1/projects", json={"name": "Before"}, headers=user.headers
            )
            assert created.status_code == 201, created.text
            url = f"/api/v1/projects/{created.json()['id']}"
            # Warm the second instance's caches (project, first list page, session liveness).
            assert (await b.get(url, headers=user.headers)).json()["name"] == "Before"
            assert len((await b.get("/api/v1/projects", headers=user.headers)).json()["data"]) == 1

            patched = await a.patch(url, json={"name": "After"}, headers=user.headers)
            assert patched.status_code == 200, patched.text

            async def project_fresh() -> bool:
                return (await b.get(url, headers=user.headers)).json()["name"] == "After"

            async def list_fresh() -> bool:
                page = (await b.get("/api/v1/projects", headers=user.headers)).json()
                return [p["name"] for p in page["data"]] == ["After"]

            await eventually(project_fresh)
            await eventually(list_fresh)

            # Sign-out through the first instance ends the session on the second one too.
            out = await a.post(
                "/api/v1/auth/logout",
                json={"refreshToken": user.refresh_token},
                headers=user.headers,
            )
            assert out.status_code == 204, out.text

            async def refused() -> bool:
                return (
                    await b.get("/api/v1/auth/profile", headers=user.headers)
                ).status_code == 401

            await eventually(refused)


@needs_redis
async def test_concurrent_writes_share_flushes_and_each_returns_once_in_redis(
    tiered_pair: tuple[TieredCache, TieredCache], redis_client: Redis
) -> None:
    """Writes made while a flush is on its way go together in the next one: fewer pipelines
    and invalidation messages than writes, yet every write is in Redis when its call
    returns, and the other instance drops every key."""
    first, second = tiered_pair
    tag = secrets.token_hex(4)
    keys = [f"group:{tag}:{n}" for n in range(40)]
    for key in keys:  # the other instance holds old copies in its L1
        await first.set(key, b"old")
        assert await second.get(key) == b"old"
    messages: list[list[str]] = []
    async with redis_client.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(INVALIDATION_CHANNEL)

        async def write(key: str) -> None:
            await first.set(key, b"new")
            # Returned: this write is in Redis (where the other instance reads it from).
            assert await redis_client.get(KEY_PREFIX + key) == b"new"

        await asyncio.gather(*(write(key) for key in keys))
        deadline = asyncio.get_running_loop().time() + 5
        while sum(len(m) for m in messages) < len(keys):
            assert asyncio.get_running_loop().time() < deadline, messages
            message = await pubsub.get_message(timeout=0.1)
            if message is not None:
                sent = orjson.loads(message["data"].partition(b"|")[2])
                if any(tag in key for key in sent):
                    messages.append(sent)
    assert sorted(key for sent in messages for key in sent) == sorted(keys)
    assert len(messages) < len(keys)  # grouped: one message for many writes

    async def all_fresh() -> bool:
        return all([await second.get(key) == b"new" for key in keys])

    await _eventually(all_fresh)


@needs_redis
async def test_the_last_of_two_grouped_writes_to_one_key_wins(
    tiered_pair: tuple[TieredCache, TieredCache], redis_client: Redis
) -> None:
    first, second = tiered_pair
    blocker = asyncio.create_task(first.set("order:blocker", b"x"))  # a flush in flight
    await asyncio.sleep(0)
    writes = [asyncio.create_task(first.set("order:k", value)) for value in (b"1", b"2", b"3")]
    await asyncio.gather(blocker, *writes)
    assert await redis_client.get(KEY_PREFIX + "order:k") == b"3"
    assert await first.get("order:k") == b"3"

    await _eventually_holds(second, "order:k", b"3")


@needs_redis
async def test_a_cancelled_write_still_reaches_redis_and_others_are_not_held(
    tiered_pair: tuple[TieredCache, TieredCache], redis_client: Redis
) -> None:
    first, _ = tiered_pair
    cancelled = asyncio.create_task(first.set("cancel:a", b"a"))
    other = asyncio.create_task(first.set("cancel:b", b"b"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await other
    with pytest.raises(asyncio.CancelledError):
        await cancelled

    async def written() -> bool:
        return await redis_client.get(KEY_PREFIX + "cancel:a") == b"a"

    await _eventually(written)


async def test_writes_waiting_for_a_flush_are_released_by_close(
    make_settings: Callable[..., Settings],
) -> None:
    """A flush that cannot finish (Redis does not answer) must not leave writers waiting
    when the cache closes at shutdown."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # accepts, never answers
    port = server.sockets[0].getsockname()[1]
    silent = create_redis(make_settings(redis_url=f"redis://127.0.0.1:{port}/0"))
    assert silent is not None
    cache = TieredCache(redis=silent, l1=MemoryCache(), l2_ttl=60)
    try:
        writes = [asyncio.create_task(cache.set(f"k{n}", b"v")) for n in range(5)]
        await asyncio.sleep(0.05)
        assert not any(write.done() for write in writes)
        await cache.close()
        async with asyncio.timeout(5):
            await asyncio.gather(*writes)
    finally:
        await silent.aclose()
        server.close()


async def test_a_flush_that_fails_releases_every_writer_and_keeps_l1(
    make_settings: Callable[..., Settings],
) -> None:
    dead = create_redis(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    assert dead is not None
    cache = TieredCache(redis=dead, l1=MemoryCache(), l2_ttl=60)
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(*(cache.set(f"k{n}", f"v{n}".encode()) for n in range(10)))
        assert [await cache.get(f"k{n}") for n in range(10)] == [
            f"v{n}".encode() for n in range(10)
        ]
    finally:
        await cache.close()
        await dead.aclose()
