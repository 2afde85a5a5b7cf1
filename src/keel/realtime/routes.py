"""WebSocket and Server-Sent Events endpoints (thin adapters over the hub and the outbox).

The WebSocket protocol is described in docs/realtime.md and in the OpenAPI description of
GET /api/v1/events.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import Field, ValidationError
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from keel.platform import metrics
from keel.platform.actor import Actor
from keel.platform.auth import AUTHENTICATOR
from keel.platform.deps import CurrentActor, bearer
from keel.platform.errors import Unauthorized, error_responses
from keel.platform.schemas import ApiModel, RequestModel, SafeStr
from keel.platform.services import services_of
from keel.platform.timestamps import iso_z
from keel.realtime import service
from keel.realtime.hub import BATCH, HUB, CloseCode, EventHub, Heartbeat, Subscriber
from keel.realtime.service import OutgoingEvent, Viewer
from keel.realtime.tickets import TICKETS

router = APIRouter(prefix="/api/v1", tags=["realtime"])
log = structlog.get_logger("keel.realtime")

# How long a closing connection may take to flush its close frame before it is dropped.
CLOSE_GRACE_SECONDS = 2.0
MAX_PROJECT_FILTER = 100
READY = '{"type":"ready"}'
PING = '{"type":"ping"}'
PONG = '{"type":"pong"}'


class TicketOut(ApiModel):
    ticket: str = Field(description="Pass as `?ticket=` to GET /api/v1/events, once")
    expires_in: int = Field(description="Seconds until the ticket expires")


class AuthMessage(RequestModel):
    """The first WebSocket message (and any later re-authentication)."""

    type: SafeStr
    access_token: SafeStr = Field(min_length=1, max_length=8192)
    last_event_id: SafeStr | None = Field(default=None, max_length=32)
    project_ids: list[uuid.UUID] | None = Field(default=None, max_length=MAX_PROJECT_FILTER)


def _hub(connection: HTTPConnection) -> EventHub:
    return services_of(connection.app).get(HUB)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a stream was authorized with: the actor, and when its access token expires."""

    actor: Actor
    expires_at: datetime


async def authorize(connection: HTTPConnection, token: str) -> Grant:
    """Verify an access token like any API call (the one Authenticator)."""
    actor = await services_of(connection.app).get(AUTHENTICATOR).authenticate(token)
    assert actor.expires_at is not None  # every access token carries exp
    return Grant(actor=actor, expires_at=actor.expires_at)


async def still_live(connection: HTTPConnection, grant: Grant) -> bool:
    """Whether the stream's session is still live (a cache hit, normally).

    Checked on every heartbeat, so a logout, session revocation, password change or
    deactivation ends open streams within one heartbeat interval, on every instance.
    """
    try:
        await services_of(connection.app).get(AUTHENTICATOR).recheck(grant.actor)
    except Unauthorized:
        return False
    return True


def _viewer(actor: Actor, project_ids: list[uuid.UUID] | None) -> Viewer:
    return Viewer(
        user_id=actor.user_id,
        is_admin=actor.is_admin,
        project_ids=frozenset(project_ids) if project_ids else None,
    )


def _resync_message(reason: str) -> str:
    return orjson.dumps({"type": "resync", "reason": reason}).decode()


RESYNC_REASON = (
    "Events after lastEventId are no longer available (or it is unknown): reload the "
    "state you show, then carry on from here"
)


class Resync:
    """Catch-up item: the events after the client's id are gone; it must reload its state."""


RESYNC = Resync()


async def catch_up_and_register(
    connection: HTTPConnection, subscriber: Subscriber, *, last_event_id: str | None
) -> AsyncIterator[OutgoingEvent | Resync]:
    """Yield what the subscriber missed, in order, then hand it to the relay for live events.

    The hand-over happens, without an await, once the catch-up has reached the relay's
    cursor: everything up to it came from the outbox, everything after comes from the relay,
    and the subscriber's cursor drops anything delivered twice.
    """
    hub = _hub(connection)
    sessions = services_of(connection.app).database.sessions
    async with sessions() as session:
        point = await service.resume_point(session, last_event_id)
    cursor = point.cursor
    if point.resync:
        yield RESYNC
    while True:
        relayed_through = hub.cursor
        async with sessions() as session:
            rows = await service.events_after(
                session, after_id=cursor, viewer=subscriber.viewer, limit=BATCH
            )
            purged = await service.purged_through(session)
        if purged > cursor:  # the retention purge overtook this catch-up
            async with sessions() as session:
                cursor = await service.latest_event_id(session)
            yield RESYNC
            continue
        for row in rows:
            yield service.to_outgoing(row)
            cursor = row.id
        if len(rows) == BATCH:
            continue
        # Every event up to `relayed_through` had committed before the query ran.
        cursor = max(cursor, relayed_through)
        if hub.cursor <= cursor:
            subscriber.cursor = cursor
            hub.register(subscriber)
            return


