"""The WebSocket stream (GET /api/v1/ws): the auth handshake, then one reader and one writer
per connection over a hub subscriber. The protocol is in docs/realtime.md."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import WebSocket
from pydantic import Field, ValidationError
from starlette.websockets import WebSocketDisconnect

from keel.platform import metrics
from keel.platform.errors import Unauthorized
from keel.platform.schemas import RequestModel, SafeStr
from keel.platform.services import services_of
from keel.platform.timestamps import iso_z
from keel.platform.websocket_server import FRAME_WRITER, FrameWriter, text_frame
from keel.realtime.catchup import (
    MAX_PROJECT_FILTER,
    READY,
    RESYNC_MESSAGE,
    EventStreams,
    Grant,
    Resync,
    fresh,
    viewer_of,
)
from keel.realtime.hub import (
    CLOSE_GRACE_SECONDS,
    CloseCode,
    Heartbeat,
    Recheck,
    Subscriber,
    expire_soon,
)
from keel.realtime.service import OutgoingEvent

PING = '{"type":"ping"}'
PONG = '{"type":"pong"}'


class AuthMessage(RequestModel):
    """The first WebSocket message (and any later re-authentication)."""

    type: SafeStr
    access_token: SafeStr = Field(min_length=1, max_length=8192)
    last_event_id: SafeStr | None = Field(default=None, max_length=32)
    project_ids: list[uuid.UUID] | None = Field(default=None, max_length=MAX_PROJECT_FILTER)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
        async with asyncio.timeout(CLOSE_GRACE_SECONDS):
            await websocket.close(code=code, reason=reason)


def _parse_auth(message: Mapping[str, Any]) -> AuthMessage | None:
    # Any: an ASGI message.
    text = message.get("text")
    if not isinstance(text, str):
        return None
    try:
        auth = AuthMessage.model_validate_json(text)
    except ValidationError:
        return None
    return auth if auth.type == "auth" else None


def _message_type(text: object) -> str | None:
    if not isinstance(text, str) or len(text) > 16384:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else None


def _error(message: str) -> str:
    return orjson.dumps({"type": "error", "message": message}).decode()


class _Connection:
    """The state of one authenticated WebSocket, shared by its reader and writer."""

    __slots__ = (
        "client_gone",
        "deadline",
        "grant",
        "streams",
        "subscriber",
        "websocket",
        "write_frame",
    )

    def __init__(
        self, websocket: WebSocket, *, streams: EventStreams, subscriber: Subscriber, grant: Grant
    ) -> None:
        self.websocket = websocket
        self.streams = streams
        self.subscriber = subscriber
        self.grant = grant
        self.client_gone = False
        self.deadline: asyncio.Timeout | None = None
        self.write_frame: FrameWriter | None = None
        subscriber.on_close(self._closing)

    def write_directly(self, writer: FrameWriter) -> None:
        """Let the relay write live events straight to the socket while the pump is idle."""
        self.write_frame = writer
        self.subscriber.direct = self.write_now

    def write_now(self, event: OutgoingEvent) -> bool:
        """Write a live event at once if the stream's last check is fresh (else the pump
        re-checks it first) and the socket takes the frame without waiting."""
        assert self.write_frame is not None
        return fresh(self.subscriber, time.monotonic()) and self.write_frame(text_frame(event.json))

    def _closing(self) -> None:
        # A send blocked on a client that does not read must not hold the connection open.
        if self.deadline is not None and not self.client_gone:
            expire_soon(self.deadline)

    async def send(self, text: str) -> None:
        """Send a message: straight to the socket if it takes it now, else through ASGI (which
        waits while the client reads slower than we write)."""
        if self.write_frame is not None and self.write_frame(text_frame(text)):
            return
        await self._send_asgi(text)

    async def _send_asgi(self, text: str) -> None:
        try:
            async with asyncio.timeout(None) as deadline:
                self.deadline = deadline
                if self.subscriber.closed:
                    self._closing()
                await self.websocket.send_text(text)
        finally:
            self.deadline = None

    async def pump(self) -> None:
        """Write queued items until the subscriber closes, then close the socket."""
        subscriber = self.subscriber
        streams = self.streams
        while (item := await subscriber.next()) is not None:
            # The grant of the latest re-authentication, so not EventStreams.live().
            if isinstance(item, OutgoingEvent):
                if await streams.admit(subscriber, self.grant, item):
                    await self.send(item.json)
            elif isinstance(item, Heartbeat):
                if await streams.current(subscriber, self.grant, force=True):
                    await self.send(PING)
            elif isinstance(item, Recheck):
                await streams.current(subscriber, self.grant)
            else:
                await self.send(item)  # a control message (pong, error, authenticated)
        if not self.client_gone and subscriber.close_code is not None:
            await _close(self.websocket, subscriber.close_code, subscriber.close_reason)

    async def read(self) -> None:
        """Handle client messages: re-authentication and pings."""
        subscriber = self.subscriber
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.client_gone = True
                subscriber.close(1000, "Client went away")
                return
            kind = _message_type(message.get("text"))
            if kind == "ping":
                subscriber.offer_control(PONG)
            elif kind == "auth":
                if not await self._reauthenticate(message):
                    return
            elif kind != "pong":
                subscriber.offer_control(_error("Unknown message type"))

    async def _reauthenticate(self, message: Mapping[str, Any]) -> bool:
        """Move the connection to a fresh token of the same user; False once it is closed."""
        # Any: an ASGI message.
        subscriber = self.subscriber
        auth = _parse_auth(message)
        if auth is None:
            subscriber.offer_control(_error("Invalid auth message"))
            return True
        try:
            grant = await self.streams.authorize(auth.access_token)
        except Unauthorized:
            subscriber.close(CloseCode.UNAUTHORIZED, "Invalid or expired access token")
            return False
        if grant.actor.user_id != self.grant.actor.user_id:
            subscriber.close(CloseCode.UNAUTHORIZED, "Token belongs to another user")
            return False
        self.grant = grant
        self.streams.hub.update_viewer(
            subscriber, viewer_of(grant.actor, subscriber.viewer.project_ids)
        )
        subscriber.expire_at(grant.expires_at)
        subscriber.offer_control(
            orjson.dumps(
                {"type": "authenticated", "expiresAt": iso_z(grant.expires_at, timespec="seconds")}
            ).decode()
        )
        return True


async def _first_auth(websocket: WebSocket, *, within_seconds: float) -> AuthMessage | None:
    """The handshake's auth message; None once the socket is closed (or the client left)."""
    try:
        async with asyncio.timeout(within_seconds):
            message = await websocket.receive()
    except TimeoutError:
        await _close(websocket, CloseCode.UNAUTHORIZED, "Authentication timed out")
        return None
    if message["type"] == "websocket.disconnect":
        return None
    auth = _parse_auth(message)
    if auth is None:
        await _close(websocket, CloseCode.UNAUTHORIZED, 'First message must be {"type": "auth", …}')
    return auth


