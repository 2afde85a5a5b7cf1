"""Realtime routes: the WebSocket and Server-Sent Events endpoints and their OpenAPI docs
(the streams themselves are websocket.py and sse.py over catchup.py and the hub).

The WebSocket protocol is described in docs/realtime.md and in the OpenAPI description of
GET /api/v1/events.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import Field
from starlette.responses import Response

from keel.platform.deps import CurrentActor, bearer
from keel.platform.errors import Unauthorized, error_responses
from keel.platform.schemas import ApiModel
from keel.platform.services import services_of
from keel.realtime.catchup import MAX_PROJECT_FILTER
from keel.realtime.sse import EventStreamResponse, open_event_stream
from keel.realtime.tickets import TICKETS
from keel.realtime.websocket import serve_websocket

router = APIRouter(prefix="/api/v1", tags=["realtime"])
log = structlog.get_logger("keel.realtime")


class TicketOut(ApiModel):
    ticket: str = Field(description="Pass as `?ticket=` to GET /api/v1/events, once")
    expires_in: int = Field(description="Seconds until the ticket expires")


@router.websocket("/ws")
async def websocket_events(websocket: WebSocket) -> None:
    """Live project events over WebSocket; the protocol is in docs/realtime.md."""
    await serve_websocket(websocket)


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
    bearer_token = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        bearer_token = credentials.credentials
    return await open_event_stream(
        services_of(request.app),
        bearer_token=bearer_token,
        ticket=ticket,
        project_ids=project_id,
        last_event_id=last_event_id if last_event_id is not None else last_event_id_query,
    )


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
