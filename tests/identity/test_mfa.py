"""TOTP MFA: enrol, confirm, required at sign-in, replay refused, disable; secret encrypted."""

from __future__ import annotations

import time

import httpx
import pyotp
from fastapi import FastAPI
from sqlalchemy import text

from tests.conftest import RegisteredUser, register_user
from tests.identity.conftest import login
from tests.platform.test_http import assert_envelope


def _next_step_code(totp: pyotp.TOTP) -> str:
    """The code of the next 30 s step: accepted (clock drift) and not yet used."""
    return totp.at(int(time.time()) + totp.interval)


async def _enrol(client: httpx.AsyncClient, user: RegisteredUser) -> pyotp.TOTP:
    setup = await client.post("/api/v1/auth/mfa/setup", headers=user.headers)
    assert setup.status_code == 200, setup.text
    body = setup.json()
    assert body["otpauthUri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(body["secret"])
    enable = await client.post(
        "/api/v1/auth/mfa/enable", json={"code": totp.now()}, headers=user.headers
    )
    assert enable.status_code == 204, enable.text
    return totp


async def test_login_requires_totp_once_enabled(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    totp = await _enrol(client, user)
    assert_envelope(await login(client, user.email, user.password), 401, "MFA_REQUIRED")
    assert_envelope(
        await login(client, user.email, user.password, totp="000000"), 401, "INVALID_TOTP"
    )
    # The code used to enable MFA cannot be replayed; the next time step's code works.
    at_next_step = _next_step_code(totp)
    ok = await login(client, user.email, user.password, totp=at_next_step)
    assert ok.status_code == 200, ok.text
    replay = await login(client, user.email, user.password, totp=at_next_step)
    assert_envelope(replay, 401, "INVALID_TOTP")


async def test_wrong_password_with_mfa_is_plain_invalid_credentials(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)
    totp = await _enrol(client, user)
    response = await login(client, user.email, "wrong password!", totp=totp.now())
    assert_envelope(response, 401, "INVALID_CREDENTIALS")


async def test_secret_is_encrypted_at_rest(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = await register_user(client)
    setup = (await client.post("/api/v1/auth/mfa/setup", headers=user.headers)).json()
    async with app.state.services.database.sessions() as session:
        stored = (
            await session.execute(text("SELECT mfa_secret_encrypted, mfa_enabled FROM users"))
        ).one()
    blob = bytes(stored[0])
    assert setup["secret"].encode() not in blob
    assert len(blob) == 12 + len(setup["secret"]) + 16  # nonce + ciphertext + GCM tag
    assert not stored[1]  # not required until confirmed
    assert (await login(client, user.email, user.password)).status_code == 200


async def test_enable_with_wrong_code_or_twice_fails(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    not_enrolled = await client.post(
        "/api/v1/auth/mfa/enable", json={"code": "123456"}, headers=user.headers
    )
    assert_envelope(not_enrolled, 409, "MFA_NOT_ENROLLED")
    await client.post("/api/v1/auth/mfa/setup", headers=user.headers)
    wrong = await client.post(
        "/api/v1/auth/mfa/enable", json={"code": "000000"}, headers=user.headers
    )
    assert_envelope(wrong, 400, "INVALID_TOTP")
    malformed = await client.post(
        "/api/v1/auth/mfa/enable", json={"code": "12345x"}, headers=user.headers
    )
    assert_envelope(malformed, 400, "VALIDATION_ERROR")
    await _enrol(client, user)
    again = await client.post("/api/v1/auth/mfa/setup", headers=user.headers)
    assert_envelope(again, 409, "MFA_ALREADY_ENABLED")
    confirm_again = await client.post(
        "/api/v1/auth/mfa/enable", json={"code": "123456"}, headers=user.headers
    )
    assert_envelope(confirm_again, 409, "MFA_ALREADY_ENABLED")


async def test_disable_needs_password_and_code(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    not_on = await client.post(
        "/api/v1/auth/mfa/disable",
        json={"password": user.password, "code": "123456"},
        headers=user.headers,
    )
    assert_envelope(not_on, 409, "MFA_NOT_ENABLED")
    totp = await _enrol(client, user)
    wrong_password = await client.post(
        "/api/v1/auth/mfa/disable",
        json={"password": "not my password", "code": totp.now()},
        headers=user.headers,
    )
    assert_envelope(wrong_password, 403, "INVALID_PASSWORD")
    # A code from far in the past is refused.
    stale = await client.post(
        "/api/v1/auth/mfa/disable",
        json={"password": user.password, "code": totp.at(0)},
        headers=user.headers,
    )
    assert_envelope(stale, 400, "INVALID_TOTP")
    next_code = _next_step_code(totp)
    ok = await client.post(
        "/api/v1/auth/mfa/disable",
        json={"password": user.password, "code": next_code},
        headers=user.headers,
    )
    assert ok.status_code == 204, ok.text
    assert (await login(client, user.email, user.password)).status_code == 200
