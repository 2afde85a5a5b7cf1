"""No password, token or hash ever reaches the logs (application logs captured in full)."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.conftest import register_user
from tests.identity.conftest import login


async def test_logs_never_contain_passwords_tokens_or_hashes(
    client: httpx.AsyncClient,
    app: FastAPI,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The level Keel runs at (KEEL_LOG_LEVEL=INFO). At DEBUG, aiosqlite logs SQL parameters
    # (password hashes among them): a platform logging concern, reported separately.
    caplog.set_level(logging.INFO)
    password = "Unmistakable-Passphrase-4711"
    new_password = "Another-Unmistakable-Phrase-0815"
    user = await register_user(client, password=password)
    await login(client, user.email, "Wrong-Passphrase-Also-Secret")
    signed_in = (await login(client, user.email, password)).json()
    rotated = (
        await client.post("/api/v1/auth/refresh", json={"refreshToken": signed_in["refreshToken"]})
    ).json()
    await client.post(
        "/api/v1/auth/password",
        json={"currentPassword": password, "newPassword": new_password},
        headers={"Authorization": f"Bearer {rotated['accessToken']}"},
    )
    await client.post("/api/v1/auth/logout", json={"refreshToken": rotated["refreshToken"]})
    await client.get(
        "/api/v1/auth/profile", headers={"Authorization": f"Bearer {rotated['accessToken']}"}
    )
    # A reuse after the family is gone logs a warning; it must not carry the token either.
    await client.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token})
    async with app.state.services.database.sessions() as session:
        hashes = (await session.execute(text("SELECT password_hash FROM users"))).scalars().all()

    # Keel's own lines go straight to standard output; libraries' through the logging module.
    formatter = logging.getLogger().handlers[0].formatter
    assert formatter is not None
    rendered = capsys.readouterr().out
    assert '"event": "request"' in rendered  # the access log was captured
    rendered += "\n" + "\n".join(formatter.format(record) for record in caplog.records)
    rendered += "\n" + caplog.text
    secrets = [
        password,
        new_password,
        "Wrong-Passphrase-Also-Secret",
        user.access_token,
        user.refresh_token,
        signed_in["accessToken"],
        signed_in["refreshToken"],
        rotated["accessToken"],
        rotated["refreshToken"],
        *hashes,
    ]
    for secret in secrets:
        assert secret not in rendered
        # Not even the signature part of a token.
        assert secret.rsplit(".", 1)[-1] not in rendered
