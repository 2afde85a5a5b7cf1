"""The per-instance relay: reads committed events from the outbox and fans them out to the
subscribers connected to this instance.

The relay wakes when a commit in this process writes events, when another instance
announces one on the bus, and on a slow poll (the safety net when the bus drops a
message). Each pass first numbers committed events (the sequencer, ADR 0011), then reads
`position > cursor` in position order, so it never skips a late commit. Each subscriber has
a bounded queue; one that falls behind is closed with a "resume" code instead of growing
without bound or slowing the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

import structlog
from sqlalchemy.exc import SQLAlchemyError

from keel.platform.bus import Bus
from keel.platform.cache import Cache
from keel.platform.db import Database, utcnow
from keel.platform.metrics import OUTBOX_RELAY_LAG
from keel.platform.services import Slot
from keel.platform.tasks import cancel_and_wait
from keel.realtime import sequencer, service
from keel.realtime.service import EventRow, OutgoingEvent, Viewer
from keel.settings import Settings

log = structlog.get_logger("keel.realtime")

CHANNEL: Final = "keel:events"
BATCH: Final = 500
# Subscribers given their heartbeat together (see EventHub._heartbeats).
HEARTBEAT_SLICE: Final = 50
# How long a closing connection may take to flush its close frame before it is dropped.
CLOSE_GRACE_SECONDS: Final = 2.0


class CloseCode:
    """WebSocket close codes of the realtime protocol (docs/realtime.md)."""

    GOING_AWAY = 1001  # the stream ended on this side (released)
    SERVICE_RESTART = 1012  # the instance is shutting down: reconnect and resume
    UNAUTHORIZED = 4401  # no, invalid or expired access token: authenticate again
    SLOW_CONSUMER = 4408  # fell behind the queue limit: reconnect with lastEventId


class Heartbeat:
    """Queue item meaning "nothing happened; prove the connection is alive"."""


class Recheck:
    """Queue item meaning "this subscriber's session or role may have changed: re-validate
    it now" (the session's cached state was invalidated, on this instance or another)."""


HEARTBEAT: Final = Heartbeat()
RECHECK: Final = Recheck()
# A str is a ready-made control message (WebSocket only: pong, error, authenticated).
QueueItem = OutgoingEvent | Heartbeat | Recheck | str


def expire_soon(deadline: asyncio.Timeout) -> None:
    """Bound a write blocked on a client that does not read to the close grace."""
    when = asyncio.get_running_loop().time() + CLOSE_GRACE_SECONDS
    current = deadline.when()
    if current is None or current > when:
        deadline.reschedule(when)


