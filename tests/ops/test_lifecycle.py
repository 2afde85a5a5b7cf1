"""Lifecycle: the drain hook, the in-flight wait and the chained signal handler, in process."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from types import FrameType

import httpx
import pytest
from fastapi import FastAPI

from keel.platform.lifecycle import Lifecycle


@pytest.fixture
def server_handler() -> Iterator[list[int]]:
    """Stands in for the server's own SIGTERM handler (uvicorn's handle_exit)."""
    received: list[int] = []

    def handle_exit(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    original = signal.signal(signal.SIGTERM, handle_exit)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, original)


async def test_callbacks_run_once_in_order_and_failures_do_not_stop_the_others() -> None:
    lifecycle = Lifecycle()
    ran: list[str] = []

    async def stop_grpc() -> None:
        await asyncio.sleep(0)
        ran.append("grpc")

    def broken() -> None:
        raise RuntimeError("cannot drain")

    async def broken_async() -> None:
        raise RuntimeError("cannot drain either")

    lifecycle.on_drain(lambda: ran.append("hub"), name="hub")
    lifecycle.on_drain(broken)
    lifecycle.on_drain(broken_async)
    lifecycle.on_drain(stop_grpc)
    lifecycle.begin_drain()
    lifecycle.begin_drain()  # idempotent
    await lifecycle.drain()
    assert lifecycle.draining
    assert ran == ["hub", "grpc"]
    lifecycle.on_drain(lambda: ran.append("late worker"))  # registered after: runs at once
    assert ran[-1] == "late worker"


async def test_drain_waits_for_requests_in_flight() -> None:
    lifecycle = Lifecycle(timeout_seconds=60)
    lifecycle.request_started()
    lifecycle.request_started()
    drain = asyncio.create_task(lifecycle.drain())
    await asyncio.sleep(0.05)
    assert not drain.done()
    assert lifecycle.in_flight == 2
    lifecycle.request_finished()
    await asyncio.sleep(0.05)
    assert not drain.done()
    lifecycle.request_finished()
    await drain
    assert lifecycle.in_flight == 0


async def test_drain_gives_up_after_the_timeout() -> None:
    lifecycle = Lifecycle(timeout_seconds=0.1)
    lifecycle.request_started()
    await lifecycle.drain()
    assert lifecycle.in_flight == 1
    lifecycle.request_finished()


async def test_sigterm_drains_at_once_and_hands_the_signal_on(
    server_handler: list[int],
) -> None:
    lifecycle = Lifecycle()
    lifecycle.install_signal_hook()
    try:
        signal.raise_signal(signal.SIGTERM)
        await asyncio.sleep(0.05)
        assert lifecycle.draining
        assert server_handler == [signal.SIGTERM]
    finally:
        lifecycle.remove_signal_hook()
    assert signal.getsignal(signal.SIGTERM) is not lifecycle._on_signal


async def test_with_a_delay_the_server_hears_of_it_later_unless_signalled_twice(
    server_handler: list[int],
) -> None:
    lifecycle = Lifecycle(delay_seconds=0.3)
    lifecycle.install_signal_hook()
    try:
        signal.raise_signal(signal.SIGTERM)
        await asyncio.sleep(0.05)
        assert lifecycle.draining  # /ready is 503 already ...
        assert server_handler == []  # ... while the server still accepts
        await asyncio.sleep(0.5)
        assert server_handler == [signal.SIGTERM]
        signal.raise_signal(signal.SIGTERM)  # a second signal goes straight through
        assert server_handler == [signal.SIGTERM, signal.SIGTERM]
    finally:
        lifecycle.remove_signal_hook()


async def test_a_second_signal_during_the_delay_is_passed_on_at_once(
    server_handler: list[int],
) -> None:
    lifecycle = Lifecycle(delay_seconds=30)
    lifecycle.install_signal_hook()
    try:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
        assert server_handler == [signal.SIGTERM]
        lifecycle._forward(signal.SIGTERM)  # the delayed hand-over finds it done
        assert server_handler == [signal.SIGTERM]
    finally:
        lifecycle.remove_signal_hook()


async def test_ready_answers_503_while_draining(client: httpx.AsyncClient, app: FastAPI) -> None:
    assert (await client.get("/ready")).status_code == 200
    app.state.services.lifecycle.begin_drain()
    response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert response.headers["Retry-After"] == "5"
    assert (await client.get("/health")).status_code == 200  # still alive, just not ready
