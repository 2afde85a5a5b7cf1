"""Publish/subscribe of small messages between parts of Keel, and between instances.

The in-process bus serves the embedded shape; a Redis implementation serves the scaled-out
one. Business code only sees the `Bus` protocol.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


class Bus(Protocol):
    async def publish(self, channel: str, message: bytes) -> None: ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[asyncio.Queue[bytes]]:
        """`async with bus.subscribe(channel) as queue:` receives messages until exit."""
        ...

    async def close(self) -> None: ...


class InProcessBus:
    """Fan-out to every subscriber queue of a channel inside this process."""

    def __init__(self, queue_size: int = 10000) -> None:
        self._queues: dict[str, set[asyncio.Queue[bytes]]] = defaultdict(set)
        self._queue_size = queue_size

    async def publish(self, channel: str, message: bytes) -> None:
        for queue in list(self._queues.get(channel, ())):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                # A subscriber that does not keep up loses messages; subscribers that must
                # not lose anything recover from the durable source (the outbox).
                continue

    @asynccontextmanager
    async def _subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[bytes]]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(self._queue_size)
        self._queues[channel].add(queue)
        try:
            yield queue
        finally:
            self._queues[channel].discard(queue)
            if not self._queues[channel]:
                del self._queues[channel]

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[asyncio.Queue[bytes]]:
        return self._subscribe(channel)

    async def close(self) -> None:
        self._queues.clear()
