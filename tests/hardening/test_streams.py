"""Issue 10 items 1-2: an open stream follows the subscriber's current role and session.

Over real sockets (uvicorn), on both transports. Non-delivery is shown by order, not by
waiting: events arrive in commit order, so when the next event a stream shows is one
committed after the forbidden one, the forbidden one was not delivered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from websockets.exceptions import ConnectionClosed

from keel.app import create_app
from keel.settings import Settings
from tests.conftest import RegisteredUser, register_user
from tests.identity.conftest import make_admin
from tests.realtime.conftest import LiveServer, create_project, serve, subscribe

# Heartbeats far apart: anything these tests see happens without one.
NO_HEARTBEAT = {"ws_heartbeat_seconds": 300}


@pytest.fixture
async def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**NO_HEARTBEAT)


class SseReader:
    """The events of an open SSE response, one at a time."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines

    async def next_event(self) -> tuple[str, dict[str, Any] | None]:
        kind, data = "", None
        async with asyncio.timeout(10):
            async for line in self._lines:
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and kind:
                    return kind, data
        return "<end>", None


@asynccontextmanager
async def sse(http: httpx.AsyncClient, user: RegisteredUser) -> AsyncIterator[SseReader]:
    async with http.stream("GET", "/api/v1/events", headers=user.headers, timeout=10) as stream:
        reader = SseReader(stream.aiter_lines())
        assert (await reader.next_event())[0] == "ready"
        yield reader


async def _demote(http: httpx.AsyncClient, root: RegisteredUser, user: RegisteredUser) -> None:
    response = await http.patch(
        f"/api/v1/users/{user.id}", json={"role": "user"}, headers=root.headers
    )
    assert response.status_code == 200, response.text


async def _close_code(conn: Any) -> int | None:
    # Any: a websockets client connection.
    while True:
        try:
            message = json.loads(await asyncio.wait_for(conn.recv(), 10))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        assert not message["type"].startswith("project."), message


async def test_demoted_admin_websocket_loses_the_admin_view_at_once(
    app: Any, live: LiveServer, http: httpx.AsyncClient
) -> None:
    root = await make_admin(app, http)
    admin = await make_admin(app, http)
    other = await register_user(http)
    ws = await subscribe(live, admin.access_token)
    await create_project(http, other, name="Seen while admin")
    assert (await ws.next_event())["data"]["name"] == "Seen while admin"

    await _demote(http, root, admin)
    await create_project(http, other, name="Hidden after demotion")
    await create_project(http, admin, name="Own project")
    # The other user's project, committed first, was not delivered.
    assert (await ws.next_event())["data"]["name"] == "Own project"
    assert (await http.get("/api/v1/users", headers=admin.headers)).status_code == 403
    await ws.close()


async def test_demoted_admin_event_stream_loses_the_admin_view_at_once(
    app: Any, live: LiveServer, http: httpx.AsyncClient
) -> None:
    root = await make_admin(app, http)
    admin = await make_admin(app, http)
    other = await register_user(http)
    async with sse(http, admin) as stream:
        await create_project(http, other, name="Seen while admin")
        kind, data = await stream.next_event()
        assert (kind, data and data["data"]["name"]) == ("project.created", "Seen while admin")
        await _demote(http, root, admin)
        await create_project(http, other, name="Hidden after demotion")
        await create_project(http, admin, name="Own project")
        kind, data = await stream.next_event()
        assert (kind, data and data["data"]["name"]) == ("project.created", "Own project")


async def test_promoted_user_stream_gains_the_admin_view(
    app: Any, live: LiveServer, http: httpx.AsyncClient
) -> None:
    root = await make_admin(app, http)
    user = await register_user(http)
    other = await register_user(http)
    ws = await subscribe(live, user.access_token)
    promoted = await http.patch(
        f"/api/v1/users/{user.id}", json={"role": "admin"}, headers=root.headers
    )
    assert promoted.status_code == 200
    await create_project(http, user, name="Own first")
    assert (await ws.next_event())["data"]["name"] == "Own first"
    await create_project(http, other, name="Seen as admin")
    assert (await ws.next_event())["data"]["name"] == "Seen as admin"
    await ws.close()


async def test_logout_closes_a_busy_websocket_before_the_next_event(
    live: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await register_user(http)
    ws = await subscribe(live, user.access_token)
    await create_project(http, user, name="Before logout")
    assert (await ws.next_event())["data"]["name"] == "Before logout"
    # A write lands in the stream's queue right as the session ends.
    other_session = await http.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    )
    writer = RegisteredUser(
        id=user.id,
        email=user.email,
        password=user.password,
        access_token=other_session.json()["accessToken"],
        refresh_token=other_session.json()["refreshToken"],
    )
    logout = await http.post(
        "/api/v1/auth/logout", json={"refreshToken": user.refresh_token}, headers=user.headers
    )
    assert logout.status_code == 204
    await create_project(http, writer, name="After logout")
    # Closed 4401 (no heartbeat within 300 s could have done it) and the event not delivered.
    assert await _close_code(ws.conn) == 4401


async def test_revoked_session_event_stream_ends_without_the_next_event(
    live: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await register_user(http)
    second = await http.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    )
    writer_headers = {"Authorization": f"Bearer {second.json()['accessToken']}"}
    sessions = await http.get("/api/v1/auth/sessions", headers=writer_headers)
    mine = [s["id"] for s in sessions.json()["data"] if not s.get("current")]
    async with sse(http, user) as stream:
        for session_id in mine:
            revoked = await http.delete(
                f"/api/v1/auth/sessions/{session_id}", headers=writer_headers
            )
            assert revoked.status_code == 204
        created = await http.post(
            "/api/v1/projects", json={"name": "After revocation"}, headers=writer_headers
        )
        assert created.status_code == 201
        assert await stream.next_event() == ("<end>", None)


async def test_revocation_on_one_instance_closes_streams_on_another(
    make_settings: Callable[..., Settings], redis_url: str | None
) -> None:
    """Two app instances sharing the database (and Redis when configured): a logout through
    one closes the stream held by the other without a heartbeat."""
    if redis_url is None:
        pytest.skip("instances share session state through Redis; embedded is one instance")
    settings = make_settings(**NO_HEARTBEAT)
    first, second = create_app(settings), create_app(settings)
    async with (
        LifespanManager(first, startup_timeout=30, shutdown_timeout=30),
        LifespanManager(second, startup_timeout=30, shutdown_timeout=30),
    ):
        async for server_one in serve(first):
            async for server_two in serve(second):
                async with httpx.AsyncClient(base_url=server_one.http, timeout=10) as http:
                    user = await register_user(http)
                    ws = await subscribe(server_two, user.access_token)
                    logout = await http.post(
                        "/api/v1/auth/logout",
                        json={"refreshToken": user.refresh_token},
                        headers=user.headers,
                    )
                    assert logout.status_code == 204
                    assert await _close_code(ws.conn) == 4401
