"""The job engine: enqueue in the caller's transaction, retries, dead state, CLI steering."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import AsyncIterator

import pytest
from dbos import DBOS
from fastapi import FastAPI
from sqlalchemy import func, select
from typer.testing import CliRunner

from keel.cli import cli
from keel.jobs import engine
from keel.jobs.engine import JOBS, Payload, Retry, enqueue
from keel.jobs.models import JobHandoff
from keel.platform.services import services_of
from keel.settings import Settings
from tests.webhooks.conftest import eventually


async def test_a_job_runs_after_commit_and_never_after_rollback(app: FastAPI) -> None:
    services = services_of(app)
    seen: list[int] = []

    async def record(payload: Payload) -> Retry | None:
        seen.append(int(payload["n"]))
        return None

    services.get(JOBS).define("test.record", record)

    async def failing_change() -> None:
        async with services.database.transaction() as session:
            await enqueue(session, "test.record", {"n": 1}, key="test:rolled-back")
            raise RuntimeError("the change fails")

    with pytest.raises(RuntimeError):
        await failing_change()
    async with services.database.transaction() as session:
        await enqueue(session, "test.record", {"n": 2}, key="test:committed")
        await enqueue(session, "test.record", {"n": 2}, key="test:committed")
    await eventually(lambda: seen == [2])
    async with services.database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(JobHandoff)) == 0

    async def coalesce_without_partition() -> None:
        async with services.database.transaction() as session:
            await enqueue(session, "test.record", {}, key="bad", coalesce=True)

    with pytest.raises(ValueError, match="partition"):
        await coalesce_without_partition()


async def test_a_failing_job_is_retried_then_dead_and_the_cli_retries_it(
    app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = services_of(app)
    calls: list[str] = []
    healthy = False

    async def flaky(payload: Payload) -> Retry | None:
        calls.append(str(payload["id"]))
        if not healthy:
            raise OSError("downstream is down")
        return None

    services.get(JOBS).define("test.flaky", flaky, retry_delays=(0.1, 0.1))
    async with services.database.transaction() as session:
        await enqueue(session, "test.flaky", {"id": "a"}, key="test:flaky")
    await eventually(lambda: len(calls) == 3)

    monkeypatch.setenv("KEEL_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("KEEL_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()

    async def dead() -> bool:
        listed = runner.invoke(cli, ["jobs", "list", "--status", "error"])
        return "test:flaky" in listed.output

    await eventually(dead)
    listed = runner.invoke(cli, ["jobs", "list"])
    assert listed.exit_code == 0
    assert "test.flaky" in listed.output
    assert "OSError" in listed.output

    healthy = True
    retried = runner.invoke(cli, ["jobs", "retry", "test:flaky"])
    assert retried.exit_code == 0, retried.output
    await eventually(lambda: len(calls) == 4)
    cancelled = runner.invoke(cli, ["jobs", "cancel", "test:flaky"])
    assert cancelled.exit_code == 0
    assert "cancelled test:flaky" in cancelled.output


async def test_a_job_can_ask_to_run_again_later(app: FastAPI) -> None:
    services = services_of(app)
    runs: list[int] = []

    async def twice(_payload: Payload) -> Retry | None:
        runs.append(1)
        return Retry(0.1) if len(runs) == 1 else None

    services.get(JOBS).define("test.twice", twice)
    with pytest.raises(RuntimeError, match="defined twice"):
        services.get(JOBS).define("test.twice", twice)
    async with services.database.transaction() as session:
        await enqueue(session, "test.twice", {}, key="test:twice", partition="p1")
    await eventually(lambda: len(runs) == 2)


def test_engine_log_lines_carry_no_traceback() -> None:
    """A database outage makes DBOS log a traceback per failed poll; ours keep one line."""
    engine.quiet_engine_logs()
    engine.quiet_engine_logs()
    engine_log = logging.getLogger("dbos")
    assert sum(isinstance(f, engine.OneLineErrors) for f in engine_log.filters) == 1
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    engine_log.addHandler(handler)
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError:
            engine_log.warning(f"Exception polling schedules: {traceback.format_exc()}")
            engine_log.error("listener failed", exc_info=True)
    finally:
        engine_log.removeHandler(handler)
    lines = [logging.Formatter().format(record) for record in records]
    assert lines == [
        "Exception polling schedules: ConnectionRefusedError: [Errno 111] Connection refused",
        "listener failed (ConnectionRefusedError: [Errno 111] Connection refused)",
    ]


@pytest.fixture
async def job_dequeued_while_the_loop_is_stopped(
    app: FastAPI,
) -> AsyncIterator[list[threading.Thread]]:
    """A job handed to DBOS just before this fixture's loop turn ends: DBOS dequeues it while
    pytest-asyncio's loop is stopped (during the sync test below), and so starts it on its
    own background loop, in its own thread. Checked after the test, with the loop running."""
    services = services_of(app)
    ran_in: list[threading.Thread] = []

    async def record_thread(_payload: Payload) -> Retry | None:
        async with services.database.transaction() as session:
            await session.scalar(select(func.count()).select_from(JobHandoff))
        ran_in.append(threading.current_thread())
        return None

    services.get(JOBS).define("test.thread", record_thread)
    async with services.database.transaction() as session:
        await enqueue(session, "test.thread", {}, key="test:thread")
    await services.get(JOBS).hand_off()
    yield ran_in
    await eventually(lambda: len(ran_in) == 1)
    assert ran_in == [threading.main_thread()]


def test_a_job_started_on_the_engines_own_loop_runs_on_the_apps(
    job_dequeued_while_the_loop_is_stopped: list[threading.Thread],
) -> None:
    """Issue #12: a handler run in DBOS's thread opened the app's sessions there, and the
    process later froze destroying that thread's greenlets. The handler now waits for the
    app's loop, which is stopped during this (sync) test."""
    deadline = time.monotonic() + 10
    while DBOS.get_workflow_status("test:thread") is None or (
        DBOS.get_workflow_status("test:thread").status == "ENQUEUED"  # type: ignore[union-attr]
    ):
        assert time.monotonic() < deadline, "DBOS did not start the job"
        time.sleep(0.05)
    time.sleep(0.3)
    assert job_dequeued_while_the_loop_is_stopped == []
