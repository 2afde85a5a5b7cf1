"""Fixtures for the projects tests: users, an admin, and direct seeding of many rows."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from keel.platform.actor import SYSTEM_ACTOR_ID
from keel.platform.db import set_rls_actor
from keel.projects import repository
from keel.projects.listing import fold
from keel.settings import Settings
from tests.conftest import RegisteredUser, promote_to_admin, register_user

API = "/api/v1/projects"


def project_row(owner_id: uuid.UUID, *, name: str = "Lone") -> dict[str, Any]:
    """A projects row as `insert_rows` takes it, for tests that write below the service."""
    now = datetime.now(UTC)
    return {
        "id": uuid.uuid4(),
        "user_id": owner_id,
        "name": name,
        "description": None,
        "status": "active",
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "search_name": fold(name),
        "search_description": None,
    }


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # These tests make hundreds of requests per user; the limiter has its own tests.
    return make_settings(rate_limit_enabled=False)


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> RegisteredUser:
    return await register_user(client, name="Alice")


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> RegisteredUser:
    return await register_user(client, name="Bob")


@pytest.fixture
async def admin(client: httpx.AsyncClient, app: FastAPI) -> RegisteredUser:
    user = await register_user(client, name="Admin")
    await promote_to_admin(app, user.id)
    response = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    )
    assert response.status_code == 200, response.text
    user.access_token = response.json()["accessToken"]
    return user


async def create(client: httpx.AsyncClient, user: RegisteredUser, **body: Any) -> dict[str, Any]:
    body.setdefault("name", f"Project {uuid.uuid4().hex[:8]}")
    response = await client.post(API, json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


@dataclass
class Seeded:
    ids: list[uuid.UUID]


async def seed(
    app: FastAPI,
    owner: RegisteredUser,
    count: int,
    *,
    name: Callable[[int], str] = lambda i: f"Seeded {i:05d}",
    description: Callable[[int], str | None] = lambda i: None,
    status: Callable[[int], str] = lambda i: "active",
    created_at: Callable[[int], datetime] | None = None,
    updated_at: Callable[[int], datetime] | None = None,
) -> list[uuid.UUID]:
    """Insert projects straight into the database (fast), as the service would store them."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        created = created_at(i) if created_at else base + timedelta(seconds=i)
        desc = description(i)
        rows.append(
            {
                "id": uuid.uuid4(),
                "user_id": uuid.UUID(owner.id),
                "name": name(i),
                "description": desc,
                "status": status(i),
                "version": 1,
                "created_at": created,
                "updated_at": updated_at(i) if updated_at else created,
                "search_name": fold(name(i)),
                "search_description": None if desc is None else fold(desc),
            }
        )
    async with app.state.services.database.sessions() as session, session.begin():
        await set_rls_actor(session, user_id=SYSTEM_ACTOR_ID, role="system")
        if rows:
            await session.execute(repository.projects.insert(), rows)
    return [row["id"] for row in rows]


async def count_rows(app: FastAPI, table: str, where: str = "", **params: Any) -> int:
    async with app.state.services.database.sessions() as session, session.begin():
        await set_rls_actor(session, user_id=SYSTEM_ACTOR_ID, role="system")
        sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int((await session.execute(text(sql), params)).scalar_one())


async def list_all(
    client: httpx.AsyncClient, user: RegisteredUser, **params: Any
) -> list[dict[str, Any]]:
    """Every project of a listing, following cursors to the end."""
    params.setdefault("limit", 100)
    response = await client.get(API, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    items: list[dict[str, Any]] = body["data"]
    while body["pagination"]["nextCursor"]:
        response = await client.get(
            API,
            params={**params, "cursor": body["pagination"]["nextCursor"]},
            headers=user.headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["data"])
    return items