class Subscriber:
    """One connected client: what it may see, where it is, and its bounded queue."""

    __slots__ = (
        "_expiry",
        "_items",
        "_limit",
        "_on_close",
        "_waiter",
        "checked_at",
        "close_code",
        "close_reason",
        "cursor",
        "direct",
        "invalidations",
        "session_key",
        "viewer",
    )

    def __init__(
        self, viewer: Viewer, *, cursor: int, limit: int, session_key: str | None = None
    ) -> None:
        self.viewer = viewer
        self.cursor = cursor
        # The session whose cached state, when invalidated, makes this subscriber re-check.
        self.session_key = session_key
        # When the session and role were last confirmed (monotonic), and how many
        # invalidations have arrived: a re-check counts only if none arrived during it.
        self.checked_at = float("-inf")
        self.invalidations = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._items: deque[QueueItem] = deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._on_close: Callable[[], None] | None = None
        # Writes an event to the client at once if it can (a WebSocket whose socket takes
        # ready-made frames, ADR 0024); tried only while the writer is idle, so order holds.
        self.direct: Callable[[OutgoingEvent], bool] | None = None

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    def offer(self, event: OutgoingEvent) -> None:
        """Queue an event if this subscriber may see it and has not had it yet."""
        if self.close_code is not None or event.id <= self.cursor:
            return
        if not self.viewer.may_see(owner_id=event.owner_id, project_id=event.project_id):
            return
        if self.direct is not None and self._idle() and self.direct(event):
            self.cursor = event.id
            return
        if len(self._items) >= self._limit:
            self.close(CloseCode.SLOW_CONSUMER, "Too far behind; reconnect with lastEventId")
            return
        self._items.append(event)
        self.cursor = event.id
        self._wake()

    def offer_heartbeat(self) -> None:
        if self.close_code is None and not self._items:
            self._items.append(HEARTBEAT)
            self._wake()

    def offer_recheck(self) -> None:
        """The session's state changed somewhere: re-validate before anything else is sent."""
        if self.close_code is not None:
            return
        self.invalidations += 1
        self.checked_at = float("-inf")
        if not self._items or self._items[0] is not RECHECK:
            self._items.appendleft(RECHECK)
        self._wake()

    def offer_control(self, message: str) -> None:
        """Queue a control message; it counts against the same bound as events."""
        if self.close_code is not None:
            return
        if len(self._items) >= self._limit:
            self.close(CloseCode.SLOW_CONSUMER, "Too far behind; reconnect with lastEventId")
            return
        self._items.append(message)
        self._wake()

    def close(self, code: int, reason: str) -> None:
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        self._items.clear()  # the client resumes from its last event; free the memory now
        if self._expiry is not None:
            self._expiry.cancel()
        self._wake()
        if self._on_close is not None:
            self._on_close()

    def on_close(self, callback: Callable[[], None]) -> None:
        self._on_close = callback

    def expire_at(self, when: datetime) -> None:
        """Close with 4401 when the access token expires (re-authentication moves it)."""
        if self._expiry is not None:
            self._expiry.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, when.timestamp() - utcnow().timestamp())
        self._expiry = loop.call_later(
            delay, self.close, CloseCode.UNAUTHORIZED, "Access token expired"
        )

    async def next(self) -> QueueItem | None:
        """The next item to send, or None once the subscriber is closed."""
        while not self._items and self.close_code is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.close_code is not None:
            return None
        return self._items.popleft()

    def _idle(self) -> bool:
        """Whether the writer waits in next() with nothing queued and nothing in hand."""
        return self._waiter is not None and not self._waiter.done()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class EventHub:
    """The relay and subscriber registry of one instance."""

    def __init__(self, *, database: Database, bus: Bus, settings: Settings) -> None:
        self._database = database
        self._bus = bus
        self._settings = settings
        self.cursor = 0
        self._by_owner: dict[uuid.UUID, set[Subscriber]] = {}
        self._admins: set[Subscriber] = set()
        self._by_session: dict[str, set[Subscriber]] = {}
        self._watching: set[int] = set()
        self._wake = asyncio.Event()
        # Whether the next pass must number events: after a local commit, on the poll and on
        # (re)subscribing. A wake from another instance's announcement only reads what it
        # numbered: no sequencer pass (five round trips, and the lock) on the way to delivery.
        self._number = True
        self._passes = asyncio.Lock()  # one relay pass at a time (the relay, tests, CLI)
        self._announce = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.draining = False

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with self._database.sessions() as session:
            self.cursor = await service.latest_event_id(session)
        self._database.connect(service.EVENTS_COMMITTED, self._committed)
        subscribed = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listen(subscribed), name="realtime-bus"),
            asyncio.create_task(self._relay(), name="realtime-relay"),
            asyncio.create_task(self._announcer(), name="realtime-announce"),
            asyncio.create_task(self._heartbeats(), name="realtime-heartbeat"),
            asyncio.create_task(self._purger(), name="realtime-purge"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await subscribed.wait()

    async def stop(self) -> None:
        self._database.disconnect(service.EVENTS_COMMITTED, self._committed)
        self.drain()
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)

    def drain(self) -> None:
        """Close every subscriber so clients reconnect (to another instance) and resume: a
        drain callback of the app's Lifecycle, run as soon as SIGTERM arrives (the server
        waits for open responses before the app's shutdown, and an SSE stream never ends by
        itself)."""
        self.draining = True
        for subscriber in self.subscribers():
            subscriber.close(CloseCode.SERVICE_RESTART, "Server restarting; reconnect and resume")

    # --- subscribers -----------------------------------------------------------------------

    def subscribers(self) -> list[Subscriber]:
        found = list(self._admins)
        for group in self._by_owner.values():
            found.extend(group)
        return found

    @property
    def subscriber_count(self) -> int:
        return len(self._admins) + sum(len(group) for group in self._by_owner.values())

    def register(self, subscriber: Subscriber) -> None:
        if subscriber.viewer.is_admin:
            self._admins.add(subscriber)
        else:
            self._by_owner.setdefault(subscriber.viewer.user_id, set()).add(subscriber)
        if subscriber.session_key is not None:
            self._by_session.setdefault(subscriber.session_key, set()).add(subscriber)

    def unregister(self, subscriber: Subscriber) -> None:
        self._admins.discard(subscriber)
        sessions = self._by_session.get(subscriber.session_key or "")
        if sessions is not None:
            sessions.discard(subscriber)
            if not sessions:
                del self._by_session[subscriber.session_key or ""]
        group = self._by_owner.get(subscriber.viewer.user_id)
        if group is not None:
            group.discard(subscriber)
            if not group:
                del self._by_owner[subscriber.viewer.user_id]

    def update_viewer(self, subscriber: Subscriber, viewer: Viewer) -> None:
        """Re-authentication may change the role (and so what the subscriber sees)."""
        self.unregister(subscriber)
        subscriber.viewer = viewer
        self.register(subscriber)

    def watch(self, cache: Cache) -> None:
        """Re-check subscribers whose session's cached state is invalidated (a logout,
        revocation, role change or deactivation, here or on another instance). Idempotent."""
        if id(cache) not in self._watching:
            self._watching.add(id(cache))
            cache.on_invalidate(self._invalidated)

    def _invalidated(self, keys: Sequence[str] | None) -> None:
        # Session keys end with the session (family) id; None means "everything" (the cache
        # was cleared, e.g. after missing invalidations while Redis was away).
        if keys is None:
            for subscriber in self.subscribers():
                subscriber.offer_recheck()
            return
        for key in keys:
            for subscriber in list(self._by_session.get(key[-36:], ())):
                subscriber.offer_recheck()

    def dispatch(self, event: OutgoingEvent) -> None:
        for subscriber in list(self._by_owner.get(event.owner_id, ())):
            subscriber.offer(event)
        for subscriber in list(self._admins):
            subscriber.offer(event)

    # --- background tasks ------------------------------------------------------------------

    def _committed(self) -> None:
        # Runs right after a local commit that wrote events: on the loop's thread (after-commit
        # work), at once; from another thread (a sync caller), through the loop.
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._local_commit()
        else:
            loop.call_soon_threadsafe(self._local_commit)

    def _local_commit(self) -> None:
        # The relay announces to the other instances once it has numbered the events.
        self._number = True
        self._wake.set()

    async def _relay(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for returns the inner
            # result when a cancellation arrives in the same loop turn as the wake-up, and
            # the cancelled relay went on polling for ever (the shutdown hang; see
            # docs/adr/0018-ops-drain-and-tracing.md).
            try:
                async with asyncio.timeout(self._settings.events_poll_seconds):
                    await self._wake.wait()
            except TimeoutError:
                self._number = True  # the poll: number whatever committed unannounced
            self._wake.clear()
            number, self._number = self._number, False
            try:
                await (self.catch_up() if number else self._dispatch_announced())
            except (SQLAlchemyError, OSError) as exc:
                log.warning("relay_read_failed", error=type(exc).__name__)
                await asyncio.sleep(1)

    async def catch_up(self) -> None:
        """Number what has committed, then dispatch everything after the relay's cursor."""
        async with self._passes:
            oldest = await self._catch_up()
        _report_lag(oldest)
        if oldest is not None:
            # The other readers of numbered events (the webhook fan-out) on the instance that
            # numbered them, after the subscribers' writes rather than before them.
            self._database.send(service.EVENTS_NUMBERED)

    async def _dispatch_announced(self) -> None:
        """Dispatch what other instances numbered and announced (this instance's own commits
        wake a numbering pass of their own)."""
        async with self._passes:
            _report_lag(await self._read_after_cursor())

    async def _catch_up(self) -> datetime | None:
        oldest: datetime | None = None
        while True:
            numbered = await sequencer.number(self._database, floor=self.cursor, limit=BATCH)
            if numbered:
                self._announce.set()  # the other instances read what this pass numbered
            if numbered and numbered[0].position == self.cursor + 1:
                oldest = _older(oldest, self._dispatch_rows(numbered))
            else:  # another instance numbered some events first: read them in order
                oldest = _older(oldest, await self._read_after_cursor())
            if len(numbered) < BATCH:
                return oldest

    async def _read_after_cursor(self) -> datetime | None:
        oldest: datetime | None = None
        while True:
            rows = await sequencer.numbered_after(self._database, after=self.cursor, limit=BATCH)
            oldest = _older(oldest, self._dispatch_rows(rows))
            if len(rows) < BATCH:
                return oldest

    def _dispatch_rows(self, rows: Sequence[EventRow]) -> datetime | None:
        """Dispatch numbered rows in position order; the commit time of the first one."""
        for row in rows:
            if self._admins or row.owner_id in self._by_owner:  # skip building it for nobody
                self.dispatch(service.to_outgoing(row))
            self.cursor = row.position or self.cursor
        return rows[0].created_at if rows else None

    async def _listen(self, subscribed: asyncio.Event) -> None:
        while True:
            try:
                async with self._bus.subscribe(CHANNEL) as queue:
                    subscribed.set()
                    self._number = True  # whatever was announced, or not, before we listened
                    self._wake.set()
                    while True:
                        await queue.get()
                        self._wake.set()
            except Exception as exc:  # e.g. RedisError: keep relaying from the outbox poll
                log.warning("relay_bus_failed", error=type(exc).__name__)
            await asyncio.sleep(1)

    async def _announcer(self) -> None:
        while True:
            await self._announce.wait()
            self._announce.clear()
            try:
                await self._bus.publish(CHANNEL, b"1")
            except Exception as exc:  # other instances still find the event by polling
                log.warning("relay_announce_failed", error=type(exc).__name__)

    async def _heartbeats(self) -> None:
        """Every subscriber gets a heartbeat (a session re-check, then a ping) once per
        interval, in slices over the interval's last quarter: a thousand re-checks and sends
        at once held the loop ~50 ms, and every event delivered meanwhile waited."""
        interval = self._settings.ws_heartbeat_seconds
        while True:
            await asyncio.sleep(interval * 3 / 4)
            subscribers = self.subscribers()
            slices = range(0, len(subscribers), HEARTBEAT_SLICE)
            for start in slices:
                for subscriber in subscribers[start : start + HEARTBEAT_SLICE]:
                    subscriber.offer_heartbeat()
                await asyncio.sleep(interval / 4 / len(slices))
            if not subscribers:
                await asyncio.sleep(interval / 4)

    async def _purger(self) -> None:
        interval = self._settings.events_purge_interval_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await purge(
                    self._database, retention_seconds=self._settings.events_retention_seconds
                )
            except (SQLAlchemyError, OSError) as exc:
                log.warning("event_purge_failed", error=type(exc).__name__)


def _report_lag(oldest: datetime | None) -> None:
    """The relay's lag: how long the oldest event of the pass waited since its commit."""
    OUTBOX_RELAY_LAG.set(0.0 if oldest is None else (utcnow() - oldest).total_seconds())


def _older(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return first or second
    return min(first, second)


HUB: Slot[EventHub] = Slot("realtime")


async def purge(database: Database, *, retention_seconds: int) -> int:
    """Delete outbox rows past the retention window and expired SSE tickets."""
    async with database.transaction() as session:
        removed = await service.purge_events(
            session, older_than=service.retention_cutoff(retention_seconds)
        )
        await service.purge_expired_tickets(session)
    if removed:
        log.info("events_purged", count=removed)
    return removed


async def purge_with_settings(settings: Settings) -> int:
    """`python -m keel purge-events`: one purge with its own database connection."""
    database = Database.from_settings(settings)
    try:
        return await purge(database, retention_seconds=settings.events_retention_seconds)
    finally:
        await database.dispose()
