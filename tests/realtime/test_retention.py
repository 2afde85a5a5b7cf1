"""Retention: old events are purged, and a resume from before the window gets "resync"."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from keel.cli import cli
from keel.platform.db import utcnow
from keel.realtime import hub as realtime_hub
from keel.realtime import service
from keel.realtime.models import Event, EventTicket
from keel.settings import Settings
from tests.conftest import register_user
from tests.realtime.conftest import (
    LiveServer,
    numbered,
    subscribe,
    write_event,
    write_events,
)


async def _age_events(app: FastAPI, *, through_id: int, hours: int = 25) -> None:
    async with app.state.services.database.sessions() as session, session.begin():
        await session.execute(
            update(Event)
            .where(Event.position <= through_id)
            .values(created_at=utcnow() - timedelta(hours=hours))
        )


async def _ids(app: FastAPI) -> list[int]:
    await numbered(app)
    async with app.state.services.database.sessions() as session:
        return list(await session.scalars(select(Event.position).order_by(Event.position)))


async def test_purge_removes_events_past_retention_and_resume_from_before_gets_resync(
    client: httpx.AsyncClient, app: FastAPI, live: LiveServer
) -> None:
    user = await register_user(client)
    await write_events(app, owner_id=user.id, count=4)
    ids = await _ids(app)
    await _age_events(app, through_id=ids[2])
    removed = await realtime_hub.purge(app.state.services.database, retention_seconds=24 * 3600)
    assert removed == 3
    assert await _ids(app) == ids[3:]

    stale = await subscribe(live, user.access_token, last_event_id=str(ids[0]))
    assert stale.caught_up[0]["type"] == "resync"
    assert len(stale.caught_up) == 1  # then straight to ready: it reloads its state
    fresh = await write_event(app, owner_id=user.id, name="after resync")
    assert (await stale.next_event())["data"]["id"] == str(fresh)
    await stale.close()

    # Resuming from the last purged id is fine: nothing after it was purged.
    exact = await subscribe(live, user.access_token, last_event_id=str(ids[2]))
    assert [int(e["id"]) for e in exact.caught_up][:1] == [ids[3]]
    await exact.close()


async def test_unknown_or_malformed_last_event_id_gets_resync(
    client: httpx.AsyncClient, app: FastAPI, live: LiveServer
) -> None:
    user = await register_user(client)
    await write_event(app, owner_id=user.id)
    await numbered(app)
    for bad in ("999999", "abc", "-1"):
        ws = await subscribe(live, user.access_token, last_event_id=bad)
        assert [m["type"] for m in ws.caught_up] == ["resync"]
        await ws.close()


async def test_purge_keeps_the_newest_event_and_is_idempotent(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    assert await realtime_hub.purge(app.state.services.database, retention_seconds=1) == 0  # empty
    await write_events(app, owner_id=user.id, count=3)
    ids = await _ids(app)
    await _age_events(app, through_id=ids[-1])
    assert await realtime_hub.purge(app.state.services.database, retention_seconds=60) == 2
    assert await _ids(app) == ids[-1:]
    assert await realtime_hub.purge(app.state.services.database, retention_seconds=60) == 0
    async with app.state.services.database.sessions() as session:
        assert await service.purged_through(session) == ids[-2]
        assert await service.latest_event_id(session) == ids[-1]


async def test_purge_raises_the_watermark_that_another_purge_set_lower(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    await write_events(app, owner_id=user.id, count=4)
    ids = await _ids(app)
    await _age_events(app, through_id=ids[0])
    assert await realtime_hub.purge(app.state.services.database, retention_seconds=60) == 1
    await _age_events(app, through_id=ids[2])
    assert await realtime_hub.purge(app.state.services.database, retention_seconds=60) == 2
    async with app.state.services.database.sessions() as session:
        assert await service.purged_through(session) == ids[2]


async def test_cli_purge_events_and_expired_tickets(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await register_user(client)
    await write_events(app, owner_id=user.id, count=2)
    ids = await _ids(app)
    await _age_events(app, through_id=ids[0])
    async with app.state.services.database.sessions() as session, session.begin():
        session.add(
            EventTicket(
                ticket_hash=uuid.uuid4().hex,
                sealed_token=b"x",
                expires_at=utcnow() - timedelta(seconds=5),
            )
        )
    monkeypatch.setenv("KEEL_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("KEEL_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("KEEL_DATA_DIR", str(settings.data_dir))
    # The CLI runs its own event loop, as it does from a shell.
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["purge-events"])
    assert result.exit_code == 0, result.output
    assert "purged 1 events" in result.output
    async with app.state.services.database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(EventTicket)) == 0


async def test_a_rewound_outbox_never_reissues_a_relayed_position(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """After a restore the database may hold fewer positions than the relay has delivered:
    numbering continues above the relayed cursor and resumes from before it resync."""
    user = await register_user(client)
    await write_events(app, owner_id=user.id, count=2)
    ids = await _ids(app)
    hub = app.state.services.get(realtime_hub.HUB)
    # Positions delivered before the backup was restored. Set between two relay passes: a
    # pass woken by the commit above may still be running, and would number with the old floor.
    async with hub._passes:
        hub.cursor = ids[-1] + 100
        await write_event(app, owner_id=user.id, name="after restore")
    assert (await _ids(app))[-1] == ids[-1] + 101
    async with app.state.services.database.sessions() as session:
        assert await service.purged_through(session) == ids[-1] + 100
        point = await service.resume_point(session, str(ids[-1]))
    assert point.resync
