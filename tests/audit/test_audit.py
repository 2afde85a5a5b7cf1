"""Audit log: what is recorded, the admin read API with filters, append-only storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.conftest import register_user
from tests.identity.conftest import login, make_admin
from tests.platform.test_http import assert_envelope


async def test_audit_records_the_security_events(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await make_admin(app, client)
    user = await register_user(client)
    await login(client, user.email, "wrong password!")
    await client.post("/api/v1/auth/logout", json={"refreshToken": user.refresh_token})
    response = await client.get("/api/v1/audit?limit=100", headers=admin.headers)
    assert response.status_code == 200, response.text
    entries = response.json()["data"]
    actions = [(e["action"], e["outcome"]) for e in entries]
    assert ("auth.register", "success") in actions
    assert ("auth.login", "failure") in actions
    assert ("auth.login", "success") in actions
    assert ("auth.logout", "success") in actions
    for entry in entries:
        assert entry["ip"] == "203.0.113.10"
        assert entry["requestId"]
    assert user.password not in response.text
    assert user.refresh_token not in response.text


async def test_audit_filters_and_pagination(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await make_admin(app, client)
    user = await register_user(client)
    for _ in range(3):
        await login(client, user.email, user.password)
    by_actor = await client.get(
        f"/api/v1/audit?actor={user.id}&action=auth.login&limit=2", headers=admin.headers
    )
    body = by_actor.json()
    assert body["pagination"] == {
        "page": 1,
        "limit": 2,
        "total": 3,
        "totalPages": 2,
        "nextCursor": None,
    }
    assert all(e["actorId"] == user.id and e["action"] == "auth.login" for e in body["data"])
    times = [e["at"] for e in body["data"]]
    assert times == sorted(times, reverse=True)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    future = await client.get("/api/v1/audit", params={"from": later}, headers=admin.headers)
    assert future.json()["pagination"]["total"] == 0
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    window = await client.get(
        "/api/v1/audit", params={"from": earlier, "to": later}, headers=admin.headers
    )
    assert window.json()["pagination"]["total"] >= 5
    nothing = await client.get("/api/v1/audit?action=nope", headers=admin.headers)
    assert nothing.json() == {
        "data": [],
        "pagination": {
            "page": 1,
            "limit": 20,
            "total": 0,
            "totalPages": 0,
            "nextCursor": None,
        },
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("actor=not-a-uuid", "actor"),
        ("from=yesterday", "from"),
        ("to=2026-01-01T00:00:00", "to"),
        ("limit=500", "limit"),
        ("page=0", "page"),
        ("action=" + "a" * 65, "action"),
    ],
)
async def test_audit_rejects_bad_filters(
    client: httpx.AsyncClient, app: FastAPI, query: str, field: str
) -> None:
    admin = await make_admin(app, client)
    response = await client.get(f"/api/v1/audit?{query}", headers=admin.headers)
    details = assert_envelope(response, 400, "VALIDATION_ERROR")["details"]
    assert details[0]["field"] == field  # type: ignore[index]


async def test_audit_is_for_admins_only(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    assert_envelope(await client.get("/api/v1/audit", headers=user.headers), 403, "FORBIDDEN")
    assert_envelope(await client.get("/api/v1/audit"), 401, "UNAUTHORIZED")


async def test_audit_rows_cannot_be_changed_or_deleted(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register_user(client)
    for statement in ("UPDATE audit_log SET outcome = 'x'", "DELETE FROM audit_log"):
        async with app.state.services.database.sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(text(statement))
            await session.rollback()
