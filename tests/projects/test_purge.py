"""`python -m keel purge`: removes soft-deleted projects past retention and expired keys."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from fastapi import FastAPI
from typer.testing import CliRunner

from keel.cli import cli
from keel.platform.actor import SYSTEM_ACTOR_ID
from keel.platform.db import set_rls_actor, utcnow
from keel.projects import repository
from keel.settings import Settings
from tests.conftest import RegisteredUser
from tests.projects.conftest import API, count_rows, create, seed


async def _age(app: FastAPI, *, days: float, ids: list[object]) -> None:
    async with app.state.services.database.sessions() as session, session.begin():
        await set_rls_actor(session, user_id=SYSTEM_ACTOR_ID, role="system")
        await session.execute(
            repository.projects.update()
            .where(repository.projects.c.id.in_(ids))
            .values(deleted_at=utcnow() - timedelta(days=days))
        )


def _run_purge(settings: Settings, *args: str) -> str:
    env = {
        "KEEL_ENV": "test",
        "KEEL_DATABASE_URL": settings.effective_database_url,
        "KEEL_SECRET_KEY": settings.secret_key,
        "KEEL_DATA_DIR": str(settings.data_dir),
        "KEEL_SOFT_DELETE_RETENTION_DAYS": "30",
    }
    result = CliRunner().invoke(cli, ["purge", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


async def test_purge_removes_only_expired_rows(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI, settings: Settings
) -> None:
    live = await seed(app, alice, 2)
    old = await seed(app, alice, 3)
    recent = await seed(app, alice, 1)
    await _age(app, days=40, ids=list(old))
    await _age(app, days=5, ids=list(recent))
    response = await client.post(
        API, json={"name": "Keyed"}, headers={**alice.headers, "Idempotency-Key": "old-key"}
    )
    assert response.status_code == 201
    await create(client, alice)
    async with app.state.services.database.sessions() as session, session.begin():
        await session.execute(
            repository.idempotency_keys.update().values(expires_at=utcnow() - timedelta(hours=1))
        )

    output = await asyncio.to_thread(_run_purge, settings, "--batch", "2")
    assert "purged 3 projects and 1 idempotency keys" in output
    assert await count_rows(app, "projects") == len(live) + len(recent) + 2
    assert await count_rows(app, "projects", "deleted_at IS NOT NULL") == 1
    assert await count_rows(app, "idempotency_keys") == 0
    assert await count_rows(app, "audit_log", "action = 'project.purged'") == 2  # two batches

    again = await asyncio.to_thread(_run_purge, settings)
    assert "purged 0 projects and 0 idempotency keys" in again
