"""Realtime fixtures: the app served by a real uvicorn (in this process, so coverage sees the
WebSocket and SSE code), real WebSocket/SSE clients and helpers that write events."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection

from keel.platform.server import server_config
from keel.realtime.hub import HUB
from keel.realtime.service import record_project_event
from tests.conftest import RegisteredUser
from tests.servers import free_port

RECEIVE_TIMEOUT = 10.0


@dataclass
class LiveServer:
    app: FastAPI
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/ws"


async def serve(app: FastAPI) -> AsyncIterator[LiveServer]:
    port = free_port()
    # Keel's own server options (its WebSocket protocol writes the relay's frames directly).
    config = server_config(
        app,
        app.state.services.settings,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_config=None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield LiveServer(app=app, port=port)
    finally:
        app.state.services.get(HUB).drain()
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


async def serve_started(app: FastAPI) -> AsyncIterator[LiveServer]:
    """Start the app's lifespan (for apps a test builds with its own settings), then serve."""
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        async for server in serve(app):
            yield server


@pytest.fixture
async def live(app: FastAPI) -> AsyncIterator[LiveServer]:
    async for server in serve(app):
        yield server


@dataclass
class WsClient:
    """A WebSocket subscriber that has authenticated and collected its catch-up."""

    conn: ClientConnection
    caught_up: list[dict[str, Any]] = field(default_factory=list)

    async def next(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.conn.recv(), timeout))
        return message

    async def next_event(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        """The next project event, skipping heartbeats."""
        while True:
            message = await self.next(timeout)
            if message["type"] != "ping":
                return message

    async def events(self, count: int) -> list[dict[str, Any]]:
        return [await self.next_event() for _ in range(count)]

    async def close(self) -> None:
        await self.conn.close()


async def subscribe(
    server: LiveServer,
    token: str,
    *,
    last_event_id: str | None = None,
    project_ids: list[str] | None = None,
) -> WsClient:
    conn = await websockets.connect(server.ws, open_timeout=10)
    auth: dict[str, Any] = {"type": "auth", "accessToken": token}
    if last_event_id is not None:
        auth["lastEventId"] = last_event_id
    if project_ids is not None:
        auth["projectIds"] = project_ids
    await conn.send(json.dumps(auth))
    client = WsClient(conn)
    while True:
        message = await client.next()
        if message["type"] == "ready":
            return client
        client.caught_up.append(message)


async def create_project(
    client: httpx.AsyncClient, user: RegisteredUser, name: str = "Realtime project"
) -> dict[str, Any]:
    response = await client.post("/api/v1/projects", json={"name": name}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def write_event(
    app: FastAPI,
    *,
    owner_id: str,
    project_id: uuid.UUID | None = None,
    name: str = "direct",
    event_type: str = "project.updated",
) -> uuid.UUID:
    """Commit one outbox event directly (for volumes the HTTP API would make slow)."""
    project_id = project_id or uuid.uuid4()
    async with app.state.services.database.sessions() as session, session.begin():
        await record_project_event(
            session,
            event_type=event_type,  # type: ignore[arg-type]
            project_id=project_id,
            owner_id=uuid.UUID(owner_id),
            payload={"id": str(project_id), "userId": owner_id, "name": name},
        )
    return project_id


async def numbered(app: FastAPI) -> None:
    """Let the relay number (and deliver) what has committed, as its next pass would."""
    await app.state.services.get(HUB).catch_up()


async def write_events(app: FastAPI, *, owner_id: str, count: int, size: int = 0) -> None:
    """Commit `count` events in one transaction."""
    async with app.state.services.database.sessions() as session, session.begin():
        for index in range(count):
            project_id = uuid.uuid4()
            await record_project_event(
                session,
                event_type="project.updated",
                project_id=project_id,
                owner_id=uuid.UUID(owner_id),
                payload={"id": str(project_id), "name": f"bulk {index}", "pad": "x" * size},
            )


@pytest.fixture
def events_writer(app: FastAPI) -> Callable[..., Any]:
    async def writer(**kwargs: Any) -> uuid.UUID:
        return await write_event(app, **kwargs)

    return writer
