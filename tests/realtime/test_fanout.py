"""The relay's fan-out (ADR 0024): an idle WebSocket subscriber gets each live event written
straight to its socket, in order, and only while its session check is fresh; everything
else goes through its writer task as before."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select

from keel.app import create_app
from keel.platform.db import utcnow
from keel.platform.websocket_server import text_frame
from keel.realtime import sequencer
from keel.realtime.hub import HEARTBEAT, HUB, EventHub, Subscriber
from keel.realtime.models import Event
from keel.realtime.service import OutgoingEvent, Viewer
from keel.settings import Settings
from tests.conftest import is_postgres, register_user
from tests.realtime.conftest import (
    LiveServer,
    serve_started,
    subscribe,
    write_event,
    write_events,
)


def _event(event_id: int, owner: uuid.UUID) -> OutgoingEvent:
    return OutgoingEvent(
        id=event_id, type="project.updated", owner_id=owner, project_id=owner, json="{}"
    )


def _record_direct(hub: EventHub) -> list[tuple[int, bool]]:
    """Wrap every registered subscriber's direct writer: (event id, written) per attempt."""
    attempts: list[tuple[int, bool]] = []
    for subscriber in hub.subscribers():
        write = subscriber.direct
        assert write is not None, "a WebSocket behind Keel's server writes directly"

        def recorded(event: OutgoingEvent, write: Callable[[OutgoingEvent], bool] = write) -> bool:
            written = write(event)
            attempts.append((event.id, written))
            return written

        subscriber.direct = recorded
    return attempts


async def test_idle_subscribers_get_live_events_written_straight_and_in_order(
    client: httpx.AsyncClient, live: LiveServer
) -> None:
    user = await register_user(client)
    first = await subscribe(live, user.access_token)
    second = await subscribe(live, user.access_token)
    # Keel's server declines per-message compression: one frame serves every subscriber.
    assert first.conn.response is not None
    assert "Sec-WebSocket-Extensions" not in first.conn.response.headers
    hub = live.app.state.services.get(HUB)
    attempts = _record_direct(hub)
    for batch in range(3):
        await write_events(live.app, owner_id=user.id, count=5)
        for ws in (first, second):
            names = [(await ws.next_event())["data"]["name"] for _ in range(5)]
            assert names == [f"bulk {index}" for index in range(5)], batch
    assert attempts, "no event went straight to a socket"
    assert any(written for _, written in attempts)
    await first.close()
    await second.close()


async def test_a_subscriber_whose_session_must_be_rechecked_gets_the_event_after_the_check(
    client: httpx.AsyncClient, live: LiveServer
) -> None:
    user = await register_user(client)
    ws = await subscribe(live, user.access_token)
    hub = live.app.state.services.get(HUB)
    attempts = _record_direct(hub)
    (subscriber,) = hub.subscribers()
    subscriber.offer_recheck()  # as an invalidation of its session's cached state does
    await asyncio.sleep(0.1)  # the writer re-checks (still live) and parks again
    subscriber.checked_at = float("-inf")  # the last check is too old now
    await write_event(live.app, owner_id=user.id, name="after a stale check")
    event = await ws.next_event()
    assert event["data"]["name"] == "after a stale check"
    assert (int(event["id"]), False) in attempts  # refused straight, sent by the writer
    assert subscriber.checked_at > 0  # and the writer checked the session first
    await ws.close()


async def test_a_subscriber_writes_directly_only_while_its_writer_waits() -> None:
    owner = uuid.uuid4()
    subscriber = Subscriber(Viewer(user_id=owner, is_admin=False), cursor=0, limit=10)
    written: list[int] = []
    accept = True

    def direct(event: OutgoingEvent) -> bool:
        if accept:
            written.append(event.id)
        return accept

    subscriber.direct = direct
    subscriber.offer(_event(1, owner))  # no writer waiting: queued
    assert written == []
    assert await subscriber.next() == _event(1, owner)
    waiting = asyncio.create_task(subscriber.next())
    await asyncio.sleep(0)
    subscriber.offer(_event(2, owner))  # the writer waits with nothing in hand: straight
    subscriber.offer(_event(2, owner))  # already had: ignored
    subscriber.offer(_event(3, uuid.uuid4()))  # not visible: ignored
    assert written == [2]
    assert not waiting.done()
    accept = False  # the socket cannot take it now: queued, and the writer wakes
    subscriber.offer(_event(4, owner))
    assert await asyncio.wait_for(waiting, 1) == _event(4, owner)
    assert subscriber.cursor == 4
    subscriber.offer_heartbeat()
    assert await subscriber.next() is HEARTBEAT


