"""The WebSocket protocol: authentication, heartbeats, token expiry, re-auth, shutdown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed

from keel.settings import Settings
from tests.conftest import register_user
from tests.realtime.conftest import LiveServer, serve_started, subscribe, write_event


async def _closed_with(conn: websockets.ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    while True:
        try:
            await asyncio.wait_for(conn.recv(), 10)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


@pytest.fixture
async def quick(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveServer]:
    """A server with short realtime timers."""

    from keel.app import create_app

    app = create_app(
        make_settings(
            ws_auth_timeout_seconds=0.3,
            ws_heartbeat_seconds=0.2,
            access_token_ttl_seconds=5,
        )
    )
    async for server in serve_started(app):
        yield server


async def _client(server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.http, timeout=10)


async def test_no_auth_message_in_time_closes_4401(quick: LiveServer) -> None:
    async with websockets.connect(quick.ws) as conn:
        assert await _closed_with(conn) == 4401


@pytest.mark.parametrize(
    "first",
    [
        "not json",
        json.dumps({"type": "subscribe"}),
        json.dumps({"type": "auth"}),
        json.dumps({"type": "auth", "accessToken": "not-a-jwt"}),
    ],
)
async def test_invalid_first_message_or_token_closes_4401(live: LiveServer, first: str) -> None:
    async with websockets.connect(live.ws) as conn:
        await conn.send(first)
        assert await _closed_with(conn) == 4401


async def test_refresh_token_is_not_accepted(client: httpx.AsyncClient, live: LiveServer) -> None:
    user = await register_user(client)
    async with websockets.connect(live.ws) as conn:
        await conn.send(json.dumps({"type": "auth", "accessToken": user.refresh_token}))
        assert await _closed_with(conn) == 4401


async def test_binary_first_message_closes_4401(live: LiveServer) -> None:
    async with websockets.connect(live.ws) as conn:
        await conn.send(b"\x00\x01")
        assert await _closed_with(conn) == 4401


async def test_heartbeat_ping_pong_and_unknown_messages(quick: LiveServer) -> None:
    async with await _client(quick) as http:
        user = await register_user(http)
    ws = await subscribe(quick, user.access_token)
    assert (await ws.next())["type"] == "ping"  # server heartbeat
    await ws.conn.send(json.dumps({"type": "ping"}))
    await ws.conn.send(json.dumps({"type": "pong"}))  # an answer to our ping: ignored
    await ws.conn.send(json.dumps({"type": "what"}))
    await ws.conn.send(json.dumps({"type": "auth"}))
    seen: list[dict[str, Any]] = []
    while len([m for m in seen if m["type"] != "ping"]) < 3:
        seen.append(await ws.next())
    replies = [m for m in seen if m["type"] != "ping"]
    assert replies[0] == {"type": "pong"}
    assert replies[1]["type"] == "error"
    assert replies[2] == {"type": "error", "message": "Invalid auth message"}
    await ws.close()


async def test_expired_token_closes_4401_unless_reauthenticated(quick: LiveServer) -> None:
    async with await _client(quick) as http:
        user = await register_user(http)
        await asyncio.sleep(1.1)  # so the refreshed token expires at a later second
        # Refresh before subscribing: a slow refresh (a loaded CI machine once took 1.6 s)
        # must not eat into the time the renewed connection has to re-authenticate.
        response = await http.post(
            "/api/v1/auth/refresh", json={"refreshToken": user.refresh_token}
        )
        assert response.status_code == 200, response.text
        fresh = response.json()["accessToken"]
    expiring = await subscribe(quick, user.access_token)
    renewed = await subscribe(quick, user.access_token)
    await renewed.conn.send(json.dumps({"type": "auth", "accessToken": fresh}))
    while (reply := await renewed.next())["type"] == "ping":
        pass
    assert reply["type"] == "authenticated"

    assert await _closed_with(expiring.conn) == 4401
    # The renewed connection outlived the first token and still gets events.
    await write_event(quick.app, owner_id=user.id, name="after expiry")
    assert (await renewed.next_event())["data"]["name"] == "after expiry"
    await renewed.close()


async def test_reauth_with_an_invalid_or_foreign_token_closes_4401(
    client: httpx.AsyncClient, live: LiveServer
) -> None:
    alice = await register_user(client)
    bob = await register_user(client)
    ws = await subscribe(live, alice.access_token)
    await ws.conn.send(json.dumps({"type": "auth", "accessToken": bob.access_token}))
    assert await _closed_with(ws.conn) == 4401
    ws = await subscribe(live, alice.access_token)
    await ws.conn.send(json.dumps({"type": "auth", "accessToken": "garbage"}))
    assert await _closed_with(ws.conn) == 4401


async def test_revoked_session_cannot_subscribe(
    client: httpx.AsyncClient, live: LiveServer
) -> None:
    user = await register_user(client)
    response = await client.post(
        "/api/v1/auth/logout", json={"refreshToken": user.refresh_token}, headers=user.headers
    )
    assert response.status_code == 204
    async with websockets.connect(live.ws) as conn:
        await conn.send(json.dumps({"type": "auth", "accessToken": user.access_token}))
        assert await _closed_with(conn) == 4401


async def test_shutdown_closes_subscribers_with_service_restart(
    client: httpx.AsyncClient, app: FastAPI, live: LiveServer
) -> None:
    user = await register_user(client)
    ws = await subscribe(live, user.access_token)
    app.state.services.lifecycle.begin_drain()  # what SIGTERM does first
    assert await _closed_with(ws.conn) == 1012
    async with websockets.connect(live.ws) as conn:  # a draining instance turns clients away
        assert await _closed_with(conn) == 1012


@pytest.fixture
async def beating(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveServer]:
    """Fast heartbeats, long-lived tokens: a close can only come from the session check."""

    from keel.app import create_app

    app = create_app(make_settings(ws_heartbeat_seconds=0.2, access_token_ttl_seconds=3600))
    async for server in serve_started(app):
        yield server


async def _close_frame(conn: websockets.ClientConnection) -> tuple[int | None, str]:
    while True:
        try:
            await asyncio.wait_for(conn.recv(), 10)
        except ConnectionClosed as closed:
            return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")


async def test_logout_ends_an_open_websocket_within_a_heartbeat(beating: LiveServer) -> None:
    async with await _client(beating) as http:
        user = await register_user(http)
        other_session = await register_user(http)
        ws = await subscribe(beating, user.access_token)
        bystander = await subscribe(beating, other_session.access_token)
        response = await http.post(
            "/api/v1/auth/logout", json={"refreshToken": user.refresh_token}, headers=user.headers
        )
        assert response.status_code == 204
    assert await _close_frame(ws.conn) == (4401, "Session has ended; sign in again")
    # Another user's stream is untouched: it keeps receiving heartbeats.
    assert (await bystander.next())["type"] == "ping"
    await bystander.close()


async def test_logout_ends_an_open_event_stream(beating: LiveServer) -> None:
    async with await _client(beating) as http:
        user = await register_user(http)
        async with http.stream("GET", "/api/v1/events", headers=user.headers, timeout=10) as stream:
            lines = stream.aiter_lines()
            while await anext(lines) != "event: ready":
                pass
            response = await http.post(
                "/api/v1/auth/logout",
                json={"refreshToken": user.refresh_token},
                headers=user.headers,
            )
            assert response.status_code == 204
            rest = [line async for line in lines]  # ends: the server closes the stream
        assert all("project." not in line for line in rest)