def _expire_soon(deadline: asyncio.Timeout) -> None:
    when = asyncio.get_running_loop().time() + CLOSE_GRACE_SECONDS
    current = deadline.when()
    if current is None or current > when:
        deadline.reschedule(when)


# --- WebSocket -----------------------------------------------------------------------------


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


class _Connection:
    """The state of one authenticated WebSocket, shared by its reader and writer."""

    __slots__ = ("client_gone", "deadline", "grant", "subscriber", "websocket")

    def __init__(self, websocket: WebSocket, subscriber: Subscriber, grant: Grant) -> None:
        self.websocket = websocket
        self.subscriber = subscriber
        self.grant = grant
        self.client_gone = False
        self.deadline: asyncio.Timeout | None = None
        subscriber.on_close(self._closing)

    def _closing(self) -> None:
        # A send blocked on a client that does not read must not hold the connection open.
        if self.deadline is not None and not self.client_gone:
            _expire_soon(self.deadline)

    async def send(self, text: str) -> None:
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
        while (item := await subscriber.next()) is not None:
            if isinstance(item, OutgoingEvent):
                await self.send(item.json)
            elif isinstance(item, Heartbeat):
                if not await still_live(self.websocket, self.grant):
                    subscriber.close(CloseCode.UNAUTHORIZED, "Session has ended; sign in again")
                    continue
                await self.send(PING)
            else:
                await self.send(item)  # a control message (pong, error, authenticated)
        if not self.client_gone and subscriber.close_code is not None:
            await _close(self.websocket, subscriber.close_code, subscriber.close_reason)

    async def read(self) -> None:
        """Handle client messages: re-authentication and pings."""
        hub = _hub(self.websocket)
        subscriber = self.subscriber
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.client_gone = True
                subscriber.close(1000, "Client went away")
                return
            text = message.get("text")
            kind = _message_type(text)
            if kind == "ping":
                subscriber.offer_control(PONG)
            elif kind == "auth":
                auth = _parse_auth(message)
                if auth is None:
                    subscriber.offer_control(_error("Invalid auth message"))
                    continue
                try:
                    grant = await authorize(self.websocket, auth.access_token)
                except Unauthorized:
                    subscriber.close(CloseCode.UNAUTHORIZED, "Invalid or expired access token")
                    return
                if grant.actor.user_id != self.grant.actor.user_id:
                    subscriber.close(CloseCode.UNAUTHORIZED, "Token belongs to another user")
                    return
                self.grant = grant
                project_ids = subscriber.viewer.project_ids
                hub.update_viewer(
                    subscriber,
                    _viewer(grant.actor, list(project_ids) if project_ids else None),
                )
                subscriber.expire_at(grant.expires_at)
                subscriber.offer_control(
                    orjson.dumps(
                        {
                            "type": "authenticated",
                            "expiresAt": iso_z(grant.expires_at, timespec="seconds"),
                        }
                    ).decode()
                )
            elif kind != "pong":
                subscriber.offer_control(_error("Unknown message type"))


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


@router.websocket("/ws")
async def websocket_events(websocket: WebSocket) -> None:
    """Live project events over WebSocket; the protocol is in docs/realtime.md."""
    hub = _hub(websocket)
    settings = services_of(websocket.app).settings
    await websocket.accept()
    if hub.draining:
        await _close(websocket, CloseCode.GOING_AWAY, "Server shutting down; reconnect")
        return
    try:
        async with asyncio.timeout(settings.ws_auth_timeout_seconds):
            message = await websocket.receive()
    except TimeoutError:
        await _close(websocket, CloseCode.UNAUTHORIZED, "Authentication timed out")
        return
    if message["type"] == "websocket.disconnect":
        return
    auth = _parse_auth(message)
    if auth is None:
        await _close(websocket, CloseCode.UNAUTHORIZED, 'First message must be {"type": "auth", …}')
        return
    try:
        grant = await authorize(websocket, auth.access_token)
    except Unauthorized:
        await _close(websocket, CloseCode.UNAUTHORIZED, "Invalid or expired access token")
        return

    subscriber = Subscriber(
        _viewer(grant.actor, auth.project_ids), cursor=0, limit=settings.ws_queue_size
    )
    connection = _Connection(websocket, subscriber, grant)
    subscriber.expire_at(grant.expires_at)
    metrics.WEBSOCKET_CONNECTIONS.inc()
    reader: asyncio.Task[None] | None = None
    try:
        async for item in catch_up_and_register(
            websocket, subscriber, last_event_id=auth.last_event_id
        ):
            if isinstance(item, Resync):
                await connection.send(_resync_message(RESYNC_REASON))
            else:
                await connection.send(item.json)
        await connection.send(READY)
        reader = asyncio.create_task(connection.read())
        await connection.pump()
    except (WebSocketDisconnect, TimeoutError, OSError):
        pass  # the client went away or stopped reading; it resumes with lastEventId
    finally:
        subscriber.close(CloseCode.GOING_AWAY, "Connection closed")
        hub.unregister(subscriber)
        metrics.WEBSOCKET_CONNECTIONS.dec()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError):
                await reader


