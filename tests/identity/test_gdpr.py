"""GDPR: export of the caller's data (Art. 20) and account deletion (Art. 17)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from tests.conftest import is_postgres, promote_to_admin, register_user
from tests.identity.conftest import login
from tests.platform.test_http import assert_envelope


async def _add_project(app: FastAPI, owner_id: str, name: str) -> str:
    project_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with app.state.services.database.sessions() as session, session.begin():
        if is_postgres():
            await session.execute(text("SELECT set_config('keel.role', 'system', true)"))
        await session.execute(
            text(
                "INSERT INTO projects (id, user_id, name, description, status, version, "
                "created_at, updated_at) VALUES (:id, :uid, :name, NULL, 'active', 1, :now, :now)"
            ),
            {
                "id": project_id if is_postgres() else project_id.hex,
                "uid": uuid.UUID(owner_id) if is_postgres() else uuid.UUID(owner_id).hex,
                "name": name,
                "now": now,
            },
        )
    return str(project_id)


async def _count(app: FastAPI, sql: str) -> int:
    async with app.state.services.database.sessions() as session, session.begin():
        if is_postgres():
            await session.execute(text("SELECT set_config('keel.role', 'system', true)"))
        return int((await session.execute(text(sql))).scalar_one())


async def test_export_contains_profile_sessions_projects_and_audit(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    other = await register_user(client)
    mine = await _add_project(app, user.id, "Mine")
    await _add_project(app, other.id, "Theirs")
    response = await client.get("/api/v1/auth/export", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["email"] == user.email
    assert body["user"]["isActive"] is True
    assert [p["id"] for p in body["projects"]] == [mine]
    assert body["projects"][0]["name"] == "Mine"
    assert len(body["sessions"]) == 1
    assert "auth.register" in {entry["action"] for entry in body["auditLog"]}
    assert user.password not in response.text
    assert "passwordHash" not in response.text
    assert "argon2" not in response.text


async def test_delete_account_erases_user_projects_and_sessions(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    survivor = await register_user(client)
    await _add_project(app, user.id, "Gone")
    await _add_project(app, survivor.id, "Stays")
    wrong = await client.request(
        "DELETE",
        "/api/v1/auth/account",
        json={"password": "not my password"},
        headers=user.headers,
    )
    assert_envelope(wrong, 403, "INVALID_PASSWORD")
    response = await client.request(
        "DELETE", "/api/v1/auth/account", json={"password": user.password}, headers=user.headers
    )
    assert response.status_code == 204, response.text
    assert await _count(app, "SELECT count(*) FROM users") == 1
    assert await _count(app, "SELECT count(*) FROM projects") == 1
    assert_envelope(
        await client.get("/api/v1/auth/profile", headers=user.headers), 401, "SESSION_REVOKED"
    )
    assert_envelope(await login(client, user.email, user.password), 401, "INVALID_CREDENTIALS")
    assert (await client.get("/api/v1/auth/profile", headers=survivor.headers)).status_code == 200
    assert (
        await _count(app, "SELECT count(*) FROM audit_log WHERE action = 'auth.account_delete'")
        == 1
    )


async def test_delete_account_needs_a_body(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    response = await client.request("DELETE", "/api/v1/auth/account", headers=user.headers)
    assert_envelope(response, 400, "VALIDATION_ERROR")


async def test_delete_account_announces_each_project_and_refreshes_admin_lists(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    admin = await register_user(client)
    await promote_to_admin(app, admin.id)
    admin_headers = {
        "Authorization": "Bearer "
        + (await login(client, admin.email, admin.password)).json()["accessToken"]
    }
    for name in ("First doomed", "Second doomed"):
        created = await client.post("/api/v1/projects", json={"name": name}, headers=user.headers)
        assert created.status_code == 201, created.text
    before = await client.get("/api/v1/projects", headers=admin_headers)  # now cached
    assert before.json()["pagination"]["total"] == 2

    response = await client.request(
        "DELETE", "/api/v1/auth/account", json={"password": user.password}, headers=user.headers
    )
    assert response.status_code == 204, response.text

    after = await client.get("/api/v1/projects", headers=admin_headers)
    assert after.json()["data"] == []
    assert after.json()["pagination"]["total"] == 0
    deleted_events = "SELECT count(*) FROM events WHERE type = 'project.deleted'"
    assert await _count(app, deleted_events) == 2
    assert await _count(app, "SELECT count(*) FROM audit_log WHERE action = 'project.deleted'") == 2
