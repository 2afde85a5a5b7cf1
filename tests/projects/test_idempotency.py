"""Idempotency-Key on POST: replay, conflict, per-user scope, expiry, concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from keel.projects import repository
from tests.conftest import RegisteredUser
from tests.platform.test_http import assert_envelope
from tests.projects.conftest import API, count_rows


async def post(
    client: httpx.AsyncClient, user: RegisteredUser, key: str, body: dict[str, object]
) -> httpx.Response:
    return await client.post(API, json=body, headers={**user.headers, "Idempotency-Key": key})


async def test_same_key_and_body_replays_the_first_response(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    key = str(uuid.uuid4())
    first = await post(client, alice, key, {"name": "Once only", "status": "completed"})
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    # The same JSON, written differently, is the same request.
    again = await client.post(
        API,
        content=b'{"status":"completed",  "name":"Once only"}',
        headers={**alice.headers, "Idempotency-Key": key, "content-type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == first.headers["etag"]
    assert await count_rows(app, "projects") == 1
    assert await count_rows(app, "events") == 1


async def test_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    key = "order-42"
    assert (await post(client, alice, key, {"name": "First"})).status_code == 201
    body = assert_envelope(
        await post(client, alice, key, {"name": "Second"}), 422, "IDEMPOTENCY_KEY_REUSED"
    )
    assert "Idempotency-Key" in body["error"]


async def test_keys_are_scoped_per_user(
    client: httpx.AsyncClient, alice: RegisteredUser, bob: RegisteredUser, app: FastAPI
) -> None:
    a = await post(client, alice, "shared-key", {"name": "Same body"})
    b = await post(client, bob, "shared-key", {"name": "Same body"})
    assert a.status_code == b.status_code == 201
    assert "idempotent-replayed" not in b.headers
    assert a.json()["id"] != b.json()["id"]
    assert b.json()["userId"] == bob.id
    assert await count_rows(app, "projects") == 2


async def test_validation_failures_do_not_consume_the_key(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    assert (await post(client, alice, "k1", {"name": "x"})).status_code == 400
    assert (await post(client, alice, "k1", {"name": "Valid now"})).status_code == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "tab\tkey", "ключ"])
async def test_malformed_keys_are_400(
    client: httpx.AsyncClient, alice: RegisteredUser, key: str
) -> None:
    headers = {**alice.headers, "Idempotency-Key": key}
    response = await client.post(
        API, json={"name": "Valid"}, headers={k: v.encode() for k, v in headers.items()}
    )
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "Idempotency-Key"


async def test_an_expired_key_can_be_used_again(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    first = await post(client, alice, "daily", {"name": "Report"})
    async with app.state.services.database.sessions() as session, session.begin():
        await session.execute(
            repository.idempotency_keys.update().values(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
    second = await post(client, alice, "daily", {"name": "Report"})
    assert second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert await count_rows(app, "idempotency_keys") == 1


async def test_twenty_concurrent_posts_with_one_key_create_one_project(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    responses = await asyncio.gather(
        *(post(client, alice, "burst", {"name": "Burst"}) for _ in range(20))
    )
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
    assert await count_rows(app, "projects") == 1
    assert await count_rows(app, "events") == 1
    assert await count_rows(app, "audit_log", "action = 'project.created'") == 1
