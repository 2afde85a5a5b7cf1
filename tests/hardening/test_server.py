"""Issue 10 items 3-5 and 10: slow, stalled and oversized clients, over real sockets against
Keel's own server protocol (keel.platform.server) with short timeouts."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from keel.app import create_app
from keel.platform.server import server_config
from keel.realtime.hub import HUB
from keel.settings import Settings
from tests.conftest import register_user
from tests.realtime.conftest import LiveServer, subscribe
from tests.servers import free_port

# Generous bound for "the server cut it" (the configured timeouts are 1-3 s; nginx's is 60 s).
CUT_WITHIN = 30.0
STALLED = 300


async def _serve(settings: Settings) -> AsyncIterator[tuple[FastAPI, LiveServer]]:
    app = create_app(settings)
    port = free_port()
    config = server_config(
        app,
        settings,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_config=None,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        try:
            yield app, LiveServer(app=app, port=port)
        finally:
            app.state.services.get(HUB).drain()
            server.should_exit = True
            await asyncio.wait_for(task, timeout=30)


@pytest.fixture
async def guarded(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveServer]:
    settings = make_settings(
        http_header_timeout_seconds=1.0,
        http_body_timeout_seconds=1.0,
        http_body_deadline_seconds=3.0,
        http_keep_alive_timeout_seconds=1.0,
        http_linger_seconds=2.0,
    )
    async for _, server in _serve(settings):
        yield server


async def _open(server: LiveServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (fails if it never does)."""
    received = b""
    async with asyncio.timeout(CUT_WITHIN):
        while chunk := await reader.read(65536):
            received += chunk
    return received


def _status_and_body(raw: bytes) -> tuple[int, dict[str, Any]]:
    # Any: a JSON body.
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}


# --- item 4: slow clients are cut ---------------------------------------------------------------


async def test_a_connection_that_sends_nothing_is_closed(guarded: LiveServer) -> None:
    reader, writer = await _open(guarded)
    assert await _read_until_closed(reader) == b""
    writer.close()


async def test_a_trickled_head_gets_408_and_is_closed(guarded: LiveServer) -> None:
    reader, writer = await _open(guarded)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000

    async def trickle() -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)

    sender = asyncio.create_task(trickle())
    raw = await _read_until_closed(reader)
    sender.cancel()
    status, body = _status_and_body(raw)
    assert (status, body["code"]) == (408, "REQUEST_TIMEOUT")
    writer.close()


async def test_a_stalled_body_gets_408_and_is_closed(guarded: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=guarded.http) as http:
        user = await register_user(http)
    reader, writer = await _open(guarded)
    writer.write(
        b"POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + user.access_token.encode() + b"\r\n"
        b"Content-Length: 100\r\n\r\n" + b'{"name": "'
    )
    await writer.drain()
    status, body = _status_and_body(await _read_until_closed(reader))
    assert (status, body["code"]) == (408, "REQUEST_TIMEOUT")
    writer.close()


async def test_a_body_trickled_past_the_deadline_is_cut(guarded: LiveServer) -> None:
    reader, writer = await _open(guarded)
    writer.write(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )

    async def trickle() -> None:
        for _ in range(1000):  # each pause under the 1 s body timeout; all past the 3 s deadline
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.5)

    sender = asyncio.create_task(trickle())
    raw = await _read_until_closed(reader)
    sender.cancel()
    assert _status_and_body(raw)[0] == 408
    writer.close()


async def test_idle_keep_alive_connections_are_closed(guarded: LiveServer) -> None:
    reader, writer = await _open(guarded)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = await _read_until_closed(reader)
    assert raw.startswith(b"HTTP/1.1 200")
    writer.close()


