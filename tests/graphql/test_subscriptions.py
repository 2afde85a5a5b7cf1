"""projectEvents over graphql-transport-ws with real WebSocket clients: delivery, visibility,
resume by lastEventId, the end of the session, and across two real server processes."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection

from keel.app import create_app
from keel.platform import metrics
from keel.settings import Settings
from tests.conftest import RegisteredUser, register_user
from tests.graphql.conftest import CREATE
from tests.realtime.conftest import LiveServer, serve
from tests.servers import Server, run_server

RECEIVE_TIMEOUT = 10.0
EVENTS = """subscription($last: ID) { projectEvents(lastEventId: $last) {
  id type timestamp project { id name status version } } }"""


class GraphQLSocket:
    """A graphql-transport-ws client over a real WebSocket."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, base_ws: str, token: str | None) -> GraphQLSocket:
        conn = await websockets.connect(
            f"{base_ws}/graphql", subprotocols=["graphql-transport-ws"], open_timeout=10
        )
        payload = {"accessToken": token} if token is not None else {}
        await conn.send(json.dumps({"type": "connection_init", "payload": payload}))
        return cls(conn)

    async def acked(self) -> GraphQLSocket:
        assert (await self.message())["type"] == "connection_ack"
        return self

    async def message(self) -> dict[str, Any]:
        while True:
            raw = await asyncio.wait_for(self.conn.recv(), RECEIVE_TIMEOUT)
            message: dict[str, Any] = json.loads(raw)
            if message["type"] == "ping":
                await self.conn.send(json.dumps({"type": "pong"}))
                continue
            return message

    async def subscribe(
        self, query: str, variables: dict[str, Any] | None = None, op: str = "1"
    ) -> None:
        await self.conn.send(
            json.dumps(
                {
                    "id": op,
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables or {}},
                }
            )
        )

    async def event(self) -> dict[str, Any]:
        message = await self.message()
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        event: dict[str, Any] = message["payload"]["data"]["projectEvents"]
        return event

    async def closed_with(self) -> int | None:
        """Read until the server closes the connection; its close code."""
        try:
            while True:
                await self.message()
        except websockets.ConnectionClosed:
            return self.conn.close_code


