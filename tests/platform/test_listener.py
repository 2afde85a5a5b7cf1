"""Keel's serving loop accepts every waiting connection each turn (platform/listener.py,
ADR 0025); uvloop alone accepts one per turn, which left a burst of new connections in the
kernel's accept queue for seconds under load."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop
from uvicorn import Config

from keel.platform import listener
from keel.platform.server import server_options
from keel.settings import Settings

WAITING = 150  # more than two of the acceptor's bursts
TURNS = 10


class Counting(asyncio.Protocol):
    made: list[asyncio.BaseTransport]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(transport)


def run(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    scenario: Callable[[], Coroutine[Any, Any, int]],
) -> int:
    loop = loop_factory()
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


async def made_after_a_burst() -> int:
    """Connections made after TURNS turns of the loop, WAITING having connected at once."""
    loop = asyncio.get_running_loop()
    made: list[asyncio.BaseTransport] = []
    protocol = type("P", (Counting,), {"made": made})
    server = await loop.create_server(protocol, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    # Blocking connects from the loop's own thread: the loop does not turn meanwhile, so
    # every connection waits in the accept queue, as behind a worker busy with requests.
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(WAITING)]
    try:
        for _ in range(TURNS):
            await asyncio.sleep(0)
        return len(made)
    finally:
        for client in clients:
            client.close()
        for transport in made:
            transport.close()
        server.close()
        await server.wait_closed()


def test_every_waiting_connection_is_accepted_within_a_few_turns() -> None:
    assert run(listener.new_event_loop, made_after_a_burst) == WAITING


def test_uvloop_alone_accepts_one_connection_per_turn() -> None:
    # Why the acceptor exists (libuv pull request 3696). If this starts failing, libuv
    # accepts greedily again and ADR 0025 can be revisited.
    assert run(uvloop.new_event_loop, made_after_a_burst) <= TURNS + 1


async def refused_after_close() -> int:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    assert isinstance(server, listener.AcceptingServer)
    port = server.sockets[0].getsockname()[1]
    assert server.is_serving()  # the wrapped server's own attributes show through
    server.close()
    await server.wait_closed()
    # The acceptor's duplicate descriptor is closed too: nothing listens any more.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    return 0


def test_closing_the_server_stops_the_acceptor_too() -> None:
    run(listener.new_event_loop, refused_after_close)


async def dropped_when_no_protocol() -> int:
    loop = asyncio.get_running_loop()
    listening = socket.create_server(("127.0.0.1", 0))

    def broken() -> asyncio.Protocol:
        raise RuntimeError("no protocol")

    acceptor = listener._Acceptor(loop, listening, broken)
    client = socket.create_connection(listening.getsockname())
    client.settimeout(5)
    try:
        for _ in range(TURNS):
            await asyncio.sleep(0)
        # The server side was closed, not leaked: the client reads the end of the stream.
        return len(await loop.run_in_executor(None, client.recv, 1))
    finally:
        client.close()
        acceptor.close()
        acceptor.close()  # closing twice is harmless
        listening.close()


def test_a_connection_without_a_protocol_is_closed() -> None:
    assert run(listener.new_event_loop, dropped_when_no_protocol) == 0


async def accept_on_a_socket_that_does_not_listen() -> int:
    loop = asyncio.get_running_loop()
    with socket.socket() as not_listening:
        acceptor = listener._Acceptor(loop, not_listening, asyncio.Protocol)
        try:
            return acceptor.accept()  # EINVAL: logged, nothing accepted, no exception
        finally:
            acceptor.close()


def test_an_accept_error_accepts_nothing() -> None:
    assert run(listener.new_event_loop, accept_on_a_socket_that_does_not_listen) == 0


def test_keel_serves_on_the_accepting_loop(make_settings: Callable[..., Settings]) -> None:
    config = Config(app=None, **server_options(make_settings()))
    assert config.get_loop_factory() is listener.new_event_loop
