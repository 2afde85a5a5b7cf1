"""Job engine throughput: jobs enqueued in their own transactions, handed to DBOS, run.

    .venv/bin/python bench/jobs_bench.py sqlite [N]
    .venv/bin/python bench/jobs_bench.py postgresql+asyncpg://postgres@127.0.0.1/keel_bench_jobs [N]

Prints enqueue/s (commits that each enqueue one job through `keel.jobs.engine.enqueue`) and
run/s (jobs finished per second, from the first enqueue to the last run; no-op handler).
A PostgreSQL database named in the URL is dropped and created again.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from keel import migrations
from keel.jobs.engine import JobEngine, Payload, Retry, enqueue
from keel.platform.db import Database
from keel.settings import Settings


async def _fresh_pg(url: str) -> None:
    name = make_url(url).database
    admin = create_async_engine(
        make_url(url).set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


async def run(url: str, count: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="keel-jobs-bench-"))
    if url == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'keel.db'}"
    else:
        await _fresh_pg(url)
    await asyncio.to_thread(migrations.upgrade, url)
    settings = Settings(
        database_url=url,
        data_dir=workdir,
        secret_key="bench-" + "x" * 40,
        jobs_enabled=True,
        jobs_poll_seconds=0.05,
        jobs_worker_concurrency=50,
    )
    database = Database.from_settings(settings)
    engine = JobEngine(settings=settings, database=database)
    finished = asyncio.Event()
    ran = 0

    async def noop(_payload: Payload) -> Retry | None:
        nonlocal ran
        ran += 1
        if ran == count:
            finished.set()
        return None

    engine.define("bench.noop", noop)
    await engine.start()
    try:
        started = time.perf_counter()
        for n in range(count):
            async with database.transaction() as session:
                await enqueue(session, "bench.noop", {"n": n}, key=f"bench:{started}:{n}")
        enqueued = time.perf_counter()
        await asyncio.wait_for(finished.wait(), timeout=600)
        done = time.perf_counter()
    finally:
        await engine.stop()
        await database.dispose()
    print(
        f"{database.dialect}: {count} jobs; enqueue {count / (enqueued - started):.0f}/s; "
        f"run (end to end) {count / (done - started):.0f}/s"
    )


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 500))