# --- Server-Sent Events --------------------------------------------------------------------


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
            _expire_soon(self._deadline)

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


SSE_DESCRIPTION = """
A `text/event-stream` of the project events the caller may see (owners their projects,
admins all), for browsers' `EventSource`.

**Authentication**: `Authorization: Bearer <accessToken>`, or — since `EventSource` cannot
set headers — `?ticket=` from `POST /api/v1/events/tickets` (single use, 30 s).

**Messages**: each event is `id: <event id>`, `event: <type>` (`project.created`,
`project.updated`, `project.deleted`) and `data: {"id", "type", "data": Project,
"timestamp"}`. After the missed events comes `event: ready`. `event: resync` means the
events after your last id are gone (older than the retention window): reload your state.
`: keep-alive` comments arrive every 20 s. The stream ends when the access token expires,
when the client falls too far behind, and on server shutdown: reconnect and resume.

**Resume**: `Last-Event-ID` header (sent by `EventSource` on reconnection) or
`?lastEventId=`: every event after it, in order, once, then live.

**WebSocket**: `GET /api/v1/ws` offers the same stream; first message
`{"type": "auth", "accessToken": "…", "lastEventId": "…"?, "projectIds": [...]?}` within 5 s
(else close 4401), then the missed events, `{"type": "ready"}`, and live events. The server
sends `{"type": "ping"}` heartbeats; re-send `auth` with a fresh token before the old one
expires (else close 4401). Close 4408: you fell behind, reconnect with `lastEventId`.
See docs/realtime.md.
"""


# Each message of the stream, as an SSE parser sees it (keep-alive comments carry no data).
SSE_MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string"},
        "data": {"type": "string", "description": "JSON text of the event"},
        "retry": {"type": "integer"},
    },
}
JSON_ERROR_RESPONSE: dict[str, Any] = {
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
}


@router.get(
    "/events",
    status_code=200,
    summary="Live project events (Server-Sent Events)",
    description=SSE_DESCRIPTION,
    response_class=EventStreamResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": SSE_MESSAGE_SCHEMA}},
            "description": "An endless event stream",
        },
        # Spelled out rather than error_responses(): FastAPI files a `model` response under
        # the route's media type, and errors here are JSON, not an event stream.
        400: JSON_ERROR_RESPONSE | {"description": "Validation failed"},
        401: JSON_ERROR_RESPONSE | {"description": "Missing, invalid or expired credentials"},
    },
)
async def stream_events(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ticket: Annotated[
        str | None, Query(max_length=256, description="Single-use ticket instead of a header")
    ] = None,
    project_id: Annotated[
        list[uuid.UUID] | None,
        Query(alias="projectId", max_length=MAX_PROJECT_FILTER, description="Only these"),
    ] = None,
    last_event_id_query: Annotated[
        str | None, Query(alias="lastEventId", max_length=32, description="Resume after this")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
) -> Response:
    token: str | None = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        token = credentials.credentials
    elif ticket:
        tickets = services_of(request.app).get(TICKETS)
        token = await tickets.redeem(ticket)
        if token is None:
            raise Unauthorized("Unknown, used or expired ticket", code="INVALID_TICKET")
    if token is None:
        raise Unauthorized("Missing bearer token or ticket", code="UNAUTHORIZED")
    grant = await authorize(request, token)
    settings = services_of(request.app).settings
    hub = _hub(request)
    subscriber = Subscriber(
        _viewer(grant.actor, project_id), cursor=0, limit=settings.ws_queue_size
    )
    subscriber.expire_at(grant.expires_at)
    resume_from = last_event_id if last_event_id is not None else last_event_id_query

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            async for caught_up in catch_up_and_register(
                request, subscriber, last_event_id=resume_from
            ):
                if isinstance(caught_up, Resync):
                    yield _sse_control("resync", _resync_message(RESYNC_REASON))
                else:
                    yield caught_up.sse
            yield _sse_control("ready", READY)
            while (item := await subscriber.next()) is not None:
                if isinstance(item, OutgoingEvent):
                    yield item.sse
                elif isinstance(item, Heartbeat):
                    if not await still_live(request, grant):
                        break  # the session ended: the client must sign in again
                    yield b": keep-alive\n\n"
        finally:
            subscriber.close(CloseCode.GOING_AWAY, "Stream ended")
            hub.unregister(subscriber)

    return EventStreamResponse(chunks, subscriber)


def _sse_control(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


@router.post(
    "/events/tickets",
    status_code=201,
    response_model=TicketOut,
    summary="A single-use ticket for GET /api/v1/events (for EventSource)",
    responses=error_responses(Unauthorized),
)
async def create_event_ticket(
    request: Request,
    actor: CurrentActor,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> TicketOut:
    assert credentials is not None  # CurrentActor already required it
    tickets = services_of(request.app).get(TICKETS)
    ticket = await tickets.issue(credentials.credentials)
    log.info("event_ticket_issued", user_id=str(actor.user_id))
    return TicketOut(
        ticket=ticket, expires_in=services_of(request.app).settings.sse_ticket_ttl_seconds
    )
