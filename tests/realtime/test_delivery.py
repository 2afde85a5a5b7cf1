"""Delivery guarantees of the realtime stream: after commit only, resume exactly once in
order, late commits never skipped, visibility per subscriber."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from keel.platform.db import utcnow
from keel.realtime.models import Event
from keel.realtime.service import record_project_event
from tests.conftest import RegisteredUser, is_postgres, promote_to_admin, register_user
from tests.realtime.conftest import (
    LiveServer,
    create_project,
    numbered,
    subscribe,
    write_event,
)


async def _login(client: httpx.AsyncClient, user: RegisteredUser) -> str:
    response = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["accessToken"]
    return token


async def test_event_is_delivered_after_commit_with_the_spec_shape(
    client: httpx.AsyncClient, live: LiveServer
) -> None:
    user = await register_user(client)
    ws = await subscribe(live, user.access_token)
    assert ws.caught_up == []
    project = await create_project(client, user, "Shaped event")
    event = await ws.next_event()
    assert set(event) == {"id", "type", "data", "timestamp"}
    assert event["type"] == "project.created"
    assert event["data"]["id"] == project["id"]
    assert event["data"]["name"] == "Shaped event"
    assert event["id"].isdigit()
    assert event["timestamp"].endswith("Z")
    await ws.close()


async def test_rolled_back_change_produces_no_event(
    client: httpx.AsyncClient, app: FastAPI, live: LiveServer
) -> None:
    user = await register_user(client)
    ws = await subscribe(live, user.access_token)

    class Boom(Exception):
        pass

    async def failing_write() -> None:
        async with app.state.services.database.sessions() as session, session.begin():
            await record_project_event(
                session,
                event_type="project.created",
                project_id=uuid.uuid4(),
                owner_id=uuid.UUID(user.id),
                payload={"name": "never"},
            )
            await session.flush()
            raise Boom

    with pytest.raises(Boom):
        await failing_write()
    # An invalid project (400) writes nothing either.
    bad = await client.post("/api/v1/projects", json={"name": "x"}, headers=user.headers)
    assert bad.status_code == 400
    committed = await write_event(app, owner_id=user.id, name="committed")
    event = await ws.next_event()
    assert event["data"]["id"] == str(committed)
    async with app.state.services.database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 1
    await ws.close()


async def test_resume_delivers_missed_events_in_order_once_then_live(
    client: httpx.AsyncClient, app: FastAPI, live: LiveServer
) -> None:
    user = await register_user(client)
    ws = await subscribe(live, user.access_token)
    first = await create_project(client, user, "First one")
    seen = await ws.next_event()
    assert seen["data"]["id"] == first["id"]
    await ws.close()

    missed = [await write_event(app, owner_id=user.id, name=f"missed {i}") for i in range(5)]
    await numbered(app)  # else the relay's next pass may deliver some live, after the catch-up
    resumed = await subscribe(live, user.access_token, last_event_id=seen["id"])
    assert [e["data"]["id"] for e in resumed.caught_up] == [str(p) for p in missed]
    ids = [int(e["id"]) for e in resumed.caught_up]
    assert ids == sorted(set(ids))
    assert ids[0] > int(seen["id"])

    live_one = await write_event(app, owner_id=user.id, name="live")
    event = await resumed.next_event()
    assert event["data"]["id"] == str(live_one)
    assert int(event["id"]) > ids[-1]
    await resumed.close()


async def test_resume_with_a_large_backlog_crosses_batches(
    client: httpx.AsyncClient, app: FastAPI, live: LiveServer
) -> None:
    from tests.realtime.conftest import write_events

    user = await register_user(client)
    await write_event(app, owner_id=user.id)
    await numbered(app)
    async with app.state.services.database.sessions() as session:
        start = await session.scalar(select(func.max(Event.position)))
    await write_events(app, owner_id=user.id, count=1203)
    # Numbered before the client resumes, so they are its backlog (a slow relay would
    # otherwise deliver some live, after "ready", and the catch-up would not cross batches).
    await numbered(app)
    ws = await subscribe(live, user.access_token, last_event_id=str(start))
    ids = [int(e["id"]) for e in ws.caught_up]
    assert len(ids) == 1203
    assert ids == sorted(set(ids))
    await ws.close()


async def test_late_committing_lower_transaction_is_not_skipped(
    client: httpx.AsyncClient, app: FastAPI, live: LiveServer
) -> None:
    """A transaction that wrote first but commits last is still delivered, live and on resume."""
    user = await register_user(client)
    ws = await subscribe(live, user.access_token)
    sessions = app.state.services.database.sessions

    async with sessions() as early, early.begin():
        await record_project_event(
            early,
            event_type="project.created",
            project_id=uuid.uuid4(),
            owner_id=uuid.UUID(user.id),
            payload={"name": "early writer"},
        )
        await early.flush()  # a naive outbox would take its id here
        late_project = await write_event(app, owner_id=user.id, name="late writer")
        first = await ws.next_event()
        assert first["data"]["id"] == str(late_project)
    second = await ws.next_event()
    assert second["data"]["name"] == "early writer"
    assert int(second["id"]) > int(first["id"])

    resumed = await subscribe(live, user.access_token, last_event_id=first["id"])
    assert [e["data"]["name"] for e in resumed.caught_up] == ["early writer"]
    await resumed.close()
    await ws.close()


async def test_interleaved_concurrent_transactions_are_delivered_complete_and_ordered(
    client: httpx.AsyncClient, app: FastAPI, live: LiveServer
) -> None:
    user = await register_user(client)
    ws = await subscribe(live, user.access_token)
    sessions = app.state.services.database.sessions
    rng = random.Random(7)
    count = 24 if is_postgres() else 8

    async def writer(index: int) -> None:
        async with sessions() as session, session.begin():
            await record_project_event(
                session,
                event_type="project.updated",
                project_id=uuid.uuid4(),
                owner_id=uuid.UUID(user.id),
                payload={"name": f"writer {index}"},
            )
            await session.flush()
            await asyncio.sleep(rng.random() * 0.2)

    await asyncio.gather(*(writer(i) for i in range(count)))
    received = await ws.events(count)
    ids = [int(e["id"]) for e in received]
    assert ids == sorted(ids)
    assert {e["data"]["name"] for e in received} == {f"writer {i}" for i in range(count)}
    async with sessions() as session:
        stored = list(
            await session.scalars(
                select(Event.position).where(Event.position.is_not(None)).order_by(Event.position)
            )
        )
    assert ids == stored
    # A client resuming from any delivered id gets exactly the rest.
    for cut in (0, count // 2, count - 1):
        resumed = await subscribe(live, user.access_token, last_event_id=str(ids[cut]))
        assert [int(e["id"]) for e in resumed.caught_up] == ids[cut + 1 :]
        await resumed.close()
    await ws.close()


async def test_a_slow_transaction_holds_back_no_one_and_arrives_in_one_consistent_order(
    client: httpx.AsyncClient, app: FastAPI, live: LiveServer
) -> None:
    """Writers take no lock: while one transaction stays open, the others commit and are
    delivered; the slow one follows once it commits, and every subscriber, live or
    resuming, sees the same order."""
    user = await register_user(client)
    first = await subscribe(live, user.access_token)
    admin = await register_user(client)
    await promote_to_admin(app, admin.id)
    watcher = await subscribe(live, await _login(client, admin))
    sessions = app.state.services.database.sessions

    async with sessions() as slow, slow.begin():
        owner, project = uuid.UUID(user.id), uuid.uuid4()
        if is_postgres():  # its row is written now and stays uncommitted (SQLite: one writer)
            slow.add(
                Event(
                    type="project.updated",
                    project_id=project,
                    owner_id=owner,
                    payload={"name": "slow"},
                    created_at=utcnow(),
                )
            )
            await slow.flush()
        else:
            await record_project_event(
                slow,
                event_type="project.updated",
                project_id=project,
                owner_id=owner,
                payload={"name": "slow"},
            )
        # Writers in other transactions commit (and are delivered) while it is open.
        for index in range(3):
            await write_event(app, owner_id=user.id, name=f"fast {index}")
        early = await first.events(3)
        assert [e["data"]["name"] for e in early] == ["fast 0", "fast 1", "fast 2"]
        await numbered(app)
        async with sessions() as reader:
            unnumbered = await reader.scalar(
                select(func.count()).select_from(Event).where(Event.position.is_(None))
            )
        assert unnumbered == 0  # the open transaction's row is invisible, not in the way
    await numbered(app)
    late = await first.next_event()
    assert late["data"]["name"] == "slow"
    live_ids = [int(e["id"]) for e in [*early, late]]
    assert live_ids == sorted(set(live_ids))

    # The admin saw the same events, in the same order, with the same ids.
    seen = [(e["id"], e["data"]["name"]) for e in await watcher.events(4)]
    assert seen == [(e["id"], e["data"]["name"]) for e in [*early, late]]
    # A resume from before them replays exactly that order, once.
    resumed = await subscribe(live, user.access_token, last_event_id=str(live_ids[0] - 1))
    assert [(e["id"], e["data"]["name"]) for e in resumed.caught_up] == seen
    for ws in (first, watcher, resumed):
        await ws.close()


@pytest.mark.skipif(not is_postgres(), reason="concurrent writers need PostgreSQL")
async def test_writers_take_no_lock_while_the_sequencer_runs(
    client: httpx.AsyncClient, app: FastAPI, live: LiveServer
) -> None:
    """A sequencer pass (of any instance) holding its lock does not block a commit; the
    event is numbered once the pass ends."""
    from sqlalchemy import text

    from keel.realtime.sequencer import SEQUENCER_LOCK_KEY

    user = await register_user(client)
    ws = await subscribe(live, user.access_token)
    async with app.state.services.database.primary.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEQUENCER_LOCK_KEY})
        await asyncio.wait_for(write_event(app, owner_id=user.id, name="unblocked"), 10)
        await holder.rollback()
    event = await ws.next_event()
    assert event["data"]["name"] == "unblocked"
    await ws.close()


async def test_subscribers_see_only_projects_they_may_see(
    client: httpx.AsyncClient, app: FastAPI, live: LiveServer
) -> None:
    alice = await register_user(client)
    bob = await register_user(client)
    boss = await register_user(client)
    await promote_to_admin(app, boss.id)
    boss_token = await _login(client, boss)

    alice_ws = await subscribe(live, alice.access_token)
    bob_ws = await subscribe(live, bob.access_token)
    admin_ws = await subscribe(live, boss_token)
    alice_project = await create_project(client, alice, "Alice project")
    bob_project = await create_project(client, bob, "Bob project")
    filtered = await subscribe(live, alice.access_token, project_ids=[alice_project["id"]])

    assert (await alice_ws.next_event())["data"]["id"] == alice_project["id"]
    assert (await bob_ws.next_event())["data"]["id"] == bob_project["id"]
    admin_seen = await admin_ws.events(2)
    assert [e["data"]["id"] for e in admin_seen] == [alice_project["id"], bob_project["id"]]

    await write_event(app, owner_id=alice.id, name="other alice project")
    renamed = await client.patch(
        f"/api/v1/projects/{alice_project['id']}",
        json={"name": "Alice renamed"},
        headers=alice.headers,
    )
    assert renamed.status_code == 200, renamed.text
    filtered_event = await filtered.next_event()
    assert filtered_event["type"] == "project.updated"
    assert filtered_event["data"]["name"] == "Alice renamed"
    # Bob never got Alice's events: his next one is his own.
    await write_event(app, owner_id=bob.id, name="bob again")
    assert (await bob_ws.next_event())["data"]["name"] == "bob again"
    for ws in (alice_ws, bob_ws, admin_ws, filtered):
        await ws.close()


async def test_deleted_project_event_reaches_owner(
    client: httpx.AsyncClient, live: LiveServer
) -> None:
    user = await register_user(client)
    project = await create_project(client, user, "Short lived")
    ws = await subscribe(live, user.access_token)
    deleted = await client.delete(f"/api/v1/projects/{project['id']}", headers=user.headers)
    assert deleted.status_code == 204, deleted.text
    event: dict[str, Any] = await ws.next_event()
    assert event["type"] == "project.deleted"
    assert event["data"]["id"] == project["id"]
    await ws.close()
