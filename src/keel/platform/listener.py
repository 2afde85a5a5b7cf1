"""The serving event loop: uvloop, accepting every waiting connection at once (ADR 0025).

libuv (under uvloop) accepts one connection per turn of the event loop since 1.45 (libuv
pull request 3696): the next one waits for the next turn. A worker busy with requests turns
every few tens of milliseconds, so 1 000 clients connecting at once waited up to 3 s in the
kernel's accept queue, where neither the overload guard nor any metric sees them (issue 11:
that wait was the whole p99 of the 1024-connection bench). Here every listening socket also
gets a duplicate descriptor watched by the loop, whose reader accepts up to `BURST` waiting
connections per turn and hands each to the loop as an accepted socket: the requests are
then read at once and admitted or refused by the overload guard in time. libuv's own
watcher stays (it accepts its one, or finds the queue empty).

Without uvloop (it is not installed everywhere), asyncio's own loop already accepts up to
the backlog per turn.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Any, cast

import structlog

log = structlog.get_logger("keel.server")

# Connections accepted per turn of the loop and per listening socket, beyond libuv's one.
# Bounded so that one worker of several sharing a socket leaves the others their share.
BURST = 64


class _Acceptor:
    """Accepts waiting connections on a duplicate of one listening socket."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        listening: Any,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        # Any: asyncio's TransportSocket (uvloop's pseudo-socket); only its descriptor is used.
        self._loop = loop
        self._factory = protocol_factory
        self._sock = socket.socket(fileno=os.dup(listening.fileno()))
        self._sock.setblocking(False)
        self._handovers: set[asyncio.Task[Any]] = set()
        loop.add_reader(self._sock.fileno(), self.accept)

    def accept(self) -> int:
        """Accept what waits (at most BURST); returns how many were handed to the loop."""
        accepted = 0
        while accepted < BURST:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                break
            except OSError as exc:  # out of descriptors: libuv's watcher handles it
                log.warning("accept_failed", error=str(exc))
                break
            conn.setblocking(False)
            task = self._loop.create_task(self._hand_over(conn))
            self._handovers.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._handovers.discard)
            accepted += 1
        return accepted

    async def _hand_over(self, conn: socket.socket) -> None:
        """The loop makes a transport and a protocol for `conn`, as for one it accepted."""
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except Exception as exc:  # the protocol could not be made: drop the connection
            conn.close()
            log.warning("accept_handover_failed", error=str(exc))

    def close(self) -> None:
        if self._sock.fileno() != -1:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()


class AcceptingServer:
    """An asyncio Server whose listening sockets are also drained by `_Acceptor`s; closing
    it stops them first. Everything else is the wrapped server's."""

    def __init__(self, server: asyncio.AbstractServer, acceptors: list[_Acceptor]) -> None:
        self._server = server
        self._acceptors = acceptors

    def close(self) -> None:
        for acceptor in self._acceptors:
            acceptor.close()
        self._server.close()

    async def wait_closed(self) -> None:
        await self._server.wait_closed()

    def __getattr__(self, name: str) -> Any:
        # Any: whatever the wrapped server's attribute is (sockets, is_serving, ...).
        return getattr(self._server, name)


def _accepting_loop_class() -> type[asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed with uvicorn[standard]
        return None

    class AcceptingLoop(uvloop.Loop):
        async def create_server(  # type: ignore[override]
            self, protocol_factory: Callable[[], asyncio.BaseProtocol], *args: Any, **kwargs: Any
        ) -> AcceptingServer:
            # Any: asyncio's create_server arguments, passed on unchanged.
            server = cast(
                asyncio.Server, await super().create_server(protocol_factory, *args, **kwargs)
            )
            acceptors = [_Acceptor(self, sock, protocol_factory) for sock in server.sockets]
            return AcceptingServer(server, acceptors)

    return AcceptingLoop


_LOOP_CLASS = _accepting_loop_class()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's loop factory for Keel's servers (`loop=` in platform.server.server_options)."""
    if _LOOP_CLASS is None:  # pragma: no cover - see _accepting_loop_class
        return asyncio.new_event_loop()
    return _LOOP_CLASS()
