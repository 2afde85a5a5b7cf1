"""`projectEvents`: the same outbox, relay and visibility as WebSocket/SSE (docs/realtime.md)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.websockets import WebSocket

from keel.graphql.context import GraphQLContext
from keel.platform.errors import AppError, Unauthorized
from keel.realtime.catchup import EventStreams, Grant, Resync
from keel.realtime.hub import CloseCode
from keel.realtime.service import OutgoingEvent


class ResyncRequired(AppError):
    """The events after `lastEventId` are gone: reload, then subscribe without it."""

    status_code = 410
    code = "RESYNC_REQUIRED"
    default_message = (
        "Events after lastEventId are no longer available (or it is unknown): reload the "
        "state you show, then subscribe again without lastEventId"
    )


class FellBehind(AppError):
    status_code = 429
    code = "SLOW_CONSUMER"
    default_message = "Too far behind; subscribe again with lastEventId"


class GoingAway(AppError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "Server shutting down; subscribe again (anywhere) with lastEventId"


async def _close_socket(context: GraphQLContext, code: int, reason: str) -> None:
    """End the connection itself, as /api/v1/ws does, when its session has ended."""
    websocket = context.request
    if isinstance(websocket, WebSocket):
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close(code=code, reason=reason)


async def project_events(
    context: GraphQLContext, *, last_event_id: str | None
) -> AsyncIterator[dict[str, Any]]:
    """Yield events (as WebSocket/SSE carry them): the missed ones, then live ones."""
    # Any: JSON-decoded event documents.
    actor = await context.actor()
    assert actor.expires_at is not None  # every access token carries exp
    streams = EventStreams.of(context.services)
    if streams.hub.draining:
        raise GoingAway()
    grant = Grant(actor=actor, expires_at=actor.expires_at)
    subscriber = streams.subscriber(grant, None)
    try:
        async for missed in streams.catch_up_and_register(subscriber, last_event_id=last_event_id):
            if isinstance(missed, Resync):
                raise ResyncRequired()
            yield orjson.loads(missed.json)
        async for item in streams.live(subscriber, grant):
            if isinstance(item, OutgoingEvent):
                yield orjson.loads(item.json)
        if subscriber.close_code == CloseCode.UNAUTHORIZED:
            context.forget_actor()
            await _close_socket(context, CloseCode.UNAUTHORIZED, subscriber.close_reason)
            raise Unauthorized(subscriber.close_reason)
        if subscriber.close_code == CloseCode.SLOW_CONSUMER:
            raise FellBehind()
        await _close_socket(context, CloseCode.GOING_AWAY, subscriber.close_reason)
        raise GoingAway()
    finally:
        streams.release(subscriber, "Subscription ended")
