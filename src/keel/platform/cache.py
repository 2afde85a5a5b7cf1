"""Caching of hot reads: an in-process L1 (bounded, TTL) in front of an optional Redis L2.

The embedded shape runs with L1 only. Invalidation is broadcast on the bus so that every
instance drops its L1 copy.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None: ...

    async def delete(self, *keys: str) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    """Bounded LRU with per-entry expiry; the L1 layer and the whole cache when embedded."""

    def __init__(self, *, max_items: int = 10000, ttl: float = 5.0) -> None:
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max_items = max_items
        self._ttl = ttl

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            self._data.pop(key, None)
            return None
        self._data.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        if self._max_items == 0:
            return
        self._data[key] = (time.monotonic() + (self._ttl if ttl is None else ttl), value)
        self._data.move_to_end(key)
        while len(self._data) > self._max_items:
            self._data.popitem(last=False)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def close(self) -> None:
        self._data.clear()
