"""Caching of hot reads: the `Cache` protocol, and the in-process cache (bounded, TTL).

The embedded shape runs with `MemoryCache` alone; with Redis it is the L1 in front of the
shared L2 (`keel.platform.tiered_cache.TieredCache`).

`get_or_set` computes a missing value once per key and instance however many requests miss
at the same time (single flight); a fill that raced with an invalidation is not stored.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog

from keel.platform.metrics import CACHE_HITS, CACHE_MISSES

log = structlog.get_logger("keel.cache")

_L1_HITS = CACHE_HITS.labels("l1")
_L1_MISSES = CACHE_MISSES.labels("l1")


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None: ...

    async def set_many(self, items: dict[str, bytes]) -> None:
        """Like `set` for each item, in one round trip to the shared layer."""
        ...

    async def delete(self, *keys: str) -> None: ...

    async def get_or_set(
        self, key: str, compute: Callable[[], Awaitable[bytes]], *, ttl: float | None = None
    ) -> bytes:
        """The cached value, or `compute()` stored under `key` (computed once per instance)."""
        ...

    def on_invalidate(self, listener: InvalidationListener) -> None:
        """Call `listener(keys)` whenever keys are dropped by a write or an invalidation from
        another instance, and `listener(None)` when everything cached was dropped at once."""
        ...

    async def close(self) -> None: ...


InvalidationListener = Callable[[Sequence[str] | None], None]


class SingleFlight:
    """Shared get_or_set: one computation per key in flight; invalidations void the fill."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._generation: dict[str, int] = {}

    async def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        raise NotImplementedError

    def _bump(self, keys: tuple[str, ...] | list[str]) -> None:
        for key in keys:
            if key in self._inflight:
                self._generation[key] = self._generation.get(key, 0) + 1

    async def _store(self, key: str, value: bytes, *, ttl: float | None) -> None:
        await self.set(key, value, ttl=ttl)

    def _peek(self, key: str) -> bytes | None:
        return None

    async def get_or_set(
        self, key: str, compute: Callable[[], Awaitable[bytes]], *, ttl: float | None = None
    ) -> bytes:
        if key not in self._inflight:
            cached = await self.get(key)
            if cached is not None:
                return cached
            # get() may have waited on Redis while another request filled the key.
            cached = self._peek(key)
            if cached is not None:
                return cached
        while (pending := self._inflight.get(key)) is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # we were cancelled ourselves
                # The computing request went away; compute again (in our own request).
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        generation = self._generation.get(key, 0)
        try:
            value = await compute()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:  # handed to every waiter, then raised here as well
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
            stale = self._generation.pop(key, 0) != generation
        future.set_result(value)
        if not stale:
            await self._store(key, value, ttl=ttl)
        return value


class MemoryCache(SingleFlight):
    """Bounded LRU with per-entry expiry; the L1 layer and the whole cache when embedded."""

    def __init__(self, *, max_items: int = 10000, ttl: float = 5.0, count: bool = True) -> None:
        super().__init__()
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max_items = max_items
        self._ttl = ttl
        self._count = count
        self._listeners: list[InvalidationListener] = []

    def on_invalidate(self, listener: InvalidationListener) -> None:
        self._listeners.append(listener)

    def _notify(self, keys: Sequence[str] | None) -> None:
        for listener in self._listeners:
            try:
                listener(keys)
            except Exception:  # a listener's bug must not fail the write that invalidated
                log.exception("invalidation_listener_failed")

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    def get_now(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None or item[0] < time.monotonic():
            if item is not None:
                self._data.pop(key, None)
            if self._count:
                _L1_MISSES.inc()
            return None
        self._data.move_to_end(key)
        if self._count:
            _L1_HITS.inc()
        return item[1]

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self.set_now(key, value, ttl=ttl)

    async def set_many(self, items: dict[str, bytes]) -> None:
        for key, value in items.items():
            self.set_now(key, value)

    def set_now(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        if self._max_items == 0:
            return
        lifetime = self._ttl if ttl is None else min(ttl, self._ttl)
        self._data[key] = (time.monotonic() + lifetime, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max_items:
            self._data.popitem(last=False)

    async def delete(self, *keys: str) -> None:
        self.delete_now(keys)

    def delete_now(self, keys: tuple[str, ...] | list[str]) -> None:
        self._bump(keys)
        for key in keys:
            self._data.pop(key, None)
        if self._listeners:
            self._notify(keys)

    def peek(self, key: str) -> bytes | None:
        """The live value without touching LRU order or counters."""
        item = self._data.get(key)
        return item[1] if item is not None and item[0] >= time.monotonic() else None

    def clear(self) -> None:
        """Drop everything (missed invalidations, or Redis lost its data): listeners too."""
        self._data.clear()
        for key in list(self._inflight):
            self._generation[key] = self._generation.get(key, 0) + 1
        if self._listeners:
            self._notify(None)

    async def close(self) -> None:
        self._data.clear()
