"""The shutdown hang: a background task that swallowed its cancellation (docs/adr/0018)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs

from keel import app as app_module
from keel.app import build_services, close_services
from keel.platform.tasks import cancel_and_wait
from keel.platform.tiered_cache import TieredCache
from keel.realtime.hub import EventHub
from keel.settings import Settings
from tests.conftest import TEST_REDIS_URL

# Far above any real stop; only turns a hang into a failure instead of a stuck run.
HANG_GUARD_SECONDS = 20.0


async def test_relay_stops_when_cancelled_in_the_turn_it_was_woken(app: FastAPI) -> None:
    """The root cause: on Python 3.11, `asyncio.wait_for` returns the inner result when the
    cancellation arrives in the loop turn in which the awaited event was set, so the relay
    (`while True: wait_for(wake.wait(), poll)`) lost its cancellation and polled for ever;
    stop() awaited it for ever (until the 30 s lifespan timeout in tests). A bus message
    or a commit sets `wake` just as shutdown cancels the relay, which Redis (a message
    arriving a few ms after every commit) made likely at the end of a test."""
    services = app.state.services
    hub = EventHub(database=services.database, bus=services.bus, settings=services.settings)
    await hub.start()
    for _ in range(20):  # each round is the exact race; one lost cancellation would hang
        hub._wake.set()  # what the bus listener or a local commit does
        async with asyncio.timeout(HANG_GUARD_SECONDS):
            await hub.stop()
        assert hub._tasks == []
        await hub.start()
    await hub.stop()


async def test_wait_for_in_python_311_loses_a_cancellation() -> None:
    """Pins the library behaviour the fix relies on: if this starts failing, the Python in
    use fixed wait_for (3.12 did) and the comment in hub._relay can go."""
    woke = asyncio.Event()

    async def waits_with_wait_for() -> str:
        await asyncio.wait_for(woke.wait(), timeout=5)
        return "returned"

    async def waits_with_timeout() -> str:
        async with asyncio.timeout(5):
            await woke.wait()
        return "returned"

    outcomes = []
    for waiter in (waits_with_wait_for, waits_with_timeout):
        woke.clear()
        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        woke.set()
        task.cancel()
        await asyncio.wait([task])
        outcomes.append("cancelled" if task.cancelled() else task.result())
    assert outcomes == ["returned", "cancelled"]


async def test_cancel_and_wait_does_not_swallow_the_callers_cancellation() -> None:
    """`with suppress(CancelledError): await task` in a stop() also swallowed the cancel of a
    bounded shutdown step, so the step went on waiting; cancel_and_wait passes it on."""
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await release.wait()  # cleans up slowly
            raise

    worker = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait([worker]))
    await asyncio.sleep(0.05)
    stopper.cancel()  # the step's time is up
    await asyncio.wait([stopper])
    assert stopper.cancelled()
    release.set()
    await asyncio.wait([worker])
    assert worker.cancelled()


async def test_cancel_and_wait_logs_a_task_that_failed() -> None:
    async def fails() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("broken on the way out")

    task = asyncio.create_task(fails(), name="broken-task")
    await asyncio.sleep(0)
    with capture_logs() as logs:
        await cancel_and_wait([task])
    assert task.done()
    assert [entry["task"] for entry in logs if entry["event"] == "task_failed_on_stop"] == [
        "broken-task"
    ]


async def test_cache_listener_stops_while_blocked_in_a_30s_pubsub_read(
    make_settings: Callable[..., Settings],
) -> None:
    """The first suspect: TieredCache._listen sits in `get_message(timeout=30.0)`. A cancel
    there ends it at once (redis-py lets CancelledError through), so it was not the cause;
    kept so a redis-py upgrade that changes this is caught."""
    if not TEST_REDIS_URL:
        pytest.skip("needs Redis")
    services = build_services(make_settings())
    try:
        assert isinstance(services.cache, TieredCache)
        cache = services.cache
        for _ in range(5):
            await cache.start()
            assert cache._subscribed.is_set()
            await asyncio.sleep(0.05)  # now blocked in the read
            async with asyncio.timeout(HANG_GUARD_SECONDS):
                await cache.close()
            assert cache._listener is not None
            assert cache._listener.done()
    finally:
        await close_services(services)


async def test_a_step_that_swallows_its_cancellation_does_not_hold_up_the_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shutdown step is given SHUTDOWN_STEP_SECONDS; one that ignores being cancelled is
    left behind (with a shutdown_step_timed_out warning) and the shutdown goes on."""
    monkeypatch.setattr(app_module, "SHUTDOWN_STEP_SECONDS", 0.2)
    release = asyncio.Event()
    cancellations = 0

    async def deaf() -> None:
        nonlocal cancellations
        while not release.is_set():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                cancellations += 1  # the bug: a stop() that waits on regardless

    try:
        async with asyncio.timeout(HANG_GUARD_SECONDS):
            await app_module._bounded("deaf step", deaf())
        (abandoned,) = [t for t in asyncio.all_tasks() if t.get_coro().__name__ == "deaf"]
        assert not abandoned.done()  # still running: _bounded did not wait for it
    finally:
        release.set()  # whatever happened above, the step must end before the loop does
    await asyncio.wait_for(abandoned, HANG_GUARD_SECONDS)
    assert cancellations == 1  # it was cancelled once, and ignored it


async def test_a_steps_own_error_still_surfaces() -> None:
    async def broken() -> None:
        raise RuntimeError("close failed")

    with pytest.raises(RuntimeError, match="close failed"):
        await app_module._bounded("broken step", broken())