def _frame_writer(websocket: WebSocket) -> FrameWriter | None:
    """The server's frame writer (Keel's own uvicorn protocol), if it offers one."""
    extension = websocket.scope.get("extensions", {}).get(FRAME_WRITER)
    write = extension.get("write") if isinstance(extension, dict) else None
    return write if callable(write) else None


async def serve_websocket(websocket: WebSocket) -> None:
    """Accept, authenticate, catch up, then deliver live until either side closes."""
    services = services_of(websocket.app)
    streams = EventStreams.of(services)
    await websocket.accept()
    if streams.hub.draining:
        await _close(websocket, CloseCode.SERVICE_RESTART, "Server restarting; reconnect")
        return
    auth = await _first_auth(websocket, within_seconds=services.settings.ws_auth_timeout_seconds)
    if auth is None:
        return
    try:
        grant = await streams.authorize(auth.access_token)
    except Unauthorized:
        await _close(websocket, CloseCode.UNAUTHORIZED, "Invalid or expired access token")
        return

    subscriber = streams.subscriber(grant, auth.project_ids)
    connection = _Connection(websocket, streams=streams, subscriber=subscriber, grant=grant)
    metrics.WEBSOCKET_CONNECTIONS.inc()
    reader: asyncio.Task[None] | None = None
    try:
        async for item in streams.catch_up_and_register(
            subscriber, last_event_id=auth.last_event_id
        ):
            await connection.send(RESYNC_MESSAGE if isinstance(item, Resync) else item.json)
        await connection.send(READY)
        writer = _frame_writer(websocket)
        if writer is not None and not services.settings.otel_exporter_otlp_endpoint:
            # With tracing on, every message goes through ASGI, where its span is made.
            connection.write_directly(writer)
        reader = asyncio.create_task(connection.read())
        await connection.pump()
    except (WebSocketDisconnect, TimeoutError, OSError):
        pass  # the client went away or stopped reading; it resumes with lastEventId
    finally:
        streams.release(subscriber, "Connection closed")
        metrics.WEBSOCKET_CONNECTIONS.dec()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError):
                await reader
