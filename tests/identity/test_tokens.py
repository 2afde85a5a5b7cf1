"""Tokens: rotation, reuse detection, the grace window, forged and wrong-type tokens, JWKS."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from keel.app import create_app
from keel.platform.security import TokenCodec
from keel.settings import Settings
from tests.conftest import register_user
from tests.identity.conftest import login
from tests.platform.test_http import assert_envelope


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refreshToken": token})


async def _age_used_tokens(app: FastAPI, seconds: int) -> None:
    """Move every 'used at' back in time, as if the grace window had passed."""
    async with app.state.services.database.sessions() as session, session.begin():
        rows = (
            await session.execute(
                text("SELECT id, used_at FROM auth_sessions WHERE used_at IS NOT NULL")
            )
        ).all()
        for row_id, used_at in rows:
            moment = used_at if isinstance(used_at, datetime) else datetime.fromisoformat(used_at)
            await session.execute(
                text("UPDATE auth_sessions SET used_at = :at WHERE id = :id"),
                {"at": moment - timedelta(seconds=seconds), "id": row_id},
            )


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


async def test_access_token_carries_the_spec_claims(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    claims = _claims(user.access_token)
    assert {"sub", "sid", "role", "type", "iat", "exp", "jti"} <= set(claims)
    assert claims["type"] == "access"
    assert claims["sub"] == user.id
    assert claims["exp"] - claims["iat"] == 900  # type: ignore[operator]
    refresh = _claims(user.refresh_token)
    assert refresh["type"] == "refresh"
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600  # type: ignore[operator]
    assert refresh["sid"] == claims["sid"]


async def test_reused_refresh_token_after_grace_revokes_family(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    rotated = (await _refresh(client, user.refresh_token)).json()
    await _age_used_tokens(app, 60)
    reuse = await _refresh(client, user.refresh_token)
    assert_envelope(reuse, 401, "REFRESH_TOKEN_REUSED")
    # The thief's (or the victim's) newer tokens die with the family.
    assert_envelope(await _refresh(client, rotated["refreshToken"]), 401, "SESSION_REVOKED")
    profile = await client.get(
        "/api/v1/auth/profile", headers={"Authorization": f"Bearer {rotated['accessToken']}"}
    )
    assert_envelope(profile, 401, "SESSION_REVOKED")
    async with app.state.services.database.sessions() as session:
        rows = (
            await session.execute(
                text("SELECT actor_id, outcome FROM audit_log WHERE action = 'auth.refresh_reuse'")
            )
        ).all()
    assert len(rows) == 1
    assert rows[0][1] == "failure"


async def test_reused_refresh_token_within_grace_gets_the_same_pair(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)
    first = (await _refresh(client, user.refresh_token)).json()
    second = await _refresh(client, user.refresh_token)
    assert second.status_code == 200
    assert second.json()["refreshToken"] == first["refreshToken"]
    assert second.json()["accessToken"] == first["accessToken"]


async def test_concurrent_refreshes_within_grace_all_get_the_same_pair(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    responses = await asyncio.gather(*(_refresh(client, user.refresh_token) for _ in range(6)))
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    pairs = {(r.json()["accessToken"], r.json()["refreshToken"]) for r in responses}
    assert len(pairs) == 1
    access, refresh = pairs.pop()
    assert (
        await client.get("/api/v1/auth/profile", headers={"Authorization": f"Bearer {access}"})
    ).status_code == 200
    assert (await _refresh(client, refresh)).status_code == 200
    async with app.state.services.database.sessions() as session:
        count = (await session.execute(text("SELECT count(*) FROM auth_sessions"))).scalar_one()
    assert count == 3  # the login, one rotation (not six), the next rotation


async def test_no_raw_refresh_token_is_stored(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = await register_user(client)
    jti = str(_claims(user.refresh_token)["jti"])
    async with app.state.services.database.sessions() as session:
        hashes = (await session.execute(text("SELECT jti_hash FROM auth_sessions"))).scalars().all()
    assert hashes
    assert all(jti not in h and user.refresh_token not in h for h in hashes)


async def test_access_token_is_not_a_refresh_token_and_vice_versa(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)
    assert_envelope(await _refresh(client, user.access_token), 401, "INVALID_TOKEN")
    response = await client.get(
        "/api/v1/auth/profile", headers={"Authorization": f"Bearer {user.refresh_token}"}
    )
    assert_envelope(response, 401, "INVALID_TOKEN")


def _forge(claims: dict[str, object], *, key: str = "", algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key or "another-key-entirely-" + "y" * 32, algorithm=algorithm)


def _alg_none(claims: dict[str, object]) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}."


async def test_forged_tampered_and_expired_tokens_are_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    user = await register_user(client)
    claims = _claims(user.access_token)
    head, payload, signature = user.access_token.split(".")
    elevated = dict(claims, role="admin", sub="00000000-0000-0000-0000-000000000001")
    tampered_payload = base64.urlsafe_b64encode(json.dumps(elevated).encode()).rstrip(b"=").decode()
    codec = TokenCodec(algorithm="HS256", secret=settings.signing_secret, issuer="keel")
    expired = codec.encode(
        subject=user.id,
        token_type="access",
        ttl=timedelta(minutes=15),
        claims={"sid": claims["sid"], "role": "user"},
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    other_issuer = TokenCodec(algorithm="HS256", secret=settings.signing_secret, issuer="evil")
    wrong_issuer = other_issuer.encode(
        subject=user.id,
        token_type="access",
        ttl=timedelta(minutes=5),
        claims={"sid": claims["sid"], "role": "user"},
    )
    bad = {
        "alg_none": _alg_none(claims),
        "other_key": _forge(claims),
        "tampered": f"{head}.{tampered_payload}.{signature}",
        "truncated_signature": f"{head}.{payload}.{signature[:-4]}",
        "expired": expired,
        "wrong_issuer": wrong_issuer,
        "no_sid": codec.encode(
            subject=user.id, token_type="access", ttl=timedelta(minutes=5), claims={"role": "user"}
        ),
        "bad_sub": codec.encode(
            subject="not-a-uuid",
            token_type="access",
            ttl=timedelta(minutes=5),
            claims={"sid": claims["sid"], "role": "user"},
        ),
    }
    for name, token in bad.items():
        response = await client.get(
            "/api/v1/auth/profile", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, name
        assert response.json()["code"] == "INVALID_TOKEN", name
    refresh_claims = _claims(user.refresh_token)
    for token in (_alg_none(refresh_claims), _forge(refresh_claims)):
        assert_envelope(await _refresh(client, token), 401, "INVALID_TOKEN")


async def test_valid_signature_for_an_unknown_session_is_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    user = await register_user(client)
    codec = TokenCodec(algorithm="HS256", secret=settings.signing_secret, issuer="keel")
    token = codec.encode(
        subject=user.id,
        token_type="access",
        ttl=timedelta(minutes=5),
        claims={"sid": "00000000-0000-0000-0000-000000000000", "role": "admin"},
    )
    response = await client.get(
        "/api/v1/auth/profile", headers={"Authorization": f"Bearer {token}"}
    )
    assert_envelope(response, 401, "SESSION_REVOKED")
    refresh = codec.encode(
        subject=user.id,
        token_type="refresh",
        ttl=timedelta(minutes=5),
        claims={"sid": str(_claims(user.refresh_token)["sid"])},
    )
    assert_envelope(await _refresh(client, refresh), 401, "INVALID_TOKEN")


async def test_expired_refresh_row_is_refused(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = await register_user(client)
    async with app.state.services.database.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE auth_sessions SET expires_at = :at"),
            {"at": datetime.now(UTC) - timedelta(seconds=5)},
        )
    assert_envelope(await _refresh(client, user.refresh_token), 401, "INVALID_TOKEN")


async def test_hs256_publishes_no_keys(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json() == {"keys": []}


@pytest.mark.parametrize(("algorithm", "kty"), [("RS256", "RSA"), ("EdDSA", "OKP")])
async def test_asymmetric_tokens_verify_with_the_published_jwks(
    make_settings: Callable[..., Settings], algorithm: str, kty: str
) -> None:
    app = create_app(make_settings(jwt_algorithm=algorithm, rate_limit_enabled=False))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.20", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as client:
            user = await register_user(client)
            jwks = (await client.get("/.well-known/jwks.json")).json()
            assert (
                await client.get("/api/v1/auth/profile", headers=user.headers)
            ).status_code == 200
            assert (await _refresh(client, user.refresh_token)).status_code == 200
            # Signed by the app, an HS256 token keyed with the public key is still refused.
            forged = _forge(_claims(user.access_token), key="k" * 40)
            forged_response = await client.get(
                "/api/v1/auth/profile", headers={"Authorization": f"Bearer {forged}"}
            )
            assert forged_response.status_code == 401
    [key] = jwks["keys"]
    assert key["kty"] == kty
    assert key["alg"] == algorithm
    header = jwt.get_unverified_header(user.access_token)
    assert header["kid"] == key["kid"]
    assert header["alg"] == algorithm
    public = jwt.PyJWK(key).key
    claims = jwt.decode(user.access_token, public, algorithms=[algorithm], issuer="keel")
    assert claims["sub"] == user.id


async def test_access_token_is_refused_right_after_its_session_is_revoked(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)
    # Warm the cache so the revocation must invalidate it, not just miss it.
    assert (await client.get("/api/v1/auth/profile", headers=user.headers)).status_code == 200
    sid = str(_claims(user.access_token)["sid"])
    other = (await login(client, user.email, user.password)).json()
    other_headers = {"Authorization": f"Bearer {other['accessToken']}"}
    response = await client.delete(f"/api/v1/auth/sessions/{sid}", headers=other_headers)
    assert response.status_code == 204
    assert_envelope(
        await client.get("/api/v1/auth/profile", headers=user.headers), 401, "SESSION_REVOKED"
    )
    assert (await client.get("/api/v1/auth/profile", headers=other_headers)).status_code == 200
