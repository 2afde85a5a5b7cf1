"""SIGTERM against real server processes: in-flight requests finish, /ready answers 503,
WebSocket clients are closed with 1012 and resume on another instance without a loss."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from keel.settings import Settings
from tests.conftest import FAST_ARGON2, register_user
from tests.servers import Server, run_server

IN_FLIGHT = 50
RECEIVE_TIMEOUT = 15.0


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        "KEEL_DATABASE_URL": settings.effective_database_url,
        "KEEL_SECRET_KEY": settings.secret_key,
        "KEEL_DATA_DIR": str(settings.data_dir),
        "KEEL_RATE_LIMIT_ENABLED": "false",
        # Generous: the tests prove nothing is cut off, not how fast the drain is.
        "KEEL_SHUTDOWN_TIMEOUT_SECONDS": "120",
        **extra,
    }
    if settings.redis_url:
        env["KEEL_REDIS_URL"] = settings.redis_url
    return env


def _in_flight(metrics_text: str) -> float:
    match = re.search(r"^http_requests_in_flight (\S+)$", metrics_text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _exit_and_report(server: Server, signalled_at: float) -> float:
    server.process.wait(timeout=180)
    drained = time.monotonic() - signalled_at
    print(f"drain took {drained:.2f} s")
    return drained


@pytest.fixture
def slow_server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    """Registration is genuinely slow here: production Argon2 cost and one hashing slot, so
    fifty sign-ups queue for seconds (no test-only route, no sleep in the app)."""
    env = _env(
        settings,
        KEEL_HASH_POOL_SIZE="1",
        KEEL_HASH_QUEUE_TIMEOUT_SECONDS="120",
        KEEL_ARGON2_MEMORY_KIB="65536",
        KEEL_ARGON2_TIME_COST="3",
        KEEL_ARGON2_PARALLELISM="4",
        # Keep accepting for a moment after SIGTERM, so /ready can be seen answering 503.
        KEEL_SHUTDOWN_DELAY_SECONDS="3",
    )
    with run_server(env, log_dir=tmp_path, startup_timeout=120) as server:
        yield server


async def test_sigterm_lets_fifty_in_flight_requests_complete(slow_server: Server) -> None:
    limits = httpx.Limits(max_connections=IN_FLIGHT + 5, max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(base_url=slow_server.url, timeout=180, limits=limits) as http,
        httpx.AsyncClient(base_url=slow_server.url, timeout=10) as probe,
    ):
        requests = [
            asyncio.create_task(
                http.post(
                    "/api/v1/auth/register",
                    json={
                        "email": f"drain-{index}-{uuid.uuid4().hex[:8]}@example.com",
                        "password": "correct horse battery staple",
                        "name": "Drain Test",
                    },
                )
            )
            for index in range(IN_FLIGHT)
        ]
        # Every one of them is inside the app (the probe itself is one more).
        while _in_flight((await probe.get("/metrics")).text) < IN_FLIGHT + 1:
            await asyncio.sleep(0.05)
        assert (await probe.get("/ready")).status_code == 200

        slow_server.process.send_signal(signal.SIGTERM)
        signalled_at = time.monotonic()
        finished_at_signal = sum(task.done() for task in requests)

        ready = await probe.get("/ready", headers={"Connection": "close"})
        assert ready.status_code == 503
        assert ready.json()["code"] == "SERVICE_UNAVAILABLE"

        responses = await asyncio.gather(*requests)
    drained = await asyncio.to_thread(_exit_and_report, slow_server, signalled_at)

    assert finished_at_signal < IN_FLIGHT  # the signal really came while they were running
    assert [r.status_code for r in responses] == [201] * IN_FLIGHT
    assert len({r.json()["user"]["id"] for r in responses}) == IN_FLIGHT
    assert drained > 0
    log = slow_server.log()
    assert '"drain_started"' in log
    assert '"drain_finished"' in log
    assert "drain_timed_out" not in log


@pytest.fixture
def two_instances(settings: Settings, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    env = _env(
        settings,
        KEEL_EVENTS_POLL_SECONDS="0.2",
        **{f"KEEL_{key.upper()}": str(value) for key, value in FAST_ARGON2.items()},
    )
    with ExitStack() as stack:
        first = stack.enter_context(run_server(env, log_dir=tmp_path, startup_timeout=120))
        second = stack.enter_context(run_server(env, log_dir=tmp_path, startup_timeout=120))
        yield first, second


async def _subscribe(
    server: Server, token: str, *, last_event_id: str | None = None
) -> tuple[websockets.ClientConnection, list[dict[str, Any]]]:
    conn = await websockets.connect(f"{server.ws_url}/api/v1/ws", open_timeout=10)
    auth: dict[str, Any] = {"type": "auth", "accessToken": token}
    if last_event_id is not None:
        auth["lastEventId"] = last_event_id
    await conn.send(json.dumps(auth))
    caught_up: list[dict[str, Any]] = []
    while (message := json.loads(await asyncio.wait_for(conn.recv(), RECEIVE_TIMEOUT)))[
        "type"
    ] != "ready":
        caught_up.append(message)
    return conn, caught_up


async def _events_until_closed(conn: websockets.ClientConnection) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    try:
        while True:
            message = json.loads(await asyncio.wait_for(conn.recv(), RECEIVE_TIMEOUT))
            if message["type"].startswith("project."):
                events.append(message)
    except websockets.ConnectionClosed:
        return events


async def _sse_until_ended(server: Server, token: str) -> list[str]:
    """Event ids an SSE stream delivers until the server ends it."""
    ids: list[str] = []
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=RECEIVE_TIMEOUT) as http,
        http.stream(
            "GET", "/api/v1/events", headers={"Authorization": f"Bearer {token}"}
        ) as stream,
    ):
        assert stream.status_code == 200
        async for line in stream.aiter_lines():
            if line.startswith("id: "):
                ids.append(line.removeprefix("id: "))
    return ids


async def test_websocket_clients_get_1012_and_resume_elsewhere_without_loss(
    two_instances: tuple[Server, Server],
) -> None:
    first, second = two_instances
    async with httpx.AsyncClient(base_url=second.url, timeout=30) as http:
        user = await register_user(http)
        conn, _ = await _subscribe(first, user.access_token)
        sse = asyncio.create_task(_sse_until_ended(first, user.access_token))
        created: list[str] = []

        async def write(count: int) -> None:
            for index in range(count):
                response = await http.post(
                    "/api/v1/projects", json={"name": f"Drain {index}"}, headers=user.headers
                )
                assert response.status_code == 201, response.text
                created.append(response.json()["id"])
                await asyncio.sleep(0.02)

        reader = asyncio.create_task(_events_until_closed(conn))
        await write(10)
        first.process.send_signal(signal.SIGTERM)  # while the writes go on
        await write(10)
        before = await reader
        assert conn.close_code == 1012
        sse_ids = await asyncio.wait_for(sse, RECEIVE_TIMEOUT)  # the stream was ended too

        last = before[-1]["id"] if before else None
        conn, caught_up = await _subscribe(second, user.access_token, last_event_id=last)
        await write(5)
        after = list(caught_up)
        while len(before) + len(after) < len(created):
            message = json.loads(await asyncio.wait_for(conn.recv(), RECEIVE_TIMEOUT))
            if message["type"].startswith("project."):
                after.append(message)
        await conn.close()
    await asyncio.to_thread(first.process.wait, 60)

    received = before + after
    ids = [int(event["id"]) for event in received]
    assert ids == sorted(set(ids))  # in order, each once
    assert [event["data"]["id"] for event in received] == created  # none lost
    # The SSE stream on the draining instance ended too (it may have joined a little later).
    assert set(sse_ids) <= {event["id"] for event in before}
