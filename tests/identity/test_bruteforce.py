"""Brute force: failures counted per account and per IP, then 429 even with the right password."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from keel.app import create_app
from keel.settings import Settings
from tests.conftest import register_user
from tests.identity.conftest import login
from tests.platform.test_http import assert_envelope


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        rate_limit_enabled=False,
        login_max_failures_per_account=3,
        login_max_failures_per_ip=6,
        login_lockout_seconds=120,
    )


async def _audit(app: FastAPI, action: str) -> list[tuple[object, ...]]:
    async with app.state.services.database.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT actor_id, outcome, target_type, ip FROM audit_log "
                "WHERE action = :action ORDER BY id"
            ),
            {"action": action},
        )
        return [tuple(r) for r in rows.all()]


async def test_account_locks_after_threshold_even_with_right_password(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    for _ in range(3):
        assert_envelope(
            await login(client, user.email, "wrong password!"), 401, "INVALID_CREDENTIALS"
        )
    locked = await login(client, user.email, user.password)
    assert_envelope(locked, 429, "LOGIN_LOCKED")
    assert 0 < int(locked.headers["retry-after"]) <= 120
    lockouts = await _audit(app, "auth.lockout")
    assert len(lockouts) == 1
    assert lockouts[0][2] == "account"
    # Failed attempts were written although each request rolled back.
    failures = [row for row in await _audit(app, "auth.login") if row[1] == "failure"]
    assert len(failures) == 4
    assert all(row[3] == "203.0.113.10" for row in failures)
    # Another account from the same address is not locked yet.
    other = await register_user(client)
    assert (await login(client, other.email, other.password)).status_code == 200


async def test_success_resets_the_account_counter(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    for _ in range(2):
        await login(client, user.email, "wrong password!")
    assert (await login(client, user.email, user.password)).status_code == 200
    for _ in range(2):
        await login(client, user.email, "wrong password!")
    assert (await login(client, user.email, user.password)).status_code == 200


async def test_unknown_accounts_count_against_the_ip(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    for index in range(6):
        response = await login(client, f"ghost{index}@example.com", "whatever it is")
        assert response.status_code == 401
    assert_envelope(await login(client, user.email, user.password), 429, "LOGIN_LOCKED")
    kinds = [row[2] for row in await _audit(app, "auth.lockout")]
    assert kinds == ["ip"]
    # The same account from another address still signs in.
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as elsewhere:
        assert (await login(elsewhere, user.email, user.password)).status_code == 200


async def test_lockout_is_shared_by_instances_through_redis(
    make_settings: Callable[..., Settings], redis_url: str | None
) -> None:
    if redis_url is None:
        pytest.skip("needs Redis: in-process counters are per instance by design")
    config = make_settings(
        rate_limit_enabled=False, login_max_failures_per_account=2, login_lockout_seconds=60
    )
    first, second = create_app(config), create_app(config)

    async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as c:
            yield c

    async with (
        LifespanManager(first, startup_timeout=30, shutdown_timeout=30),
        LifespanManager(second, startup_timeout=30, shutdown_timeout=30),
    ):
        async for a in client_of(first):
            async for b in client_of(second):
                user = await register_user(a)
                await login(a, user.email, "wrong password!")
                await login(b, user.email, "wrong password!")
                assert_envelope(await login(a, user.email, user.password), 429, "LOGIN_LOCKED")
                assert_envelope(await login(b, user.email, user.password), 429, "LOGIN_LOCKED")


async def test_repeated_failures_are_slowed_then_locked(
    make_settings: Callable[..., Settings],
) -> None:
    # A tiny ceiling keeps the test fast while the slow-down path really runs.
    config = make_settings(
        rate_limit_enabled=False,
        login_max_failures_per_account=3,
        login_failure_delay_max_seconds=0.01,
    )
    app = create_app(config)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.9", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as c:
            user = await register_user(c)
            for _ in range(2):
                assert_envelope(
                    await login(c, user.email, "wrong password!"), 401, "INVALID_CREDENTIALS"
                )
            assert_envelope(
                await login(c, user.email, "wrong password!"), 401, "INVALID_CREDENTIALS"
            )
            assert_envelope(await login(c, user.email, user.password), 429, "LOGIN_LOCKED")
