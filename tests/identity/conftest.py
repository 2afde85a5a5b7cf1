"""Identity tests: the per-IP rate limiter is off here (these tests sign in a lot from one
address); the login lockout under test is identity's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from keel.settings import Settings
from tests.conftest import RegisteredUser, promote_to_admin, register_user


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(rate_limit_enabled=False)


async def login(
    client: httpx.AsyncClient, email: str, password: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password, **extra}
    )


async def make_admin(app: FastAPI, client: httpx.AsyncClient) -> RegisteredUser:
    """A registered user promoted to admin, signed in again so the token is fresh."""
    user = await register_user(client)
    await promote_to_admin(app, user.id)
    response = await login(client, user.email, user.password)
    assert response.status_code == 200, response.text
    body = response.json()
    user.access_token = body["accessToken"]
    user.refresh_token = body["refreshToken"]
    return user