async def test_keep_alive_requests_and_websockets_still_work(guarded: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=guarded.http) as http:
        for _ in range(5):  # one kept-alive connection, several heads and bodies
            assert (await http.get("/health")).status_code == 200
        user = await register_user(http)
        created = await http.post(
            "/api/v1/projects", json={"name": "Over keep-alive"}, headers=user.headers
        )
        assert created.status_code == 201
    ws = await subscribe(guarded, user.access_token)
    async with httpx.AsyncClient(base_url=guarded.http) as http:
        await http.post("/api/v1/projects", json={"name": "Live one"}, headers=user.headers)
    assert (await ws.next_event())["data"]["name"] == "Live one"
    await ws.close()


# --- item 5: the request head is capped -----------------------------------------------------------


async def test_a_huge_header_gets_431(guarded: LiveServer) -> None:
    reader, writer = await _open(guarded)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n")
    status, body = _status_and_body(await _read_until_closed(reader))
    assert (status, body["code"]) == (431, "HEADERS_TOO_LARGE")
    writer.close()


async def test_ten_thousand_headers_get_431(guarded: LiveServer) -> None:
    reader, writer = await _open(guarded)
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    status, body = _status_and_body(await _read_until_closed(reader))
    assert (status, body["code"]) == (431, "HEADERS_TOO_LARGE")
    writer.close()


async def test_too_many_small_headers_get_431_and_a_malformed_head_400(
    guarded: LiveServer,
) -> None:
    reader, writer = await _open(guarded)
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert _status_and_body(await _read_until_closed(reader))[0] == 431
    writer.close()
    reader, writer = await _open(guarded)
    writer.write(b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n")
    status, body = _status_and_body(await _read_until_closed(reader))
    assert (status, body["code"]) == (400, "BAD_REQUEST")
    writer.close()


# --- item 10: an oversized body's 413 reaches the client ------------------------------------------


def _post_oversized(port: int) -> tuple[int, str]:
    """Python's standard HTTP client, as in the report: 2 MiB with Content-Length."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CUT_WITHIN)
    try:
        connection.request(
            "POST",
            "/api/v1/auth/login",
            body=b"x" * (2 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())["code"]
    finally:
        connection.close()


async def test_oversized_uploads_read_their_413_every_time(guarded: LiveServer) -> None:
    results = [await asyncio.to_thread(_post_oversized, guarded.port) for _ in range(30)]
    assert results == [(413, "PAYLOAD_TOO_LARGE")] * 30


async def test_oversized_chunked_upload_reads_its_413(guarded: LiveServer) -> None:
    reader, writer = await _open(guarded)
    writer.write(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 65536
    for _ in range(40):  # 2.5 MiB, more than the 1 MiB limit
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    status, body = _status_and_body(await _read_until_closed(reader))
    assert (status, body["code"]) == (413, "PAYLOAD_TOO_LARGE")
    writer.close()


# --- item 3: stalled bodies do not take the API down ---------------------------------------------


async def test_stalled_uploads_do_not_starve_signed_in_users(
    make_settings: Callable[..., Settings],
) -> None:
    """Hundreds of connections hold a head and part of a body; the overload guard (here 50)
    only counts requests whose body has arrived, so a signed-in user is still served."""
    # Rate limits off: a distributed attacker has enough addresses that per-IP limits never
    # bite (from one address they would turn most of these into quick 429s).
    settings = make_settings(
        overload_max_concurrency=50, http_body_timeout_seconds=60.0, rate_limit_enabled=False
    )
    async for _, server in _serve(settings):
        async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
            user = await register_user(http)
            attackers = []
            for _ in range(STALLED):
                reader, writer = await _open(server)
                writer.write(
                    b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n" + b"{" * 10
                )
                attackers.append((reader, writer))
            await asyncio.gather(*(writer.drain() for _, writer in attackers))
            await asyncio.sleep(0.5)  # let the server take every stalled request in
            for _ in range(3):
                listed = await http.get("/api/v1/projects", headers=user.headers)
                assert listed.status_code == 200, listed.text
            # The attackers are all still connected, waiting on their bodies.
            assert not any(reader.at_eof() for reader, _ in attackers)
            for _, writer in attackers:
                writer.close()
