"""Edges of the identity building blocks that HTTP tests cannot reach deterministically."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import FastAPI

from keel.audit import service as audit
from keel.cli import run_create_admin as create_admin
from keel.identity import sessions, throttle
from keel.identity.service import IDENTITY
from keel.platform.actor import Actor
from keel.platform.errors import Forbidden
from keel.platform.security import TokenCodec, load_signing_key
from keel.settings import Settings
from tests.conftest import register_user
from tests.identity.conftest import login


async def test_memory_throttle_forgets_expired_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle, "MEMORY_PRUNE_AT", 1)
    limiter = throttle.MemoryLoginThrottle(window_seconds=0, lockout_seconds=60)
    scopes = [throttle.Scope.account(f"u{i}@example.com", 2) for i in range(3)]
    for _ in range(3):
        # Each window has ended by the next failure: counts restart, nothing locks.
        assert (await limiter.record_failure(scopes)).locked == []
    assert await limiter.retry_after(scopes) == 0
    locking = throttle.MemoryLoginThrottle(window_seconds=60, lockout_seconds=60)
    scope = throttle.Scope.ip("192.0.2.9", 1)
    assert (await locking.record_failure([scope])).locked == [scope]
    assert 0 < await locking.retry_after([scope]) <= 60


async def test_concurrent_registrations_of_one_email_yield_one_account(
    client: httpx.AsyncClient,
) -> None:
    body = {"email": "race@example.com", "password": "racing passphrase", "name": "Race"}
    responses = await asyncio.gather(
        *(client.post("/api/v1/auth/register", json=body) for _ in range(3))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409]


async def test_authenticate_token_and_empty_session_list(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    identity = app.state.services.get(IDENTITY)
    actor = await sessions.authenticate_token(identity, token=user.access_token)
    assert str(actor.user_id) == user.id
    assert not actor.is_admin
    stranger = Actor(user_id=uuid.uuid4(), role="user", session_id=uuid.uuid4())
    async with app.state.services.database.sessions() as session:
        assert await sessions.list_sessions(session, stranger) == []
        with pytest.raises(Forbidden):
            await audit.list_entries(
                session, stranger, filters=audit.AuditFilter(), page=1, limit=10
            )


def test_asymmetric_codec_needs_a_matching_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a private key"):
        TokenCodec(algorithm="RS256", secret="s" * 40, issuer="keel")
    assert TokenCodec(algorithm="HS256", secret="s" * 40, issuer="keel").public_key is None
    ed_file = tmp_path / "ed.pem"
    ed_file.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="does not hold a key for RS256"):
        load_signing_key(algorithm="RS256", key_file=ed_file, data_dir=tmp_path)
    key = load_signing_key(algorithm="EdDSA", key_file=ed_file, data_dir=tmp_path)
    codec = TokenCodec(algorithm="EdDSA", secret="s" * 40, issuer="keel", private_key=key)
    assert codec.public_key is not None
    assert load_signing_key(algorithm="HS256", key_file=None, data_dir=tmp_path) is None
    # Generated once into the data dir, then reused.
    first = load_signing_key(algorithm="EdDSA", key_file=None, data_dir=tmp_path / "d")
    second = load_signing_key(algorithm="EdDSA", key_file=None, data_dir=tmp_path / "d")
    assert first.public_key().public_bytes_raw() == second.public_key().public_bytes_raw()


async def test_create_admin_in_process(client: httpx.AsyncClient, settings: Settings) -> None:
    user = await register_user(client)
    # Warm the role cache, as a running server would have it.
    assert (await client.get("/api/v1/users", headers=user.headers)).status_code == 403
    # The CLI runs its own event loop: a thread, as from a shell.
    message = await asyncio.to_thread(
        create_admin, settings, email=user.email, password="irrelevant phrase", name="X"
    )
    assert message.startswith("promoted administrator")
    new = await asyncio.to_thread(
        create_admin,
        settings,
        email="new-admin@example.com",
        password="new admin phrase",
        name="New",
    )
    assert new.startswith("created administrator new-admin@example.com")
    assert (await login(client, "new-admin@example.com", "new admin phrase")).status_code == 200
    with pytest.raises(ValueError, match="commonly used"):
        create_admin(settings, email="x@example.com", password="password1", name="X")


async def test_redis_throttle_falls_back_to_process_counting_when_redis_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    limiter = throttle.RedisLoginThrottle(client, window_seconds=60, lockout_seconds=60)
    scope = throttle.Scope.account("down@example.com", 2)
    try:
        assert await limiter.retry_after([scope]) == 0  # Redis tried, failed: counted locally
        first = await limiter.record_failure([scope])
        assert first.locked == []
        assert first.count == 1
        second = await limiter.record_failure([scope])
        assert second.locked == [scope]
        assert second.count == 2
        assert await limiter.retry_after([scope]) > 0
        await limiter.reset(scope)
        # Once the back-off has passed, Redis is tried again (and fails again here).
        limiter._outage._retry_at = 0.0
        assert (await limiter.record_failure([throttle.Scope.ip("192.0.2.1", 5)])).locked == []
        limiter._outage._retry_at = 0.0
        await limiter.reset(scope)
    finally:
        await client.aclose()


async def test_purge_sessions_removes_only_fully_expired_families(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from keel.identity.cli import purge_sessions

    old = await register_user(client)
    live = await register_user(client)
    # Rotate the old session once, then let that whole family expire.
    await client.post("/api/v1/auth/refresh", json={"refreshToken": old.refresh_token})
    async with app.state.services.database.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE auth_sessions SET expires_at = :at WHERE user_id = :uid"),
            {
                "at": datetime.now(UTC) - timedelta(days=1),
                "uid": uuid.UUID(old.id)
                if app.state.services.database.dialect == "postgresql"
                else uuid.UUID(old.id).hex,
            },
        )
    assert await purge_sessions(app.state.services.database) == 2
    assert (await client.get("/api/v1/auth/profile", headers=live.headers)).status_code == 200
    async with app.state.services.database.sessions() as session:
        remaining = (await session.execute(text("SELECT count(*) FROM auth_sessions"))).scalar_one()
    assert remaining == 1


def test_failed_sign_ins_are_slowed_more_each_time_up_to_the_ceiling() -> None:
    delays = [throttle.failure_delay(n, ceiling=2.0) for n in range(1, 8)]
    assert delays == [0.0, 0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert throttle.failure_delay(5, ceiling=0) == 0.0


async def test_memory_throttle_reports_the_highest_count_across_scopes() -> None:
    limiter = throttle.MemoryLoginThrottle(window_seconds=60, lockout_seconds=60)
    account = throttle.Scope.account("a@example.com", 10)
    ip = throttle.Scope.ip("192.0.2.7", 10)
    await limiter.record_failure([ip])
    await limiter.record_failure([ip])
    assert (await limiter.record_failure([account, ip])).count == 3
