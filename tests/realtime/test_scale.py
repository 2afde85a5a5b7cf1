"""Across instances and under pressure: fan-out between real server processes, recovery
when the fan-out channel drops, slow consumers cut loose with a "resume" close code."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from keel.app import create_app
from keel.platform.bus import RECONNECTED, InProcessBus, RedisBus
from keel.realtime.hub import HUB, CloseCode, Subscriber
from keel.realtime.service import OutgoingEvent, Viewer
from keel.settings import Settings
from tests.conftest import FAST_ARGON2, register_user
from tests.realtime.conftest import LiveServer, serve_started, subscribe, write_events
from tests.servers import Server, run_server


def _server_env(settings: Settings, *, poll_seconds: float) -> dict[str, str]:
    env = {
        "KEEL_DATABASE_URL": settings.effective_database_url,
        "KEEL_SECRET_KEY": settings.secret_key,
        "KEEL_DATA_DIR": str(settings.data_dir),
        "KEEL_LOG_LEVEL": "WARNING",
        "KEEL_EVENTS_POLL_SECONDS": str(poll_seconds),
        **{f"KEEL_{key.upper()}": str(value) for key, value in FAST_ARGON2.items()},
    }
    if settings.redis_url:
        env["KEEL_REDIS_URL"] = settings.redis_url
    return env


@pytest.fixture
def two_instances(settings: Settings, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    # With Redis the safety-net poll is made slow, so prompt delivery proves the bus did it.
    env = _server_env(settings, poll_seconds=30 if settings.redis_url else 0.2)
    with ExitStack() as stack:
        first = stack.enter_context(run_server(env, log_dir=tmp_path))
        second = stack.enter_context(run_server(env, log_dir=tmp_path))
        yield first, second


async def _ws_subscribe(server: Server, token: str) -> websockets.ClientConnection:
    conn = await websockets.connect(f"{server.ws_url}/api/v1/ws", open_timeout=10)
    await conn.send(json.dumps({"type": "auth", "accessToken": token}))
    while json.loads(await asyncio.wait_for(conn.recv(), 10))["type"] != "ready":
        pass
    return conn


async def _next_event(conn: websockets.ClientConnection) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(conn.recv(), 10))
        if message["type"] != "ping":
            return message


async def test_change_on_one_instance_reaches_subscriber_on_another(
    two_instances: tuple[Server, Server],
) -> None:
    first, second = two_instances
    async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
        user = await register_user(http)
        conn = await _ws_subscribe(second, user.access_token)
        latencies = []
        for index in range(5):
            started = time.perf_counter()
            created = await http.post(
                "/api/v1/projects", json={"name": f"Across {index}"}, headers=user.headers
            )
            assert created.status_code == 201, created.text
            event = await _next_event(conn)
            latencies.append(time.perf_counter() - started)
            assert event["data"]["id"] == created.json()["id"]
        await conn.close()
    print(f"cross-instance delivery: max {max(latencies) * 1000:.1f} ms")


async def test_subscribers_catch_up_when_the_fan_out_channel_drops(
    two_instances: tuple[Server, Server], redis_url: str | None
) -> None:
    if not redis_url:
        pytest.skip("the fan-out channel is Redis pub/sub")
    import redis.asyncio as redis

    first, second = two_instances
    admin = redis.Redis.from_url(redis_url)
    async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
        user = await register_user(http)
        conn = await _ws_subscribe(second, user.access_token)
        db = admin.connection_pool.connection_kwargs.get("db", 0)
        killed = 0
        for entry in await admin.client_list(_type="pubsub"):
            if str(entry.get("db")) == str(db):
                await admin.client_kill_filter(_id=entry["id"])
                killed += 1
        assert killed >= 2  # both instances lost their subscriptions
        created = [
            (
                await http.post(
                    "/api/v1/projects", json={"name": f"Dropped {i}"}, headers=user.headers
                )
            ).json()["id"]
            for i in range(3)
        ]
        received = [(await _next_event(conn))["data"]["id"] for _ in created]
        assert received == created
        await conn.close()
    await admin.aclose()


class RawWebSocket:
    """A bare client: handshake and auth, then it reads only when told to (a slow consumer)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, token: str) -> RawWebSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        client = cls(reader, writer)
        client.send_text(json.dumps({"type": "auth", "accessToken": token}))
        return client

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    async def close_code(self) -> int | None:
        """Read everything until the server's close frame (its code) or EOF (None)."""
        while True:
            try:
                first, second = await self.reader.readexactly(2)
            except asyncio.IncompleteReadError:
                return None
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(length)
            if first & 0x0F == 0x8:
                code: int = struct.unpack("!H", payload[:2])[0]
                return code


