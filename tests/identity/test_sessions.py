"""Sessions: listing, revoking, password change, deactivation, and revocation at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from keel.app import create_app
from keel.settings import Settings
from tests.conftest import register_user
from tests.identity.conftest import login, make_admin
from tests.platform.test_http import assert_envelope


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_sessions_lists_the_callers_active_sessions(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    second = await client.post(
        "/api/v1/auth/login",
        json={"email": user.email, "password": user.password},
        headers={"User-Agent": "Phone/1.0"},
    )
    stranger = await register_user(client)
    response = await client.get("/api/v1/auth/sessions", headers=user.headers)
    assert response.status_code == 200
    sessions = response.json()["data"]
    assert len(sessions) == 2
    assert {"id", "createdAt", "lastUsedAt", "expiresAt", "userAgent", "ip", "current"} <= set(
        sessions[0]
    )
    assert [s["current"] for s in sessions].count(True) == 1
    assert {s["userAgent"] for s in sessions} >= {"Phone/1.0"}
    assert all(s["ip"] == "203.0.113.10" for s in sessions)
    await client.post("/api/v1/auth/logout", json={"refreshToken": second.json()["refreshToken"]})
    remaining = (await client.get("/api/v1/auth/sessions", headers=user.headers)).json()["data"]
    assert len(remaining) == 1
    assert remaining[0]["current"] is True
    stranger_view = await client.get("/api/v1/auth/sessions", headers=stranger.headers)
    assert len(stranger_view.json()["data"]) == 1


async def test_rotation_keeps_one_session_with_later_last_use(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    pair = (
        await client.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token})
    ).json()
    sessions = (
        await client.get("/api/v1/auth/sessions", headers=_bearer(pair["accessToken"]))
    ).json()["data"]
    assert len(sessions) == 1
    assert sessions[0]["lastUsedAt"] >= sessions[0]["createdAt"]


async def test_another_users_session_id_is_not_found(client: httpx.AsyncClient) -> None:
    victim = await register_user(client)
    attacker = await register_user(client)
    victim_sid = (await client.get("/api/v1/auth/sessions", headers=victim.headers)).json()["data"][
        0
    ]["id"]
    response = await client.delete(f"/api/v1/auth/sessions/{victim_sid}", headers=attacker.headers)
    assert_envelope(response, 404, "NOT_FOUND")
    assert (await client.get("/api/v1/auth/profile", headers=victim.headers)).status_code == 200


@pytest.mark.parametrize("session_id", ["not-a-uuid", "1 OR 1=1", "%27%3B--"])
async def test_revoke_session_with_malformed_id_is_400(
    client: httpx.AsyncClient, session_id: str
) -> None:
    user = await register_user(client)
    response = await client.delete(f"/api/v1/auth/sessions/{session_id}", headers=user.headers)
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "sessionId"  # type: ignore[index]


async def test_revoke_unknown_session_is_404(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    response = await client.delete(f"/api/v1/auth/sessions/{uuid.uuid4()}", headers=user.headers)
    assert_envelope(response, 404, "NOT_FOUND")


async def test_revoking_own_current_session_signs_out(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    sid = (await client.get("/api/v1/auth/sessions", headers=user.headers)).json()["data"][0]["id"]
    assert (
        await client.delete(f"/api/v1/auth/sessions/{sid}", headers=user.headers)
    ).status_code == 204
    assert_envelope(
        await client.get("/api/v1/auth/profile", headers=user.headers), 401, "SESSION_REVOKED"
    )


async def test_password_change_revokes_every_other_session(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    other = (await login(client, user.email, user.password)).json()
    assert (
        await client.get("/api/v1/auth/profile", headers=_bearer(other["accessToken"]))
    ).status_code == 200
    response = await client.post(
        "/api/v1/auth/password",
        json={"currentPassword": user.password, "newPassword": "a brand new passphrase"},
        headers=user.headers,
    )
    assert response.status_code == 204, response.text
    assert (await client.get("/api/v1/auth/profile", headers=user.headers)).status_code == 200
    assert_envelope(
        await client.get("/api/v1/auth/profile", headers=_bearer(other["accessToken"])),
        401,
        "SESSION_REVOKED",
    )
    assert_envelope(
        await client.post("/api/v1/auth/refresh", json={"refreshToken": other["refreshToken"]}),
        401,
        "SESSION_REVOKED",
    )
    assert (await login(client, user.email, user.password)).status_code == 401
    assert (await login(client, user.email, "a brand new passphrase")).status_code == 200


async def test_password_change_needs_the_current_password(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    response = await client.post(
        "/api/v1/auth/password",
        json={"currentPassword": "not my password", "newPassword": "a brand new passphrase"},
        headers=user.headers,
    )
    assert_envelope(response, 403, "INVALID_PASSWORD")
    assert (await login(client, user.email, user.password)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"currentPassword": "x", "newPassword": "12345678"}, "newPassword"),
        ({"currentPassword": "x", "newPassword": "short"}, "newPassword"),
        ({"newPassword": "a brand new passphrase"}, "currentPassword"),
        ({"currentPassword": "x", "newPassword": None}, "newPassword"),
    ],
)
async def test_password_change_validates_the_new_password(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    user = await register_user(client)
    response = await client.post("/api/v1/auth/password", json=body, headers=user.headers)
    details = assert_envelope(response, 400, "VALIDATION_ERROR")["details"]
    assert details[0]["field"] == field  # type: ignore[index]


async def test_password_change_requires_authentication(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/password",
        json={"currentPassword": "whatever", "newPassword": "a brand new passphrase"},
    )
    assert_envelope(response, 401, "UNAUTHORIZED")


async def test_deactivated_user_cannot_log_in_refresh_or_use_tokens(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await make_admin(app, client)
    user = await register_user(client)
    assert (await client.get("/api/v1/auth/profile", headers=user.headers)).status_code == 200
    response = await client.patch(
        f"/api/v1/users/{user.id}", json={"isActive": False}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["isActive"] is False
    assert_envelope(
        await client.get("/api/v1/auth/profile", headers=user.headers), 401, "SESSION_REVOKED"
    )
    assert_envelope(
        await client.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token}),
        401,
        "SESSION_REVOKED",
    )
    assert_envelope(await login(client, user.email, user.password), 401, "INVALID_CREDENTIALS")


async def test_inactive_user_with_a_live_family_cannot_refresh(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    async with app.state.services.database.sessions() as session, session.begin():
        await session.execute(text("UPDATE users SET is_active = false"))
    assert_envelope(
        await client.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token}),
        401,
        "SESSION_REVOKED",
    )


async def test_revocation_reaches_every_instance(
    make_settings: Callable[..., Settings], redis_url: str | None
) -> None:
    if redis_url is None:
        pytest.skip("several instances share state through Redis")
    config = make_settings(rate_limit_enabled=False)
    first, second = create_app(config), create_app(config)
    async with (
        LifespanManager(first, startup_timeout=30, shutdown_timeout=30),
        LifespanManager(second, startup_timeout=30, shutdown_timeout=30),
    ):
        a = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=first, client=("192.0.2.1", 1)),
            base_url="http://keel.test",
        )
        b = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=second, client=("192.0.2.1", 1)),
            base_url="http://keel.test",
        )
        async with a, b:
            user = await register_user(a)
            # Both instances hold the session as live in their in-process cache.
            assert (await a.get("/api/v1/auth/profile", headers=user.headers)).status_code == 200
            assert (await b.get("/api/v1/auth/profile", headers=user.headers)).status_code == 200
            logout = await a.post("/api/v1/auth/logout", json={"refreshToken": user.refresh_token})
            assert logout.status_code == 204
            # The other instance drops its copy when the invalidation arrives over pub/sub
            # (milliseconds); poll rather than assume it is instantaneous.
            statuses = []
            for _ in range(100):
                statuses.append(
                    (await b.get("/api/v1/auth/profile", headers=user.headers)).status_code
                )
                if statuses[-1] == 401:
                    break
                await asyncio.sleep(0.02)
            assert statuses[-1] == 401, statuses