def test_a_text_frame_is_the_unmasked_frame_of_the_message() -> None:
    assert text_frame("{}") == b"\x81\x02{}"
    long = "x" * 300
    assert text_frame(long) == b"\x81\x7e\x01\x2c" + long.encode()


class _Timed(Subscriber):
    __slots__ = ("beats",)

    def __init__(self, owner: uuid.UUID) -> None:
        super().__init__(Viewer(user_id=owner, is_admin=False), cursor=0, limit=10)
        self.beats: list[float] = []

    def offer_heartbeat(self) -> None:
        self.beats.append(asyncio.get_running_loop().time())
        super().offer_heartbeat()


async def test_heartbeats_go_out_in_slices_over_the_interval(
    app: FastAPI, make_settings: Callable[..., Settings]
) -> None:
    services = app.state.services
    hub = EventHub(
        database=services.database,
        bus=services.bus,
        settings=make_settings(ws_heartbeat_seconds=0.4),
    )
    subscribers = [_Timed(uuid.uuid4()) for _ in range(120)]
    for subscriber in subscribers:
        hub.register(subscriber)
    started = asyncio.get_running_loop().time()
    task = asyncio.create_task(hub._heartbeats())
    await asyncio.sleep(0.45)
    task.cancel()
    beats = [subscriber.beats for subscriber in subscribers]
    assert all(len(times) == 1 for times in beats), beats
    moments = sorted(times[0] for times in beats)
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert sum(gap > 0.02 for gap in gaps) == 2  # 120 subscribers, 50 at a time: 3 slices
    assert moments[0] - started >= 0.29  # the first slice after three quarters of it


@pytest.fixture
async def polling_slowly(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveServer]:
    """A relay that polls every 30 s: prompt delivery proves a commit signal woke it."""
    app = create_app(make_settings(events_poll_seconds=30))
    async for server in serve_started(app):
        yield server


async def test_a_commit_signal_from_another_thread_wakes_the_relay(
    polling_slowly: LiveServer,
) -> None:
    server = polling_slowly
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        user = await register_user(http)
    ws = await subscribe(server, user.access_token)
    project_id = uuid.uuid4()
    async with server.app.state.services.database.sessions() as session, session.begin():
        # Straight into the outbox: no after-commit signal of its own.
        await session.execute(
            insert(Event).values(
                type="project.updated",
                project_id=project_id,
                owner_id=uuid.UUID(user.id),
                payload={"id": str(project_id), "name": "from a thread"},
                created_at=utcnow(),
            )
        )
    hub = server.app.state.services.get(HUB)
    await asyncio.to_thread(hub._committed)  # as a commit in a worker thread signals
    event = await ws.next_event(timeout=5)
    assert event["data"]["name"] == "from a thread"
    await ws.close()


@pytest.mark.skipif(not is_postgres(), reason="the driver pass is PostgreSQL's")
async def test_the_relay_numbers_on_the_driver_as_the_orm_pass_would(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    database = app.state.services.database
    hub = app.state.services.get(HUB)
    async with hub._passes:  # the relay stays out while this test numbers
        top = hub.cursor
        await write_events(app, owner_id=user.id, count=3)
        rows = await sequencer.number(database, floor=top, limit=2)
        rest = await sequencer.number(database, floor=top, limit=10)
        nothing = await sequencer.number(database, floor=top, limit=10)
        read = await sequencer.numbered_after(database, after=top + 1, limit=10)
        async with database.sessions() as session:
            stored = {
                row.position: row
                for row in (await session.scalars(select(Event).where(Event.position > top))).all()
            }
        # With tracing (SQLAlchemy's events make the spans) the ORM pass runs instead.
        database.direct_statements = False
        try:
            await write_events(app, owner_id=user.id, count=1)
            traced = await sequencer.number(database, floor=top, limit=10)
            read_traced = await sequencer.numbered_after(database, after=top + 3, limit=10)
        finally:
            database.direct_statements = True
        hub.cursor = traced[-1].position or hub.cursor
    numbered: list[Any] = [*rows, *rest]
    assert [row.position for row in numbered] == [top + 1, top + 2, top + 3]
    assert nothing == []
    for row in numbered:
        assert isinstance(row, sequencer.NumberedEvent)
        orm = stored[row.position]
        assert (row.type, row.project_id, row.owner_id, row.payload, row.created_at) == (
            orm.type,
            orm.project_id,
            orm.owner_id,
            orm.payload,
            orm.created_at,
        )
    assert read == numbered[1:]  # another instance's relay reads the same rows
    assert [type(row) for row in traced] == [Event]
    assert [(type(row), row.position) for row in read_traced] == [(Event, top + 4)]
    assert traced[0].position == top + 4
