"""The after-commit pipeline: work runs once its transaction commits, never after a rollback."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from structlog.testing import capture_logs

from keel.platform.db import after_commit, transaction


async def test_work_runs_after_commit_and_is_awaited_by_the_transaction(app: FastAPI) -> None:
    database = app.state.services.database
    ran: list[str] = []

    async def note() -> None:
        ran.append("done")

    async with database.transaction() as session:
        await session.execute(text("SELECT 1"))
        after_commit(session, note)
        assert ran == []  # not before the commit
    assert ran == ["done"]


async def test_work_keyed_alike_runs_once_per_transaction(app: FastAPI) -> None:
    database = app.state.services.database
    ran: list[int] = []

    async with database.transaction() as session:
        for n in range(3):

            async def note(n: int = n) -> None:
                ran.append(n)

            after_commit(session, note, key="one")
    assert ran == [0]


async def test_rollback_discards_the_work(app: FastAPI) -> None:
    database = app.state.services.database
    ran: list[str] = []

    async def note() -> None:
        ran.append("done")

    async def failing_transaction() -> None:
        async with database.transaction() as session:
            await session.execute(text("SELECT 1"))
            after_commit(session, note)
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        await failing_transaction()
    async with database.transaction() as session:
        await session.execute(text("SELECT 1"))
    assert ran == []


async def test_a_commit_outside_transaction_still_runs_its_work(app: FastAPI) -> None:
    # Forgetting the helper must not silently skip cache invalidation.
    database = app.state.services.database
    done = asyncio.Event()

    async def note() -> None:
        done.set()

    async with database.sessions() as session:
        await session.execute(text("SELECT 1"))
        after_commit(session, note)
        await session.commit()
    await asyncio.wait_for(done.wait(), timeout=5)


async def test_failing_work_is_logged_not_raised(app: FastAPI) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    with capture_logs() as logs:
        async with transaction(app.state.services.database.sessions) as session:
            after_commit(session, broken)
    assert {"event": "after_commit_failed", "error_type": "RuntimeError"}.items() <= logs[
        -1
    ].items()
