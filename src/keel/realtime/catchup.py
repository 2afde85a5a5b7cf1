"""The one path of every event stream front door (WebSocket, SSE, GraphQL, gRPC): a token
becomes a Grant, the subscriber catches up from its last event id, then the hub delivers.

A front door takes `EventStreams.of(services)`, then `authorize(token)`, `subscriber(grant,
project_ids)`, iterates `catch_up_and_register(...)` (events, or RESYNC: reload your state),
iterates `live(...)` and finally calls `release(...)`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.platform.actor import Actor
from keel.platform.auth import AUTHENTICATOR, Authenticator
from keel.platform.errors import Unauthorized
from keel.platform.services import Services
from keel.realtime import service
from keel.realtime.hub import BATCH, HUB, CloseCode, EventHub, Heartbeat, Subscriber
from keel.realtime.service import OutgoingEvent, Viewer

MAX_PROJECT_FILTER = 100
READY = '{"type":"ready"}'
RESYNC_REASON = (
    "Events after lastEventId are no longer available (or it is unknown): reload the "
    "state you show, then carry on from here"
)
RESYNC_MESSAGE = orjson.dumps({"type": "resync", "reason": RESYNC_REASON}).decode()


class Resync:
    """Catch-up item: the events after the client's id are gone; it must reload its state."""


RESYNC = Resync()


@dataclass(frozen=True, slots=True)
class Grant:
    """What a stream was authorized with: the actor, and when its access token expires."""

    actor: Actor
    expires_at: datetime


def viewer_of(actor: Actor, project_ids: Collection[uuid.UUID] | None) -> Viewer:
    """What the actor receives: its projects (an admin: all), optionally only some of them."""
    return Viewer(
        user_id=actor.user_id,
        is_admin=actor.is_admin,
        project_ids=frozenset(project_ids) if project_ids else None,
    )


@dataclass(frozen=True, slots=True)
class EventStreams:
    """What a stream front door needs from the app: the token check, the outbox, the hub."""

    hub: EventHub
    sessions: async_sessionmaker[AsyncSession]
    authenticator: Authenticator
    queue_size: int

    @classmethod
    def of(cls, services: Services) -> EventStreams:
        return cls(
            hub=services.get(HUB),
            sessions=services.database.sessions,
            authenticator=services.get(AUTHENTICATOR),
            queue_size=services.settings.ws_queue_size,
        )

    async def authorize(self, token: str) -> Grant:
        """Verify an access token like any API call (the one Authenticator)."""
        actor = await self.authenticator.authenticate(token)
        assert actor.expires_at is not None  # every access token carries exp
        return Grant(actor=actor, expires_at=actor.expires_at)

    async def still_live(self, grant: Grant) -> bool:
        """Whether the stream's session is still live (a cache hit, normally).

        Checked on every heartbeat, so a logout, session revocation, password change or
        deactivation ends open streams within one heartbeat interval, on every instance.
        """
        try:
            await self.authenticator.recheck(grant.actor)
        except Unauthorized:
            return False
        return True

    def subscriber(self, grant: Grant, project_ids: Collection[uuid.UUID] | None) -> Subscriber:
        """A bounded subscriber for the grant, closed (4401) when its token expires; not
        registered with the hub until its catch-up is done."""
        subscriber = Subscriber(
            viewer_of(grant.actor, project_ids), cursor=0, limit=self.queue_size
        )
        subscriber.expire_at(grant.expires_at)
        return subscriber

    async def catch_up_and_register(
        self, subscriber: Subscriber, *, last_event_id: str | None
    ) -> AsyncIterator[OutgoingEvent | Resync]:
        """Yield what the subscriber missed, in order, then hand it to the relay for live events.

        The hand-over happens, without an await, once the catch-up has reached the relay's
        cursor: everything up to it came from the outbox, everything after comes from the
        relay, and the subscriber's cursor drops anything delivered twice.
        """
        hub = self.hub
        async with self.sessions() as session:
            point = await service.resume_point(session, last_event_id)
        cursor = point.cursor
        if point.resync:
            yield RESYNC
        while True:
            relayed_through = hub.cursor
            async with self.sessions() as session:
                rows = await service.events_after(
                    session, after_id=cursor, viewer=subscriber.viewer, limit=BATCH
                )
                purged = await service.purged_through(session)
            if purged > cursor:  # the retention purge overtook this catch-up
                async with self.sessions() as session:
                    cursor = await service.latest_event_id(session)
                yield RESYNC
                continue
            for row in rows:
                yield service.to_outgoing(row)
                cursor = row.position or cursor
            if len(rows) == BATCH:
                continue
            # Every event up to `relayed_through` had committed before the query ran.
            cursor = max(cursor, relayed_through)
            if hub.cursor <= cursor:
                subscriber.cursor = cursor
                hub.register(subscriber)
                return

    async def live(
        self, subscriber: Subscriber, grant: Grant
    ) -> AsyncIterator[OutgoingEvent | Heartbeat]:
        """Live events, and heartbeats once the session is proven still live; ends when the
        subscriber closes, or closes it (4401) when the session has ended."""
        while (item := await subscriber.next()) is not None:
            if isinstance(item, OutgoingEvent):
                yield item
            elif isinstance(item, Heartbeat):
                if not await self.still_live(grant):
                    subscriber.close(CloseCode.UNAUTHORIZED, "Session has ended; sign in again")
                    return
                yield item

    def release(self, subscriber: Subscriber, reason: str) -> None:
        """Close the subscriber (if it is not already) and take it off the hub."""
        subscriber.close(CloseCode.GOING_AWAY, reason)
        self.hub.unregister(subscriber)
