"""The Server-Sent Events stream (GET /api/v1/events): its response class and its body."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from keel.platform.errors import Unauthorized
from keel.platform.services import Services
from keel.realtime.catchup import READY, RESYNC_MESSAGE, EventStreams, Resync
from keel.realtime.hub import CLOSE_GRACE_SECONDS, Subscriber, expire_soon
from keel.realtime.service import OutgoingEvent
from keel.realtime.tickets import TICKETS


class EventStreamResponse(Response):
    """A text/event-stream whose every write has a deadline once the stream is closing."""

    media_type = "text/event-stream"

    def __init__(self, chunks: Callable[[], AsyncIterator[bytes]], subscriber: Subscriber):
        super().__init__(
            content=None,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            media_type=self.media_type,
        )
        # An endless body: no Content-Length.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._chunks = chunks
        self._subscriber = subscriber
        self._deadline: asyncio.Timeout | None = None
        subscriber.on_close(self._closing)

    def _closing(self) -> None:
        if self._deadline is not None:
            expire_soon(self._deadline)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self._subscriber.close(1000, "Client went away")

        watcher = asyncio.create_task(watch_disconnect())
        try:
            async for chunk in self._chunks():
                try:
                    async with asyncio.timeout(None) as deadline:
                        self._deadline = deadline
                        if self._subscriber.closed:
                            self._closing()
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                finally:
                    self._deadline = None
            async with asyncio.timeout(CLOSE_GRACE_SECONDS):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (TimeoutError, OSError):
            pass  # a client that stopped reading; it resumes with Last-Event-ID
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


def _sse_control(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


async def open_event_stream(
    services: Services,
    *,
    bearer_token: str | None,
    ticket: str | None,
    project_ids: list[uuid.UUID] | None,
    last_event_id: str | None,
) -> EventStreamResponse:
    """Authorize by bearer token or single-use ticket, then stream: the missed events (or a
    resync), `ready`, and live events with keep-alive comments."""
    token = bearer_token
    if token is None and ticket:
        token = await services.get(TICKETS).redeem(ticket)
        if token is None:
            raise Unauthorized("Unknown, used or expired ticket", code="INVALID_TICKET")
    if token is None:
        raise Unauthorized("Missing bearer token or ticket", code="UNAUTHORIZED")
    streams = EventStreams.of(services)
    grant = await streams.authorize(token)
    subscriber = streams.subscriber(grant, project_ids)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            async for caught_up in streams.catch_up_and_register(
                subscriber, last_event_id=last_event_id
            ):
                if isinstance(caught_up, Resync):
                    yield _sse_control("resync", RESYNC_MESSAGE)
                else:
                    yield caught_up.sse
            yield _sse_control("ready", READY)
            async for item in streams.live(subscriber, grant):
                yield item.sse if isinstance(item, OutgoingEvent) else b": keep-alive\n\n"
        finally:
            streams.release(subscriber, "Stream ended")

    return EventStreamResponse(chunks, subscriber)
