"""/ready follows the database: 503 while it is unreachable, 200 again once it is back,
without restarting Keel. The outage is made real by a TCP proxy in front of the database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import make_url

from keel.app import create_app
from keel.settings import Settings
from tests.conftest import TEST_DATABASE_URL, is_postgres

pytestmark = pytest.mark.skipif(not is_postgres(), reason="needs a networked database")


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the database; `cut()` drops every connection."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}
        for coro in (self._pipe(reader, up_writer), self._pipe(up_reader, writer)):
            task = asyncio.create_task(coro)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        for task in list(self.tasks):
            task.cancel()
        self.writers.clear()
        await self.server.wait_closed()


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(TEST_DATABASE_URL)
    tcp = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await tcp.start()
    yield tcp
    with contextlib.suppress(Exception):
        await tcp.cut()


async def test_ready_is_503_while_database_is_down_and_recovers(
    proxy: TcpProxy, make_settings: Callable[..., Settings]
) -> None:
    proxied = make_url(TEST_DATABASE_URL).set(host="127.0.0.1", port=proxy.port)
    settings = make_settings(
        database_url=proxied.render_as_string(hide_password=False), db_pool_timeout_seconds=1.0
    )
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as client:
            assert (await client.get("/ready")).status_code == 200

            await proxy.cut()
            down = await client.get("/ready")
            assert down.status_code == 503
            body = down.json()
            assert body["code"] == "SERVICE_UNAVAILABLE"
            assert "database" in body["error"]
            assert down.headers["retry-after"] == "5"
            # Liveness does not depend on the database.
            assert (await client.get("/health")).status_code == 200

            await proxy.start()
            assert (await client.get("/ready")).status_code == 200
