"""Fixtures for webhooks and jobs tests: the job worker on, short retries, loopback allowed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from keel.settings import Settings
from tests.conftest import is_postgres
from tests.webhooks.receiver import Receiver, run_receiver

API = "/api/v1/webhooks"
FAST = {
    "jobs_enabled": True,
    "jobs_poll_seconds": 0.1,
    "jobs_executor_timeout_seconds": 3.0,
    "webhook_allow_private_targets": True,
    "webhook_retry_schedule": "0.2,0.2,0.2",
    "rate_limit_enabled": False,
}


def fast_env() -> dict[str, str]:
    """FAST as the KEEL_* environment of a real server process."""
    return {
        f"KEEL_{key.upper()}": str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in FAST.items()
    }


async def reset_job_store(url: str) -> None:
    """Empty the engine's own tables on PostgreSQL (SQLite gets a fresh file per test)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            names = (
                (
                    await conn.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = 'dbos'")
                    )
                )
                .scalars()
                .all()
            )
            wanted = [n for n in names if "migration" not in n and n != "queues"]
            if wanted:
                joined = ", ".join(f'dbos."{n}"' for n in wanted)
                await conn.execute(text(f"TRUNCATE {joined} CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture
async def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    if is_postgres():
        await reset_job_store(database_url)
    return make_settings(**FAST)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with run_receiver() as state:
        yield state


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], *, seconds: float = 30.0
) -> None:
    """Wait until `check` holds (a generous deadline; the assertion is on the outcome)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result: Any = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
