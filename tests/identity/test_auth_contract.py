"""SPEC §3 contract: register, login, refresh, logout, profile: bodies, codes, envelope."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.conftest import register_user
from tests.identity.conftest import login
from tests.platform.test_http import assert_envelope


async def test_register_returns_user_and_tokens(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "Ada@Example.COM", "password": "correct horse battery", "name": " Ada "},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= {"user", "accessToken", "refreshToken"}
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["name"] == "Ada"
    assert body["user"]["role"] == "user"
    assert set(body["user"]) == {"id", "email", "name", "role", "emailVerified", "createdAt"}
    assert body["user"]["emailVerified"] is False
    profile = await client.get(
        "/api/v1/auth/profile", headers={"Authorization": f"Bearer {body['accessToken']}"}
    )
    assert profile.status_code == 200
    assert profile.json() == body["user"]


async def test_email_uniqueness_is_case_insensitive(client: httpx.AsyncClient) -> None:
    await register_user(client, email="bob@example.com")
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "BOB@example.com", "password": "another fine password", "name": "Bob"},
    )
    assert_envelope(response, 409, "EMAIL_TAKEN")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1!", "Must be at least 8 characters"),
        ("x" * 129, "Must be at most 128 characters"),
        ("password", "Is a commonly used password; choose a less guessable one"),
        ("Qwertyuiop", "Is a commonly used password; choose a less guessable one"),
        ("iloveyou", "Is a commonly used password; choose a less guessable one"),
    ],
)
async def test_register_password_rules_name_the_failed_rule(
    client: httpx.AsyncClient, password: str, message: str
) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "rules@example.com", "password": password, "name": "Rules"},
    )
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert body["details"] == [{"field": "password", "message": message}]


async def test_register_accepts_128_character_password(client: httpx.AsyncClient) -> None:
    user = await register_user(client, password="Zq9" + "x" * 125)
    assert (await login(client, user.email, user.password)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "correct horse battery", "name": "N"}, "email"),
        ({"email": "a@example.com", "name": "N"}, "password"),
        ({"email": "a@example.com", "password": "correct horse battery"}, "name"),
        ({"email": "not-an-email", "password": "correct horse battery", "name": "N"}, "email"),
        ({"email": "a@example.com", "password": "correct horse battery", "name": ""}, "name"),
        (
            {"email": "a@example.com", "password": "correct horse battery", "name": "n" * 101},
            "name",
        ),
        ({"email": 42, "password": "correct horse battery", "name": "N"}, "email"),
        ({"email": "a@example.com", "password": ["x"], "name": "N"}, "password"),
        ({"email": "a@example.com", "password": "correct horse\x00bat", "name": "N"}, "password"),
        ({"email": "a@example.com", "password": "correct horse battery", "name": "N\x00"}, "name"),
        (
            {"email": "a@example.com", "password": "correct horse battery", "name": "N", "x": 1},
            "x",
        ),
    ],
)
async def test_register_rejects_invalid_bodies(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await client.post("/api/v1/auth/register", json=body)
    details = assert_envelope(response, 400, "VALIDATION_ERROR")["details"]
    assert field in {d["field"] for d in details}  # type: ignore[index,union-attr]


async def test_register_rejects_non_object_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/register", json=["a", "b"])
    assert_envelope(response, 400, "VALIDATION_ERROR")


async def test_login_returns_user_and_tokens(client: httpx.AsyncClient) -> None:
    user = await register_user(client, email="carol@example.com")
    response = await login(client, "CAROL@example.com", user.password)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["id"] == user.id
    assert body["accessToken"] != user.access_token
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == 900


async def test_login_unknown_email_and_wrong_password_look_the_same(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)
    wrong = await login(client, user.email, "not the password at all")
    unknown = await login(client, "nobody@example.com", user.password)
    wrong_body = assert_envelope(wrong, 401, "INVALID_CREDENTIALS")
    unknown_body = assert_envelope(unknown, 401, "INVALID_CREDENTIALS")
    assert wrong_body["error"] == unknown_body["error"]
    assert wrong.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "a@example.com"},
        {"email": "", "password": "x"},
        {"email": "a@example.com", "password": ""},
        {"email": "a@example.com", "password": "p" * 129},
        {"email": "e" * 321, "password": "x"},
        {"email": {"$ne": None}, "password": "x"},
        {"email": "a@example.com", "password": "x", "totp": "12ab56"},
        {"email": "a@example.com", "password": True},
    ],
)
async def test_login_rejects_invalid_bodies(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    assert_envelope(await client.post("/api/v1/auth/login", json=body), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "email",
    [
        "' OR '1'='1",
        "admin@example.com' --",
        "x@example.com; DROP TABLE users; --",
        "\u202eadmin@example.com",
        "🦄@example.com",
    ],
)
async def test_login_with_injection_strings_is_plain_401(
    client: httpx.AsyncClient, app: FastAPI, email: str
) -> None:
    await register_user(client, email="admin@example.com")
    response = await login(client, email, "' OR '1'='1")
    assert_envelope(response, 401, "INVALID_CREDENTIALS")
    async with app.state.services.database.sessions() as session:
        count = (await session.execute(text("SELECT count(*) FROM users"))).scalar_one()
    assert count == 1


async def test_refresh_rotates_the_pair(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    response = await client.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"accessToken", "refreshToken"}
    assert body["refreshToken"] != user.refresh_token
    assert body["accessToken"] != user.access_token
    profile = await client.get(
        "/api/v1/auth/profile", headers={"Authorization": f"Bearer {body['accessToken']}"}
    )
    assert profile.status_code == 200
    again = await client.post("/api/v1/auth/refresh", json={"refreshToken": body["refreshToken"]})
    assert again.status_code == 200


async def test_logout_revokes_only_that_session(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    other = (await login(client, user.email, user.password)).json()
    response = await client.post("/api/v1/auth/logout", json={"refreshToken": user.refresh_token})
    assert response.status_code == 204
    assert response.content == b""
    revoked = await client.get("/api/v1/auth/profile", headers=user.headers)
    assert_envelope(revoked, 401, "SESSION_REVOKED")
    refresh = await client.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token})
    assert_envelope(refresh, 401, "SESSION_REVOKED")
    still = await client.get(
        "/api/v1/auth/profile", headers={"Authorization": f"Bearer {other['accessToken']}"}
    )
    assert still.status_code == 200
    twice = await client.post("/api/v1/auth/logout", json={"refreshToken": user.refresh_token})
    assert_envelope(twice, 401, "SESSION_REVOKED")


async def test_logout_accepts_an_optional_bearer(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    response = await client.post(
        "/api/v1/auth/logout", json={"refreshToken": user.refresh_token}, headers=user.headers
    )
    assert response.status_code == 204


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
async def test_logout_with_invalid_token_is_401_or_400(
    client: httpx.AsyncClient, token: str
) -> None:
    response = await client.post("/api/v1/auth/logout", json={"refreshToken": token})
    if token:
        assert_envelope(response, 401, "INVALID_TOKEN")
    else:
        assert_envelope(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
)
async def test_profile_requires_a_valid_bearer(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/api/v1/auth/profile", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] in {"UNAUTHORIZED", "INVALID_TOKEN"}


async def test_unicode_names_and_passwords_round_trip(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "email": "zoe@example.com",
            "password": "pässwört-山田-🚀-long",
            "name": "Zoë 山田 🚀",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["user"]["name"] == "Zoë 山田 🚀"
    signed_in = await login(client, "zoe@example.com", "pässwört-山田-🚀-long")
    assert signed_in.status_code == 200
    assert (await login(client, "zoe@example.com", "passwort-山田-🚀-long")).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"refreshToken": None},
        {"refreshToken": 123},
        {"refreshToken": ["a"]},
        {"refreshToken": "x" * 4097},
        {"refreshToken": "a.b\x00.c"},
        {"refreshToken": "a.b.c", "extra": True},
    ],
)
async def test_refresh_rejects_invalid_bodies(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    response = await client.post("/api/v1/auth/refresh", json=body)
    assert_envelope(response, 400, "VALIDATION_ERROR")
