"""`projectEvents`: the same outbox, relay and visibility as WebSocket/SSE (docs/realtime.md)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.websockets import WebSocket

from keel.graphql.context import GraphQLContext
from keel.platform.auth import AUTHENTICATOR
from keel.platform.errors import AppError, Unauthorized
from keel.realtime.hub import HUB, CloseCode, Heartbeat, Subscriber
from keel.realtime.routes import Resync, catch_up_and_register
from keel.realtime.service import OutgoingEvent, Viewer


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
    services = context.services
    hub = services.get(HUB)
    if hub.draining:
        raise GoingAway()
    subscriber = Subscriber(
        Viewer(user_id=actor.user_id, is_admin=actor.is_admin),
        cursor=0,
        limit=services.settings.ws_queue_size,
    )
    if actor.expires_at is not None:
        subscriber.expire_at(actor.expires_at)
    websocket = context.request
    if not isinstance(websocket, WebSocket):  # pragma: no cover - HTTP refuses subscriptions
        raise GoingAway()
    try:
        async for missed in catch_up_and_register(
            websocket, subscriber, last_event_id=last_event_id
        ):
            if isinstance(missed, Resync):
                raise ResyncRequired()
            yield orjson.loads(missed.json)
        while (item := await subscriber.next()) is not None:
            if isinstance(item, OutgoingEvent):
                yield orjson.loads(item.json)
            elif isinstance(item, Heartbeat):
                try:
                    await services.get(AUTHENTICATOR).recheck(actor)
                except Unauthorized:
                    subscriber.close(CloseCode.UNAUTHORIZED, "Session has ended; sign in again")
        if subscriber.close_code == CloseCode.UNAUTHORIZED:
            context.forget_actor()
            await _close_socket(context, CloseCode.UNAUTHORIZED, subscriber.close_reason)
            raise Unauthorized(subscriber.close_reason)
        if subscriber.close_code == CloseCode.SLOW_CONSUMER:
            raise FellBehind()
        if subscriber.close_code == CloseCode.GOING_AWAY:
            await _close_socket(context, CloseCode.GOING_AWAY, subscriber.close_reason)
            raise GoingAway()
    finally:
        hub.unregister(subscriber)
        subscriber.close(1000, "Subscription ended")
