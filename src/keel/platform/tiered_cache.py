"""The shared cache: the in-process L1 (`MemoryCache`) in front of Redis (L2).

Every write (`set`/`delete`) is published on an invalidation channel so that every instance
drops its L1 copy. Staleness bound for a write through one instance as seen by another: the
pub/sub delivery delay (milliseconds) normally; if pub/sub is down, at most the L1 TTL
(`cache_l1_ttl_seconds`, default 5 s). A racing read-fill that stores an old value in L2
right after a delete is undone by a second, delayed delete (`INVALIDATION_REPEAT_SECONDS`),
so L2 cannot stay stale beyond that either.

Writes that arrive while one is on its way to Redis go together in the next pipeline, with
one invalidation message (see `TieredCache._set`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from keel.platform.cache import InvalidationListener, MemoryCache, SingleFlight
from keel.platform.metrics import CACHE_HITS, CACHE_MISSES
from keel.platform.outage import Outage
from keel.platform.tasks import cancel_and_wait

log = structlog.get_logger("keel.cache")

INVALIDATION_CHANNEL = "keel:cache:invalidate"
KEY_PREFIX = "keel:cache:"
INVALIDATION_REPEAT_SECONDS = 1.0
# Writes that could not reach Redis are replayed (as deletes) this often until they do.
RESYNC_SECONDS = 0.5
# Beyond this many unsynced keys, the whole shared cache is dropped on resync instead.
MAX_UNSYNCED = 10000
# Present while Redis keeps its data: gone or changed means it restarted empty or was
# flushed, and every instance drops its L1 (checked by the listener every second).
EPOCH_KEY = "keel:cache-epoch"
EPOCH_CHECK_SECONDS = 1.0
# After a Redis error the L2 is skipped for this long, so an outage costs no per-request waits.
L2_RETRY_SECONDS = 2.0

_L2_HITS = CACHE_HITS.labels("l2")
_L2_MISSES = CACHE_MISSES.labels("l2")


class TieredCache(SingleFlight):
    """L1 (this process) in front of L2 (Redis, shared), with cross-instance invalidation.

    Redis trouble never fails a request: the cache degrades to L1 only and logs once per
    outage; invalidations missed meanwhile are covered by dropping the whole L1 when the
    subscription comes back.
    """

    def __init__(
        self, *, redis: Redis, l1: MemoryCache, l2_ttl: float, repeat_delay: float = 1.0
    ) -> None:
        super().__init__()
        self._redis = redis
        self._l1 = l1
        self._l2_ttl = l2_ttl
        self._repeat_delay = repeat_delay
        self._instance = uuid.uuid4().hex.encode()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._outage = Outage("cache_redis", logger=log, retry_seconds=L2_RETRY_SECONDS)
        self._background: set[asyncio.Task[None]] = set()
        # Writes waiting for the next flush to Redis (see _set), and who waits for them.
        self._pending: dict[str, tuple[bytes, int]] = {}
        self._pending_waiters: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        # Keys written here while Redis was unreachable: L2 may hold older values for them.
        self._unsynced: set[str] = set()
        self._unsynced_overflow = False
        self._resync: asyncio.Task[None] | None = None
        self._epoch: bytes | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to invalidations; returns once subscribed or the first attempt failed."""
        self._listener = asyncio.create_task(self._listen(), name="keel-cache-invalidation")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self._first_attempt.wait()

    async def close(self) -> None:
        await cancel_and_wait(
            [*self._background, *(t for t in (self._listener, self._resync, self._flusher) if t)]
        )
        self._l1.clear()

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(INVALIDATION_CHANNEL)
                    # Whatever was published while unsubscribed is lost: start from empty.
                    self._drop_local()
                    await self._check_epoch()
                    self._subscribed.set()
                    self._first_attempt.set()
                    checked = time.monotonic()
                    while True:
                        message = await pubsub.get_message(timeout=EPOCH_CHECK_SECONDS)
                        if message is not None and message["type"] == "message":
                            self._apply(message["data"])
                        if time.monotonic() - checked >= EPOCH_CHECK_SECONDS:
                            await self._check_epoch()
                            checked = time.monotonic()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                self._first_attempt.set()
                self._report_outage(exc)
                await asyncio.sleep(L2_RETRY_SECONDS)

    def _drop_local(self) -> None:
        """Forget every L1 entry and void the fills in flight (they may predate a missed
        invalidation)."""
        self._l1.clear()
        self._bump(list(self._inflight))

    async def _check_epoch(self) -> None:
        """Detect a Redis that restarted empty or was flushed: L1 copies and tokens taken
        from the old data are dropped, so no read is served from before the loss."""
        await self._redis.set(EPOCH_KEY, self._instance, nx=True)
        raw = await self._redis.get(EPOCH_KEY)
        epoch = raw.encode() if isinstance(raw, str) else raw
        if self._epoch is not None and epoch != self._epoch:
            log.warning("cache_redis_reset")
            self._drop_local()
        self._epoch = epoch

    def _apply(self, data: bytes) -> None:
        sender, _, payload = data.partition(b"|")
        if sender == self._instance:
            return
        keys: list[str] = orjson.loads(payload)
        if not keys:  # the sender dropped the whole shared cache (see _drop_shared)
            self._drop_local()
            return
        self._l1.delete_now(keys)
        self._bump(keys)

    def on_invalidate(self, listener: InvalidationListener) -> None:
        self._l1.on_invalidate(listener)

    # --- outage bookkeeping ---------------------------------------------------------------

    def _l2_available(self) -> bool:
        return self._outage.usable()

    def _report_outage(self, exc: BaseException) -> None:
        self._outage.failed(exc)

    def _report_ok(self) -> None:
        self._outage.recovered()

    # --- the Cache protocol ------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        value = self._l1.get_now(key)
        if value is not None:
            return value
        if not self._l2_available():
            _L2_MISSES.inc()
            return None
        try:
            raw = await self._redis.get(KEY_PREFIX + key)
        except (RedisError, OSError) as exc:
            self._report_outage(exc)
            _L2_MISSES.inc()
            return None
        self._report_ok()
        if raw is None:
            _L2_MISSES.inc()
            return None
        _L2_HITS.inc()
        value = raw if isinstance(raw, bytes) else str(raw).encode()
        self._l1.set_now(key, value)
        return value

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        await self._set({key: value}, ttl=ttl)

    async def set_many(self, items: dict[str, bytes]) -> None:
        await self._set(items, ttl=None)

    async def _set(self, items: dict[str, bytes], *, ttl: float | None) -> None:
        """Store in L1 and L2 and tell the other instances to drop their copies.

        Writes made while a flush is in flight wait for the next one, which sends them all
        in one pipeline with one invalidation message (a group commit): under load, many
        requests share one round trip, and each other instance parses one message for them.
        Returns once this write reached Redis (or Redis failed and the keys are queued for
        resync), so a response sent after it is never served stale by another instance.
        """
        if not items:
            return
        for key, value in items.items():
            self._l1.set_now(key, value, ttl=ttl)
        if not self._l2_available():
            self._unsynced_write(list(items))
            return
        lifetime = self._l2_lifetime(ttl)
        for key, value in items.items():
            self._pending[key] = (value, lifetime)  # a later write of a key replaces it
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_waiters.append(done)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="keel-cache-flush")
        await done  # cancelled with its request: the flush goes on without it

    async def _flush(self) -> None:
        waiters: list[asyncio.Future[None]] = []
        try:
            while self._pending:
                batch, waiters = self._pending, self._pending_waiters
                self._pending, self._pending_waiters = {}, []
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for key, (value, lifetime) in batch.items():
                            pipe.set(KEY_PREFIX + key, value, ex=lifetime)
                        pipe.publish(INVALIDATION_CHANNEL, self._message(list(batch)))
                        await pipe.execute()
                except (RedisError, OSError) as exc:
                    self._report_outage(exc)
                    self._unsynced_write(list(batch))
                else:
                    self._report_ok()
                _release(waiters)
        finally:
            # Cancelled at close: nobody may wait for a flush that will not come.
            self._flusher = None
            _release(waiters)
            _release(self._pending_waiters)
            self._pending_waiters = []

    async def _store(self, key: str, value: bytes, *, ttl: float | None) -> None:
        # A read-fill: every instance computes the same value, so nothing to invalidate.
        self._l1.set_now(key, value, ttl=ttl)
        if not self._l2_available():
            return
        try:
            await self._redis.set(KEY_PREFIX + key, value, ex=self._l2_lifetime(ttl))
        except (RedisError, OSError) as exc:
            self._report_outage(exc)
            return
        self._report_ok()

    def _peek(self, key: str) -> bytes | None:
        return self._l1.peek(key)

    def _l2_lifetime(self, ttl: float | None) -> int:
        return max(1, round(self._l2_ttl if ttl is None else ttl))

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        self._l1.delete_now(keys)
        self._bump(keys)
        await self._delete_shared(list(keys))
        # A read that fetched the old row before the write may still store it after our delete;
        # a second delete shortly after removes such a fill (see the module docstring).
        task = asyncio.create_task(self._repeat_delete(list(keys)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _repeat_delete(self, keys: list[str]) -> None:
        await asyncio.sleep(self._repeat_delay)
        self._l1.delete_now(keys)
        await self._delete_shared(keys)

    async def _delete_shared(self, keys: list[str]) -> None:
        if not self._l2_available():
            self._unsynced_write(keys)
            return
        try:
            await self._send_deletes(keys)
        except (RedisError, OSError) as exc:
            self._report_outage(exc)
            self._unsynced_write(keys)
            return
        self._report_ok()

    async def _send_deletes(self, keys: list[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(*[KEY_PREFIX + k for k in keys])
            pipe.publish(INVALIDATION_CHANNEL, self._message(keys))
            await pipe.execute()

    # --- writes that missed Redis ----------------------------------------------------------

    def _unsynced_write(self, keys: list[str]) -> None:
        """A write reached only this L1: Redis may still hold (or, once back, be refilled
        from) older values for these keys, which other instances would serve for the L2
        lifetime. Delete them from Redis as soon as it answers again."""
        if not self._unsynced_overflow:
            self._unsynced.update(keys)
            if len(self._unsynced) > MAX_UNSYNCED:
                self._unsynced_overflow = True
                self._unsynced.clear()
        if self._resync is None or self._resync.done():
            self._resync = asyncio.create_task(self._resync_loop(), name="keel-cache-resync")

    async def _resync_loop(self) -> None:
        while self._unsynced or self._unsynced_overflow:
            await asyncio.sleep(RESYNC_SECONDS)
            keys, overflow = list(self._unsynced), self._unsynced_overflow
            try:
                if overflow:
                    await self._drop_shared()
                elif keys:
                    await self._send_deletes(keys)
            except (RedisError, OSError) as exc:
                self._report_outage(exc)
                continue
            self._unsynced.difference_update(keys)
            if overflow:
                self._unsynced_overflow = False
            self._report_ok()

    async def _drop_shared(self) -> None:
        """Too many writes missed Redis to list: drop every shared entry."""
        batch: list[bytes] = []
        async for key in self._redis.scan_iter(match=KEY_PREFIX + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await self._redis.delete(*batch)
                batch = []
        if batch:
            await self._redis.delete(*batch)
        await self._redis.publish(INVALIDATION_CHANNEL, self._message([]))

    def _message(self, keys: list[str]) -> bytes:
        return self._instance + b"|" + orjson.dumps(keys)

    async def ping(self) -> None:
        await self._redis.ping()


def _release(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
