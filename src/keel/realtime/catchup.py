"""The one path of every event stream front door (WebSocket, SSE, GraphQL, gRPC): a token
becomes a Grant, the subscriber catches up from its last event id, then the hub delivers.

A front door takes `EventStreams.of(services)`, then `authorize(token)`, `subscriber(grant,
project_ids)`, iterates `catch_up_and_register(...)` (events, or RESYNC: reload your state),
iterates `live(...)` and finally calls `release(...)`.
"""

from __future__ import annotations

import time
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
# A stream's session and role are re-validated at least this often while it delivers
# events, and at once whenever their cached state is invalidated (EventStreams.current).
RECHECK_SECONDS = 1.0
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


def fresh(subscriber: Subscriber, now: float) -> bool:
    """Whether the subscriber's session and role were confirmed under RECHECK_SECONDS ago
    (monotonic `now`) with no invalidation since: an event may go out without a re-check."""
    return now - subscriber.checked_at < RECHECK_SECONDS


@dataclass(frozen=True, slots=True)
class EventStreams:
    """What a stream front door needs from the app: the token check, the outbox, the hub."""

    hub: EventHub
    sessions: async_sessionmaker[AsyncSession]
    authenticator: Authenticator
    queue_size: int

    @classmethod
    def of(cls, services: Services) -> EventStreams:
        hub = services.get(HUB)
        hub.watch(services.cache)
        return cls(
            hub=hub,
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
        """Whether the stream's session is still live (a cache hit, normally)."""
        try:
            await self.authenticator.recheck(grant.actor)
        except Unauthorized:
            return False
        return True

    async def current(self, subscriber: Subscriber, grant: Grant, *, force: bool = False) -> bool:
        """Re-validate the stream against its session's and user's state now: False (and
        the subscriber closed with 4401) once the session has ended; a changed role changes
        what the subscriber sees from here on.

        Runs before every delivered event, answered from the session cache (a dict lookup
        on this instance). It is skipped when the last check is under RECHECK_SECONDS old
        and no invalidation of the session's state has arrived since: a logout, revocation,
        role change or deactivation on any instance drops that state and wakes the
        subscriber (EventHub.watch), so nothing is delivered once the change is known.
        """
        started = time.monotonic()
        if not force and fresh(subscriber, started):
            return True
        seen = subscriber.invalidations
        try:
            actor = await self.authenticator.recheck(grant.actor)
        except Unauthorized:
            subscriber.close(CloseCode.UNAUTHORIZED, "Session has ended; sign in again")
            return False
        if actor.is_admin != subscriber.viewer.is_admin:
            self.hub.update_viewer(subscriber, viewer_of(actor, subscriber.viewer.project_ids))
        if subscriber.invalidations == seen:  # else a newer change arrived meanwhile: recheck
            subscriber.checked_at = started
        return True

    async def admit(self, subscriber: Subscriber, grant: Grant, event: OutgoingEvent) -> bool:
        """Whether to deliver the event to this subscriber, decided as of now."""
        if not await self.current(subscriber, grant):
            return False
        return subscriber.viewer.may_see(owner_id=event.owner_id, project_id=event.project_id)

    def subscriber(self, grant: Grant, project_ids: Collection[uuid.UUID] | None) -> Subscriber:
        """A bounded subscriber for the grant, closed (4401) when its token expires; not
        registered with the hub until its catch-up is done."""
        subscriber = Subscriber(
            viewer_of(grant.actor, project_ids),
            cursor=0,
            limit=self.queue_size,
            session_key=str(grant.actor.session_id),
        )
        subscriber.checked_at = time.monotonic()  # authorize() has just checked it
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
                if await self.admit(subscriber, grant, item):
                    yield item
            elif isinstance(item, Heartbeat):
                if await self.current(subscriber, grant, force=True):
                    yield item
            else:
                await self.current(subscriber, grant)

    def release(self, subscriber: Subscriber, reason: str) -> None:
        """Close the subscriber (if it is not already) and take it off the hub."""
        subscriber.close(CloseCode.GOING_AWAY, reason)
        self.hub.unregister(subscriber)
