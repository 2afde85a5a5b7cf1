"""Events to several endpoints: every endpoint receives each project's events in order.

The suite sends 60 events to 3 endpoints. `make bench` runs the same test at the size of
SPEC §10, 1 000 events to 10 endpoints, through KEEL_TEST_ORDER_EVENTS and
KEEL_TEST_ORDER_ENDPOINTS. Twice (once per backend) a long run of this test froze its process
at 100 % CPU in the main thread (greenlet's thread-state clean-up under a weakref callback,
issue #12). A drain that DBOS dequeued while pytest-asyncio's loop was stopped ran on DBOS's
own loop thread and opened the app's sessions there; job handlers now always run on the app's
loop (keel.jobs.engine.run_on_app_loop, docs/notes-freeze.md)."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import httpx

from tests.conftest import register_user
from tests.webhooks.conftest import API, eventually
from tests.webhooks.receiver import Receiver

ENDPOINTS = int(os.environ.get("KEEL_TEST_ORDER_ENDPOINTS", "3"))
PROJECTS = 4
EVENTS = int(os.environ.get("KEEL_TEST_ORDER_EVENTS", "60"))


async def test_events_reach_every_endpoint_in_project_order(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    user = await register_user(client)
    for n in range(ENDPOINTS):
        created = await client.post(
            API,
            json={"url": f"{receiver.url}/{n}", "events": ["project.created", "project.updated"]},
            headers=user.headers,
        )
        assert created.status_code == 201
    projects = []
    for n in range(PROJECTS):
        response = await client.post(
            "/api/v1/projects", json={"name": f"Ordered {n}"}, headers=user.headers
        )
        projects.append(response.json()["id"])
    # Interleave the projects' updates so that order is a property, not an accident.
    for step in range(EVENTS - PROJECTS):
        project = projects[step % PROJECTS]
        response = await client.patch(
            f"/api/v1/projects/{project}",
            json={"description": str(step)},
            headers=user.headers,
        )
        assert response.status_code == 200

    await eventually(
        lambda: receiver.count() >= EVENTS * ENDPOINTS, seconds=180 if EVENTS <= 200 else 900
    )
    assert len(receiver.unique) == EVENTS * ENDPOINTS
    seen: dict[tuple[str, str], list[int]] = defaultdict(list)
    for item in receiver.requests:
        body = json.loads(item.body)
        step = -1 if body["type"] == "project.created" else int(body["data"]["description"])
        seen[(item.path, body["data"]["id"])].append(step)
    assert len(seen) == ENDPOINTS * PROJECTS
    for steps in seen.values():
        assert steps == sorted(steps)
        assert steps[0] == -1
