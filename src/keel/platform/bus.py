"""Publish/subscribe of small messages between parts of Keel, and between instances.

The in-process bus serves the embedded shape; a Redis implementation serves the scaled-out
one. Business code only sees the `Bus` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.exceptions import RedisError

from keel.platform.tasks import cancel_and_wait

log = structlog.get_logger("keel.bus")

# Delivered to a subscriber after its channel was (re)connected: messages published while
# it was down are lost, so the subscriber should catch up from its durable source.
RECONNECTED = b""


class Bus(Protocol):
    async def publish(self, channel: str, message: bytes) -> None: ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[asyncio.Queue[bytes]]:
        """`async with bus.subscribe(channel) as queue:` receives messages until exit.

        The subscription is active when the block is entered. Delivery is best effort: an
        empty message (`RECONNECTED`) means earlier messages may have been lost.
        """
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


class RedisBus:
    """Fan-out between instances through Redis pub/sub.

    Each subscription owns one pub/sub connection and a reader task. When the connection
    drops, the reader reconnects with back-off and then hands the subscriber a
    `RECONNECTED` marker, since whatever was published meanwhile is gone.
    """

    def __init__(self, redis: Redis, *, queue_size: int = 10000, retry_seconds: float = 0.5):
        self._redis = redis
        self._queue_size = queue_size
        self._retry_seconds = retry_seconds
        self._readers: set[asyncio.Task[None]] = set()

    async def publish(self, channel: str, message: bytes) -> None:
        await self._redis.publish(channel, message)

    @asynccontextmanager
    async def _subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[bytes]]:
        subscription = _Subscription(channel, asyncio.Queue(self._queue_size))
        pubsub = await self._connect(subscription)
        reader = asyncio.create_task(self._read(subscription, pubsub))
        self._readers.add(reader)
        try:
            yield subscription.queue
        finally:
            self._readers.discard(reader)
            await cancel_and_wait([reader])

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[asyncio.Queue[bytes]]:
        return self._subscribe(channel)

    async def _connect(self, subscription: _Subscription) -> PubSub:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(subscription.channel)
        assert pubsub.connection is not None
        # redis-py may silently reconnect and resubscribe; the subscriber must hear of it.
        pubsub.connection.register_connect_callback(subscription.reconnected)
        return pubsub

    async def _read(self, subscription: _Subscription, pubsub: PubSub) -> None:
        try:
            while True:
                try:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        subscription.offer(data if isinstance(data, bytes) else str(data).encode())
                except (RedisError, OSError) as exc:
                    log.warning(
                        "bus_disconnected", channel=subscription.channel, error=type(exc).__name__
                    )
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    pubsub = await self._reconnect(subscription)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _reconnect(self, subscription: _Subscription) -> PubSub:
        delay = self._retry_seconds
        while True:
            await asyncio.sleep(delay)
            try:
                pubsub = await self._connect(subscription)
            except (RedisError, OSError):
                delay = min(delay * 2, 5.0)
                continue
            log.info("bus_reconnected", channel=subscription.channel)
            subscription.offer(RECONNECTED)
            return pubsub

    async def close(self) -> None:
        readers = list(self._readers)
        self._readers.clear()
        await cancel_and_wait(readers)


class _Subscription:
    def __init__(self, channel: str, queue: asyncio.Queue[bytes]) -> None:
        self.channel = channel
        self.queue = queue

    def offer(self, message: bytes) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(message)

    async def reconnected(self, _connection: Connection) -> None:
        self.offer(RECONNECTED)
