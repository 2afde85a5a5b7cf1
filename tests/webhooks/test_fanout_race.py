"""A drain that starts while the fan-out is writing deliveries must not strand them.

The fan-out skips requesting a drain when one is already requested (`drain_requested_at`);
the drain clears that mark when it starts, then sends what is pending. If the drain could
clear the mark and find nothing pending while the fan-out was between reading the mark and
committing, the fan-out's deliveries would wait for a drain that never comes (seen once in
`make bench`'s 1 000 x 10 run: 9 of 10 000 deliveries never sent). Here the fan-out is held
right after it read the endpoints while the drain runs, both backends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keel.jobs.models import JobHandoff
from keel.realtime.service import events_after
from keel.settings import Settings
from keel.webhooks import dispatch, repository
from keel.webhooks.dispatch import DISPATCHER, fan_out
from keel.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import is_postgres, register_user
from tests.webhooks.conftest import API, FAST, eventually, reset_job_store
from tests.webhooks.receiver import Receiver


@pytest.fixture
async def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    # No job worker and no fan-out loop: the test runs the fan-out and the drain itself.
    if is_postgres():
        await reset_job_store(database_url)
    return make_settings(**{**FAST, "jobs_enabled": False})


async def test_a_drain_starting_during_the_fan_out_still_sends_its_deliveries(
    app: FastAPI,
    client: httpx.AsyncClient,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = app.state.services.database
    dispatcher = app.state.services.get(DISPATCHER)
    user = await register_user(client)
    created = await client.post(
        API,
        json={"url": f"{receiver.url}/race", "events": ["project.created"]},
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    endpoint_id = uuid.UUID(created.json()["id"])

    def numbered(wanted: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:  # the relay has given the events their positions
            async with database.transaction() as session:
                return len(await events_after(session, after_id=0)) >= wanted

        return check

    first = await client.post("/api/v1/projects", json={"name": "One"}, headers=user.headers)
    assert first.status_code == 201
    await eventually(numbered(1))
    assert await fan_out(database) == 1  # one delivery, and a drain requested
    async with database.transaction() as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        assert endpoint.drain_requested_at is not None
        # The engine takes the requested drain: its hand-off row is gone, the drain starts.
        await session.execute(delete(JobHandoff))

    second = await client.post("/api/v1/projects", json={"name": "Two"}, headers=user.headers)
    assert second.status_code == 201
    await eventually(numbered(2))

    reached, proceed = asyncio.Event(), asyncio.Event()
    read_endpoints = repository.active_endpoints_of

    async def held(session: AsyncSession, user_ids: set[uuid.UUID]) -> Sequence[WebhookEndpoint]:
        found = await read_endpoints(session, user_ids)
        reached.set()
        await proceed.wait()
        return found

    monkeypatch.setattr(dispatch.repository, "active_endpoints_of", held)
    fanning = asyncio.create_task(fan_out(database))
    await asyncio.wait_for(reached.wait(), 10)
    draining = asyncio.create_task(dispatcher.drain({"endpoint": str(endpoint_id)}))
    # Without the fan-out's locks the drain finishes here, having seen one delivery.
    await asyncio.wait({draining}, timeout=2)
    proceed.set()
    assert await asyncio.wait_for(fanning, 30) == 1
    await asyncio.wait_for(draining, 30)

    async with database.transaction() as session:
        pending = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        )
        requested = await session.scalar(select(func.count()).select_from(JobHandoff))
    # Every delivery was sent, or a drain to send it is on its way.
    assert pending == 0 or requested, (pending, requested)
    if not requested:
        assert receiver.count() == 2
