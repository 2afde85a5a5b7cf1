"""Admin API: list users, change role and activation; authorization on route and service."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from keel.identity import admin
from keel.identity.schemas import UserPatchIn
from keel.identity.service import IDENTITY
from keel.platform.actor import Actor, RequestContext
from keel.platform.errors import Forbidden
from keel.settings import Settings
from tests.conftest import FAST_ARGON2, register_user
from tests.identity.conftest import login, make_admin
from tests.platform.test_http import assert_envelope


async def test_list_users_is_paginated(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await make_admin(app, client)
    for _ in range(4):
        await register_user(client)
    response = await client.get("/api/v1/users?page=2&limit=2", headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pagination"] == {
        "page": 2,
        "limit": 2,
        "total": 5,
        "totalPages": 3,
        "nextCursor": None,
    }
    assert len(body["data"]) == 2
    assert {"id", "email", "name", "role", "isActive", "mfaEnabled", "createdAt"} <= set(
        body["data"][0]
    )
    assert "passwordHash" not in response.text
    past_end = await client.get("/api/v1/users?page=9&limit=2", headers=admin.headers)
    assert past_end.json()["data"] == []


@pytest.mark.parametrize("query", ["page=0", "limit=0", "limit=101", "page=x", "limit=-1"])
async def test_list_users_rejects_bad_paging(
    client: httpx.AsyncClient, app: FastAPI, query: str
) -> None:
    admin = await make_admin(app, client)
    response = await client.get(f"/api/v1/users?{query}", headers=admin.headers)
    assert_envelope(response, 400, "VALIDATION_ERROR")


async def test_admin_api_is_forbidden_to_users(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    assert_envelope(await client.get("/api/v1/users", headers=user.headers), 403, "FORBIDDEN")
    response = await client.patch(
        f"/api/v1/users/{user.id}", json={"role": "admin"}, headers=user.headers
    )
    assert_envelope(response, 403, "FORBIDDEN")
    assert_envelope(await client.get("/api/v1/users"), 401, "UNAUTHORIZED")


async def test_service_enforces_admin_role_again(app: FastAPI) -> None:
    actor = Actor(user_id=uuid.uuid4(), role="user", session_id=uuid.uuid4())
    async with app.state.services.database.sessions() as session:
        with pytest.raises(Forbidden):
            await admin.list_users(session, actor, page=1, limit=10)
        with pytest.raises(Forbidden):
            await admin.update_user(
                session,
                app.state.services.get(IDENTITY),
                actor,
                user_id=actor.user_id,
                changes=UserPatchIn(role="admin"),
                context=RequestContext(),
            )


async def test_role_change_applies_to_existing_tokens_at_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await make_admin(app, client)
    user = await register_user(client)
    assert (await client.get("/api/v1/users", headers=user.headers)).status_code == 403
    promoted = await client.patch(
        f"/api/v1/users/{user.id}", json={"role": "admin"}, headers=admin.headers
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    assert (await client.get("/api/v1/users", headers=user.headers)).status_code == 200
    demoted = await client.patch(
        f"/api/v1/users/{user.id}", json={"role": "user"}, headers=admin.headers
    )
    assert demoted.json()["role"] == "user"
    assert (await client.get("/api/v1/users", headers=user.headers)).status_code == 403
    async with app.state.services.database.sessions() as session:
        rows = (
            (
                await session.execute(
                    text("SELECT details FROM audit_log WHERE action = 'user.role_change'")
                )
            )
            .scalars()
            .all()
        )
    assert len(rows) == 2


async def test_reactivated_user_signs_in_again(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await make_admin(app, client)
    user = await register_user(client)
    url = f"/api/v1/users/{user.id}"
    await client.patch(url, json={"isActive": False}, headers=admin.headers)
    assert (await login(client, user.email, user.password)).status_code == 401
    response = await client.patch(url, json={"isActive": True}, headers=admin.headers)
    assert response.json()["isActive"] is True
    assert (await login(client, user.email, user.password)).status_code == 200
    unchanged = await client.patch(url, json={}, headers=admin.headers)
    assert unchanged.status_code == 200


async def test_admin_cannot_demote_or_deactivate_themselves(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await make_admin(app, client)
    url = f"/api/v1/users/{admin.id}"
    assert_envelope(
        await client.patch(url, json={"role": "user"}, headers=admin.headers), 409, "SELF_CHANGE"
    )
    assert_envelope(
        await client.patch(url, json={"isActive": False}, headers=admin.headers),
        409,
        "SELF_CHANGE",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "superuser"}, "role"),
        ({"isActive": "maybe"}, "isActive"),
        ({"role": None, "email": "x@example.com"}, "email"),
        ({"role": ["admin"]}, "role"),
    ],
)
async def test_patch_user_validates_body(
    client: httpx.AsyncClient, app: FastAPI, body: dict[str, object], field: str
) -> None:
    admin = await make_admin(app, client)
    user = await register_user(client)
    response = await client.patch(f"/api/v1/users/{user.id}", json=body, headers=admin.headers)
    details = assert_envelope(response, 400, "VALIDATION_ERROR")["details"]
    assert details[0]["field"] == field  # type: ignore[index]


async def test_patch_unknown_user_is_404(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await make_admin(app, client)
    response = await client.patch(
        f"/api/v1/users/{uuid.uuid4()}", json={"role": "admin"}, headers=admin.headers
    )
    assert_envelope(response, 404, "NOT_FOUND")


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KEEL_ENV": "test",
        "KEEL_DATABASE_URL": settings.effective_database_url,
        "KEEL_SECRET_KEY": settings.secret_key,
        "KEEL_DATA_DIR": str(settings.data_dir),
        "KEEL_LOG_LEVEL": "WARNING",
        **{f"KEEL_{k.upper()}": str(v) for k, v in FAST_ARGON2.items()},
    }
    if settings.redis_url:
        env["KEEL_REDIS_URL"] = settings.redis_url
    return subprocess.run(
        [sys.executable, "-m", "keel", "create-admin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )


async def test_cli_create_admin_creates_then_promotes(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    created = _cli(
        settings, "--email", "Root@Example.com", "--password", "a root passphrase", "--name", "Root"
    )
    assert created.returncode == 0, created.stderr
    assert "created administrator root@example.com" in created.stdout
    signed_in = await login(client, "root@example.com", "a root passphrase")
    assert signed_in.json()["user"]["role"] == "admin"

    user = await register_user(client)
    assert (await client.get("/api/v1/users", headers=user.headers)).status_code == 403
    promoted = _cli(settings, "--email", user.email, "--password", "ignored passphrase")
    assert promoted.returncode == 0, promoted.stderr
    assert "promoted administrator" in promoted.stdout
    # The existing password is kept.
    assert (await login(client, user.email, user.password)).status_code == 200


async def test_cli_create_admin_validates_input(settings: Settings) -> None:
    result = _cli(settings, "--email", "not-an-email", "--password", "password")
    assert result.returncode == 2
    assert "email" in result.stderr
    assert "commonly used" in result.stderr