@pytest.fixture
async def small_queues(make_settings: Callable[..., Settings]) -> Any:
    app = create_app(make_settings(ws_queue_size=50))
    async for server in serve_started(app):
        yield server


async def test_slow_consumer_is_disconnected_with_resume_code_and_others_unaffected(
    small_queues: LiveServer,
) -> None:
    server = small_queues
    hub = server.app.state.services.get(HUB)
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        user = await register_user(http)
    fast = await subscribe(server, user.access_token)
    slow = await RawWebSocket.connect(server.port, user.access_token)
    await asyncio.sleep(0.2)

    def slow_subscriber_closed() -> bool:
        return any(s.close_code == CloseCode.SLOW_CONSUMER for s in hub.subscribers())

    received = 0
    for _ in range(300):  # at most 6000 events of ~2 KB
        await write_events(server.app, owner_id=user.id, count=20, size=2000)
        for _ in range(20):
            await fast.next_event()
            received += 1
        if slow_subscriber_closed():
            break
    assert slow_subscriber_closed(), "the server kept buffering for a client that does not read"
    # The slow client reads again: it gets what was in flight, then the 4408 close.
    assert await asyncio.wait_for(slow.close_code(), 10) == CloseCode.SLOW_CONSUMER
    slow.writer.close()
    # The fast subscriber kept up the whole time and is still live.
    await write_events(server.app, owner_id=user.id, count=1)
    assert (await fast.next_event())["data"]["name"] == "bulk 0"
    assert hub.subscriber_count == 1
    assert received >= 20
    await fast.close()


def _event(event_id: int, owner: uuid.UUID) -> OutgoingEvent:
    return OutgoingEvent(
        id=event_id, type="project.updated", owner_id=owner, project_id=owner, json="{}"
    )


async def test_subscriber_queue_is_bounded_and_dropped_on_overflow() -> None:
    owner = uuid.uuid4()
    subscriber = Subscriber(Viewer(user_id=owner, is_admin=False), cursor=0, limit=3)
    closed: list[int | None] = []
    subscriber.on_close(lambda: closed.append(subscriber.close_code))
    for event_id in range(1, 4):
        subscriber.offer(_event(event_id, owner))
    subscriber.offer(_event(2, owner))  # already queued: ignored, no overflow
    subscriber.offer(_event(9, uuid.uuid4()))  # not visible: ignored
    assert subscriber.close_code is None
    subscriber.offer(_event(4, owner))
    assert closed == [CloseCode.SLOW_CONSUMER]
    assert await subscriber.next() is None  # queued items were released
    subscriber.offer_control("late")  # ignored once closed
    subscriber.offer_heartbeat()
    assert await subscriber.next() is None


async def test_in_process_bus_delivers_and_drops_when_full() -> None:
    bus = InProcessBus(queue_size=1)
    async with bus.subscribe("c") as queue:
        await bus.publish("c", b"1")
        await bus.publish("c", b"2")  # full: dropped, the subscriber recovers elsewhere
        await bus.publish("other", b"x")
        assert queue.get_nowait() == b"1"
        assert queue.empty()
    await bus.close()


async def test_redis_bus_reports_a_reconnect(redis_url: str | None) -> None:
    if not redis_url:
        pytest.skip("needs Redis")
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    bus = RedisBus(client, retry_seconds=0.05)
    async with bus.subscribe("keel:test-bus") as queue:
        await bus.publish("keel:test-bus", b"hello")
        assert await asyncio.wait_for(queue.get(), 5) == b"hello"
        db = client.connection_pool.connection_kwargs.get("db", 0)
        for entry in await client.client_list(_type="pubsub"):
            if str(entry.get("db")) == str(db):  # only our own database's subscribers
                await client.client_kill_filter(_id=entry["id"])
        assert await asyncio.wait_for(queue.get(), 10) == RECONNECTED
        # After the marker the subscription works again (a message published while it was
        # still re-establishing may be lost: that is what the marker announced).
        delivered = False
        for _ in range(20):
            await bus.publish("keel:test-bus", b"again")
            with contextlib.suppress(TimeoutError):
                while (await asyncio.wait_for(queue.get(), 0.5)) != b"again":
                    pass
                delivered = True
                break
        assert delivered
    await bus.close()
    await client.aclose()
