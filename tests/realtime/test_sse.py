"""Server-Sent Events: header or ticket auth, id/event/data lines, resume, keep-alive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from keel.app import create_app
from keel.settings import Settings
from tests.conftest import register_user
from tests.realtime.conftest import (
    LiveServer,
    create_project,
    numbered,
    serve,
    serve_started,
    write_event,
)


@dataclass
class SseMessage:
    id: str | None = None
    event: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


class SseReader:
    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 10.0) -> SseMessage:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> SseMessage:
        message = SseMessage()
        started = False
        async for line in self._lines:
            if line == "":
                if started:
                    return message
                continue
            started = True
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                message.comments.append(value)
            elif name == "id":
                message.id = value
            elif name == "event":
                message.event = value
            elif name == "data":
                message.data += value
        raise EOFError("stream ended")

    async def until(self, event: str) -> tuple[SseMessage, list[SseMessage]]:
        before: list[SseMessage] = []
        while True:
            message = await self.next()
            if message.event == event:
                return message, before
            before.append(message)


async def test_stream_with_bearer_header_sends_id_event_data(
    client: httpx.AsyncClient, live: LiveServer
) -> None:
    user = await register_user(client)
    async with (
        httpx.AsyncClient(base_url=live.http, timeout=10) as http,
        http.stream("GET", "/api/v1/events", headers=user.headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        reader = SseReader(response)
        _, before = await reader.until("ready")
        assert before[0].data == ""  # the retry hint
        project = await create_project(client, user, "Streamed one")
        message = await reader.next()
        assert message.event == "project.created"
        assert message.id == message.json["id"]
        assert message.json["data"]["id"] == project["id"]


async def test_resume_with_last_event_id_header(
    client: httpx.AsyncClient, live: LiveServer
) -> None:
    user = await register_user(client)
    first = await write_event(live.app, owner_id=user.id, name="one")
    await numbered(live.app)  # its id comes with the relay's next pass
    async with httpx.AsyncClient(base_url=live.http, timeout=10) as http:
        async with http.stream("GET", "/api/v1/events?lastEventId=0", headers=user.headers) as r:
            reader = SseReader(r)
            _, before = await reader.until("ready")
            seen = [m for m in before if m.event]
            assert [m.json["data"]["id"] for m in seen] == [str(first)]
            last_id = seen[-1].id
        missed = [await write_event(live.app, owner_id=user.id, name=f"m{i}") for i in range(3)]
        # Committed events get their ids on the relay's next pass; until then a resume sends
        # them live after "ready" instead. Let that pass run, as it does within milliseconds.
        await numbered(live.app)
        headers = {**user.headers, "Last-Event-ID": str(last_id)}
        async with http.stream("GET", "/api/v1/events", headers=headers) as r:
            reader = SseReader(r)
            _, before = await reader.until("ready")
            assert [m.json["data"]["id"] for m in before if m.event] == [str(p) for p in missed]


async def test_ticket_authenticates_once(client: httpx.AsyncClient, live: LiveServer) -> None:
    user = await register_user(client)
    issued = await client.post("/api/v1/events/tickets", headers=user.headers)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["expiresIn"] == 30
    ticket = body["ticket"]
    async with httpx.AsyncClient(base_url=live.http, timeout=10) as http:
        async with http.stream("GET", f"/api/v1/events?ticket={ticket}") as response:
            assert response.status_code == 200
            await SseReader(response).until("ready")
        reused = await http.get(f"/api/v1/events?ticket={ticket}")
        assert reused.status_code == 401
        assert reused.json()["code"] == "INVALID_TICKET"
        unknown = await http.get("/api/v1/events?ticket=nope")
        assert unknown.status_code == 401
        anonymous = await http.get("/api/v1/events")
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "UNAUTHORIZED"
        bad = await http.get("/api/v1/events", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
    no_ticket = await client.post("/api/v1/events/tickets")
    assert no_ticket.status_code == 401


async def test_ticket_issued_on_one_instance_works_on_another(
    client: httpx.AsyncClient, make_settings: Callable[..., Settings]
) -> None:
    user = await register_user(client)
    ticket = (await client.post("/api/v1/events/tickets", headers=user.headers)).json()["ticket"]
    other = create_app(make_settings())
    async with LifespanManager(other, startup_timeout=30, shutdown_timeout=30):
        async for server in serve(other):
            async with (
                httpx.AsyncClient(base_url=server.http, timeout=10) as http,
                http.stream("GET", f"/api/v1/events?ticket={ticket}") as response,
            ):
                assert response.status_code == 200
                await SseReader(response).until("ready")


@pytest.fixture
async def chatty(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveServer]:
    app = create_app(make_settings(ws_heartbeat_seconds=0.2, sse_ticket_ttl_seconds=1))
    async for server in serve_started(app):
        yield server


async def test_keep_alive_comments_and_project_filter(chatty: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=chatty.http, timeout=10) as http:
        user = await register_user(http)
        wanted = await create_project(http, user, "Wanted one")
        url = f"/api/v1/events?projectId={wanted['id']}"
        async with http.stream("GET", url, headers=user.headers) as response:
            reader = SseReader(response)
            await reader.until("ready")
            comment = await reader.next()
            assert comment.comments == ["keep-alive"]
            await write_event(chatty.app, owner_id=user.id, name="filtered out")
            renamed = await http.patch(
                f"/api/v1/projects/{wanted['id']}",
                json={"name": "Wanted two"},
                headers=user.headers,
            )
            assert renamed.status_code == 200
            message = await reader.next()
            while message.event is None:
                message = await reader.next()
            assert message.json["data"]["name"] == "Wanted two"


async def test_expired_ticket_is_refused(chatty: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=chatty.http, timeout=10) as http:
        user = await register_user(http)
        issued = await http.post("/api/v1/events/tickets", headers=user.headers)
        await asyncio.sleep(1.2)  # past the 1 s lifetime
        response = await http.get(f"/api/v1/events?ticket={issued.json()['ticket']}")
        assert response.status_code == 401