async def _create(http: httpx.AsyncClient, user: RegisteredUser, name: str) -> dict[str, Any]:
    response = await http.post(
        "/graphql",
        json={"query": CREATE, "variables": {"input": {"name": name}}},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    project: dict[str, Any] = response.json()["data"]["createProject"]
    return project


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # Fast heartbeats: the session re-check that ends a logged-out subscription runs on them.
    return make_settings(rate_limit_enabled=False, ws_heartbeat_seconds=0.2)


@pytest.fixture
async def live(app: FastAPI) -> AsyncIterator[LiveServer]:
    async for server in serve(app):
        yield server


def _ws(live: LiveServer) -> str:
    return live.http.replace("http://", "ws://")


async def test_events_arrive_with_visibility_and_resume_exactly(
    live: LiveServer, alice: RegisteredUser, bob: RegisteredUser
) -> None:
    async with httpx.AsyncClient(base_url=live.http, timeout=10) as http:
        first = await _create(http, alice, "Before")
        socket = await (await GraphQLSocket.open(_ws(live), alice.access_token)).acked()
        await socket.subscribe(EVENTS, {"last": "0"})
        seen = await socket.event()  # from the outbox: the subscription is in place
        assert seen["project"]["id"] == first["id"]
        assert seen["type"] == "project.created"
        await _create(http, bob, "Not for Alice")
        mine = await _create(http, alice, "For Alice")
        live_event = await socket.event()
        assert live_event["project"] == {
            "id": mine["id"],
            "name": "For Alice",
            "status": "ACTIVE",
            "version": 1,
        }
        await socket.conn.close()
        missed = [await _create(http, alice, f"Missed {i}") for i in range(2)]
        socket = await (await GraphQLSocket.open(_ws(live), alice.access_token)).acked()
        await socket.subscribe(EVENTS, {"last": live_event["id"]})
        resumed = [await socket.event(), await socket.event()]
        assert [e["project"]["id"] for e in resumed] == [p["id"] for p in missed]
        later = await _create(http, alice, "After resume")
        assert (await socket.event())["project"]["id"] == later["id"]  # nothing else between
        await socket.conn.close()


async def test_admin_receives_everyones_events(
    live: LiveServer, alice: RegisteredUser, admin: RegisteredUser
) -> None:
    async with httpx.AsyncClient(base_url=live.http, timeout=10) as http:
        marker = await _create(http, admin, "Marker")
        socket = await (await GraphQLSocket.open(_ws(live), admin.access_token)).acked()
        await socket.subscribe(EVENTS, {"last": "0"})
        assert (await socket.event())["project"]["id"] == marker["id"]
        alices = await _create(http, alice, "Alices")
        assert (await socket.event())["project"]["id"] == alices["id"]
        await socket.conn.close()


async def test_unknown_last_event_id_asks_for_a_resync(
    live: LiveServer, alice: RegisteredUser
) -> None:
    socket = await (await GraphQLSocket.open(_ws(live), alice.access_token)).acked()
    await socket.subscribe(EVENTS, {"last": "999999"})
    message = await socket.message()
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "RESYNC_REQUIRED"
    await socket.conn.close()


@pytest.mark.parametrize("token", [None, "not-a-token"])
async def test_connection_without_a_valid_token_is_refused(
    live: LiveServer, token: str | None
) -> None:
    socket = await GraphQLSocket.open(_ws(live), token)
    assert await socket.closed_with() == 4401


async def test_logout_ends_the_subscription(live: LiveServer, alice: RegisteredUser) -> None:
    async with httpx.AsyncClient(base_url=live.http, timeout=10) as http:
        first = await _create(http, alice, "Before")
        socket = await (await GraphQLSocket.open(_ws(live), alice.access_token)).acked()
        await socket.subscribe(EVENTS, {"last": "0"})
        assert (await socket.event())["project"]["id"] == first["id"]
        response = await http.post(
            "/api/v1/auth/logout", json={"refreshToken": alice.refresh_token}, headers=alice.headers
        )
        assert response.status_code == 204
        assert await socket.closed_with() == 4401


async def test_expired_token_ends_the_subscription(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(rate_limit_enabled=False, access_token_ttl_seconds=2))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        async for server in serve(app):
            async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
                user = await register_user(http)
                socket = await (await GraphQLSocket.open(_ws(server), user.access_token)).acked()
                await socket.subscribe(EVENTS)
                assert await socket.closed_with() == 4401


async def test_queries_and_mutations_over_the_socket(
    live: LiveServer, alice: RegisteredUser
) -> None:
    socket = await (await GraphQLSocket.open(_ws(live), alice.access_token)).acked()
    await socket.subscribe(
        'mutation { createProject(input: {name: "Over WS"}) { name owner { id } } }', op="m"
    )
    message = await socket.message()
    assert message["payload"]["data"]["createProject"] == {
        "name": "Over WS",
        "owner": {"id": alice.id},
    }
    assert (await socket.message())["type"] == "complete"
    await socket.subscribe("{ projects { totalCount } }", op="q")
    message = await socket.message()
    assert message["payload"]["data"]["projects"]["totalCount"] == 1
    await socket.conn.close()


async def test_graphql_sockets_count_in_the_websocket_gauge(
    live: LiveServer, alice: RegisteredUser
) -> None:
    def gauge() -> float:
        return metrics.REGISTRY.get_sample_value("websocket_connections") or 0.0

    before = gauge()
    socket = await (await GraphQLSocket.open(_ws(live), alice.access_token)).acked()
    assert gauge() == before + 1  # counted before connection_ack was sent
    await socket.conn.close()
    await socket.conn.wait_closed()
    for _ in range(200):  # the server side finishes its handler just after the close
        if gauge() == before:
            break
        await asyncio.sleep(0.05)
    assert gauge() == before


@pytest.mark.parametrize(
    ("path", "subprotocols"), [("/graphql", ["graphql-transport-ws"]), ("/api/v1/ws", None)]
)
async def test_websocket_upgrades_count_against_the_ip_rate_limit(
    make_settings: Callable[..., Settings], path: str, subprotocols: list[str] | None
) -> None:
    app = create_app(make_settings(rate_limit_anonymous="2/15minutes"))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        async for server in serve(app):
            url = _ws(server) + path
            for _ in range(2):
                conn = await websockets.connect(url, subprotocols=subprotocols, open_timeout=10)
                await conn.close()
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(url, subprotocols=subprotocols, open_timeout=10)
            response = refused.value.response
            assert response.status_code == 429
            assert json.loads(response.body)["code"] == "RATE_LIMITED"
            assert int(response.headers["retry-after"]) >= 1
            # The HTTP requests of the same IP share the window.
            async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
                assert (await http.get("/api/v1/auth/profile")).status_code == 429


async def test_production_subscribes_only_to_trusted_documents(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    manifest = tmp_path / "trusted.json"
    manifest.write_text(
        json.dumps({hashlib.sha256(doc.encode()).hexdigest(): doc for doc in (EVENTS, CREATE)})
    )
    settings = make_settings(
        env="production",
        allow_sqlite_in_production=True,
        rate_limit_enabled=False,
        graphql_trusted_documents=manifest,
    )
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        async for server in serve(app):
            async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
                user = await register_user(http)
                socket = await (await GraphQLSocket.open(_ws(server), user.access_token)).acked()
                await socket.subscribe("subscription { projectEvents { id } }", op="untrusted")
                message = await socket.message()
                assert message["type"] == "error", message
                assert [e["extensions"]["code"] for e in message["payload"]] == [
                    "DOCUMENT_NOT_TRUSTED"
                ]
                await socket.subscribe(EVENTS, {"last": "0"}, op="trusted")
                created = await _create(http, user, "Trusted")
                assert (await socket.event())["project"]["id"] == created["id"]
                await socket.conn.close()


# --- across two real processes ---------------------------------------------------------------


def _server_env(settings: Settings) -> dict[str, str]:
    env = {
        "KEEL_DATABASE_URL": settings.effective_database_url,
        "KEEL_SECRET_KEY": settings.secret_key,
        "KEEL_DATA_DIR": str(settings.data_dir),
        "KEEL_LOG_LEVEL": "WARNING",
        "KEEL_RATE_LIMIT_ENABLED": "false",
        # With Redis the safety-net poll is slow, so prompt delivery proves the bus did it.
        "KEEL_EVENTS_POLL_SECONDS": "30" if settings.redis_url else "0.2",
        "KEEL_ARGON2_MEMORY_KIB": "1024",
        "KEEL_ARGON2_TIME_COST": "1",
        "KEEL_ARGON2_PARALLELISM": "1",
    }
    if settings.redis_url:
        env["KEEL_REDIS_URL"] = settings.redis_url
    return env


@pytest.fixture
def two_instances(settings: Settings, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    env = _server_env(settings)
    with ExitStack() as stack:
        first = stack.enter_context(run_server(env, log_dir=tmp_path))
        second = stack.enter_context(run_server(env, log_dir=tmp_path))
        yield first, second


async def test_event_committed_on_one_instance_reaches_a_subscriber_on_the_other(
    two_instances: tuple[Server, Server],
) -> None:
    first, second = two_instances
    async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
        user = await register_user(http)
        marker = await _create(http, user, "Marker")
        socket = await (await GraphQLSocket.open(second.ws_url, user.access_token)).acked()
        await socket.subscribe(EVENTS, {"last": "0"})
        assert (await socket.event())["project"]["id"] == marker["id"]
        across = await _create(http, user, "Across")
        last = await socket.event()
        assert last["project"]["id"] == across["id"]
        await socket.conn.close()
        # Resume on the first instance: exactly what was committed meanwhile, in order.
        missed = [await _create(http, user, f"Missed {i}") for i in range(3)]
        socket = await (await GraphQLSocket.open(first.ws_url, user.access_token)).acked()
        await socket.subscribe(EVENTS, {"last": last["id"]})
        resumed = [(await socket.event())["project"]["id"] for _ in missed]
        assert resumed == [p["id"] for p in missed]
        after = await _create(http, user, "After")
        assert (await socket.event())["project"]["id"] == after["id"]
        await socket.conn.close()
