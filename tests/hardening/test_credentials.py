"""Issue 10 items 6-7: re-verifying the password is throttled like sign-in; passwords derived
from the account's e-mail or name are refused. Over a real socket, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from keel.identity.passwords import identifier_problem
from keel.settings import Settings
from tests.conftest import register_user
from tests.platform.test_http import assert_envelope


@pytest.fixture
async def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(login_max_failures_per_account=3, login_lockout_seconds=120)


async def _audit(app: FastAPI, action: str) -> list[tuple[Any, ...]]:
    # Any: database row values.
    async with app.state.services.database.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT outcome, target_type, details FROM audit_log WHERE action = :a ORDER BY id"
            ),
            {"a": action},
        )
        return [tuple(row) for row in rows.all()]


async def _change(http: httpx.AsyncClient, headers: dict[str, str], current: str) -> httpx.Response:
    return await http.post(
        "/api/v1/auth/password",
        json={"currentPassword": current, "newPassword": "another long passphrase"},
        headers=headers,
    )


async def test_wrong_current_password_is_slowed_then_locked_and_audited(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    user = await register_user(http)
    for _ in range(3):
        assert_envelope(
            await _change(http, user.headers, "wrong password!"), 403, "INVALID_PASSWORD"
        )
    # Locked: even the right password is refused, with Retry-After, as sign-in is.
    locked = await _change(http, user.headers, user.password)
    assert_envelope(locked, 429, "LOGIN_LOCKED")
    assert 0 < int(locked.headers["retry-after"]) <= 120
    signin = await http.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    )
    assert_envelope(signin, 429, "LOGIN_LOCKED")
    # The same lock guards MFA disable and account deletion.
    disable = await http.post(
        "/api/v1/auth/mfa/disable",
        json={"password": user.password, "code": "123456"},
        headers=user.headers,
    )
    assert_envelope(disable, 429, "LOGIN_LOCKED")
    delete = await http.request(
        "DELETE", "/api/v1/auth/account", json={"password": user.password}, headers=user.headers
    )
    assert_envelope(delete, 429, "LOGIN_LOCKED")
    rows = await _audit(app, "auth.password_verify")
    assert [row[0] for row in rows] == ["failure"] * 6
    lockouts = await _audit(app, "auth.lockout")
    assert [row[1] for row in lockouts] == ["account"]


async def test_right_password_resets_the_count(app: FastAPI, http: httpx.AsyncClient) -> None:
    user = await register_user(http)
    for _ in range(2):
        assert_envelope(
            await _change(http, user.headers, "wrong password!"), 403, "INVALID_PASSWORD"
        )
    assert (await _change(http, user.headers, user.password)).status_code == 204
    user.password = "another long passphrase"
    for _ in range(2):
        assert_envelope(
            await _change(http, user.headers, "wrong password!"), 403, "INVALID_PASSWORD"
        )
    assert await _audit(app, "auth.lockout") == []


@pytest.mark.parametrize(
    ("email", "name", "password"),
    [
        ("alice.smith@example.com", "Alice Smith", "alice.smith@example.com"),
        ("alice.smith@example.com", "Alice Smith", "ALICE.SMITH"),
        ("alice.smith@example.com", "Alice Smith", "alicesmith2024!"),
        ("bob@example.com", "Roberta Quinn", "Roberta Quinn"),
        ("bob@example.com", "Roberta Quinn", "roberta!roberta"),
    ],
)
async def test_register_refuses_passwords_derived_from_email_or_name(
    http: httpx.AsyncClient, email: str, name: str, password: str
) -> None:
    response = await http.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": name}
    )
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert [d["field"] for d in body["details"]] == ["password"]


async def test_password_change_refuses_the_accounts_own_identifiers(
    http: httpx.AsyncClient,
) -> None:
    user = await register_user(http, email="carol.jones@example.com", name="Carol Jones")
    for new in ("carol.jones@example.com", "Carol Jones", "caroljones123"):
        response = await http.post(
            "/api/v1/auth/password",
            json={"currentPassword": user.password, "newPassword": new},
            headers=user.headers,
        )
        body = assert_envelope(response, 400, "VALIDATION_ERROR")
        assert body["details"][0]["field"] == "newPassword"


def test_unrelated_passphrases_containing_a_name_pass() -> None:
    assert identifier_problem("a root passphrase", email="root@example.com", name="Root") is None
    assert identifier_problem("correct horse battery", email="al@example.com", name="Al") is None
    assert identifier_problem("al", email="al@example.com", name="Al") is not None
    assert identifier_problem("x" * 12, email=None, name=None) is None
