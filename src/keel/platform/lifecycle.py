"""Graceful drain on SIGTERM: readiness off at once, streams ended, in-flight requests finished.

One `Lifecycle` per app (in `Services`). On the first SIGTERM/SIGINT it starts draining:
`/ready` answers 503, every registered drain callback runs (the realtime hub closes
WebSockets with 1012 and ends SSE streams; the gRPC server and the job worker register
theirs), and, after `KEEL_SHUTDOWN_DELAY_SECONDS`, the signal is handed to the server's own
handler, which stops accepting and waits for in-flight requests (up to
`KEEL_SHUTDOWN_TIMEOUT_SECONDS`). The lifespan shutdown then waits for the requests this app
still counts, so the guarantee does not depend on which ASGI server runs Keel.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType

import structlog
from prometheus_client import Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from keel.platform.metrics import REGISTRY

log = structlog.get_logger("keel.lifecycle")

# A drain callback: plain (e.g. close every subscriber) or async (stop a server, hand back jobs).
DrainCallback = Callable[[], Awaitable[None] | None]
SignalHandler = Callable[[int, FrameType | None], object]

IN_FLIGHT = Gauge(
    "http_requests_in_flight",
    "HTTP requests being served",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)


class Lifecycle:
    """Draining state and drain callbacks of one app; the hook other front doors register with.

    Register with `on_drain(callback)` while building the app (or when a server starts); the
    callbacks run once, in registration order, when draining begins, and `drain()` awaits the
    async ones. A callback that fails or overruns is logged, never fatal.
    """

    def __init__(self, *, delay_seconds: float = 0.0, timeout_seconds: float = 30.0) -> None:
        self.delay_seconds = delay_seconds
        self.timeout_seconds = timeout_seconds
        self.draining = False
        self._callbacks: list[tuple[str, DrainCallback]] = []
        self._pending: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._idle: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handlers: dict[int, tuple[SignalHandler, SignalHandler]] = {}
        self._signalled = False
        self._forwarded = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def on_drain(self, callback: DrainCallback, *, name: str | None = None) -> None:
        """Run `callback` when draining begins (at once if it already has)."""
        label = name or str(getattr(callback, "__qualname__", callback))
        self._callbacks.append((label, callback))
        if self.draining:
            self._run(label, callback)

    def begin_drain(self, reason: str = "signal") -> None:
        """Stop being ready and run the drain callbacks; idempotent, call on the loop."""
        if self.draining:
            return
        self.draining = True
        log.info("drain_started", reason=reason, in_flight=self._in_flight)
        for label, callback in self._callbacks:
            self._run(label, callback)

    def _run(self, label: str, callback: DrainCallback) -> None:
        try:
            result = callback()
        except Exception as exc:  # one part failing to drain must not stop the others
            log.warning("drain_callback_failed", callback=label, error=type(exc).__name__)
            return
        if inspect.isawaitable(result):
            self._pending.append(asyncio.ensure_future(self._logged(label, result)))

    @staticmethod
    async def _logged(label: str, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception as exc:  # logged; the shutdown goes on
            log.warning("drain_callback_failed", callback=label, error=type(exc).__name__)

    async def drain(self) -> float:
        """Begin draining (if no signal did), then wait for the async callbacks and for the
        requests in flight, up to the shutdown timeout. Returns the seconds it waited."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.begin_drain(reason="shutdown")
        try:
            async with asyncio.timeout(self.timeout_seconds):
                if self._pending:
                    await asyncio.wait(self._pending)
                await self._wait_idle()
        except TimeoutError:
            log.warning("drain_timed_out", seconds=self.timeout_seconds, in_flight=self._in_flight)
        waited = loop.time() - started
        log.info("drain_finished", seconds=round(waited, 3), in_flight=self._in_flight)
        return waited

    async def _wait_idle(self) -> None:
        while self._in_flight:
            self._idle = asyncio.Event()
            await self._idle.wait()

    # --- requests in flight ----------------------------------------------------------------

    def request_started(self) -> None:
        self._in_flight += 1
        IN_FLIGHT.inc()

    def request_finished(self) -> None:
        self._in_flight -= 1
        IN_FLIGHT.dec()
        if not self._in_flight and self._idle is not None:
            self._idle.set()

    # --- signals ---------------------------------------------------------------------------

    def install_signal_hook(self) -> None:
        """Chain SIGTERM/SIGINT: begin draining at once, then (after the delay) hand the signal
        to the handler the server installed. Only in the main thread, with a running loop."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue
            signal.signal(sig, self._on_signal)
            self._handlers[sig] = (self._on_signal, previous)

    def remove_signal_hook(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig, (handler, previous) in self._handlers.items():
                if signal.getsignal(sig) == handler:
                    signal.signal(sig, previous)
        self._handlers = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        loop = self._loop
        previous = self._handlers.get(signum, (None, None))[1]
        if previous is None or loop is None or loop.is_closed():
            return
        first = not self._signalled
        self._signalled = True
        loop.call_soon_threadsafe(self.begin_drain)
        if not first or self.delay_seconds <= 0:
            # No delay, or a second signal: the server's own handling, at once.
            self._forwarded = True
            previous(signum, frame)
            return
        loop.call_soon_threadsafe(loop.call_later, self.delay_seconds, self._forward, signum)

    def _forward(self, signum: int) -> None:
        if self._forwarded:
            return
        self._forwarded = True
        previous = self._handlers.get(signum, (None, None))[1]
        if previous is not None:
            previous(signum, None)


class InFlightMiddleware:
    """Counts the HTTP requests being served, so the drain can wait for them."""

    def __init__(self, app: ASGIApp, *, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.lifecycle.request_started()
        try:
            await self.app(scope, receive, send)
        finally:
            self.lifecycle.request_finished()
