"""The job engine: jobs written in the change's transaction, run by DBOS durable queues.

`enqueue(session, name, payload, key=…)` adds a `job_handoffs` row in the caller's
transaction and, after the commit, wakes the hand-off pass, which enqueues the job in DBOS
under `key` (an idempotent workflow id) and deletes the row. DBOS then owns the job:
durable state, one runner at a time (per partition, in order), recovery after a crash,
retries with durable sleeps, and a visible dead state. See docs/adr/0015-job-engine.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from dbos import DBOS, DBOSConfig, EnqueueOptions
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.jobs.metrics import JOB_DURATION, JOB_LAG, JOBS_FAILED, JOBS_QUEUED
from keel.jobs.models import JobExecutor, JobHandoff
from keel.platform.db import Database, after_commit, database_of, utcnow
from keel.platform.services import Slot
from keel.settings import Settings

log = structlog.get_logger("keel.jobs")

TRACEBACK = "Traceback (most recent call last):"


class OneLineErrors(logging.Filter):
    """DBOS logs a whole traceback, at WARNING, for each poll that fails while the database
    is down. Keep the message and the exception's last line: an outage is then one line per
    poll, and no traceback (with its file paths and locals) reaches the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        head, found, trace = message.partition(TRACEBACK)
        if found:
            lines = trace.strip().splitlines()
            record.msg = f"{head.rstrip()} {lines[-1].strip() if lines else ''}".strip()
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_engine_logs() -> None:
    """Install `OneLineErrors` on DBOS's logger, once per process."""
    engine_log = logging.getLogger("dbos")
    if not any(isinstance(f, OneLineErrors) for f in engine_log.filters):
        engine_log.addFilter(OneLineErrors())


QUEUE = "keel-jobs"
HANDOFF_SIGNAL = "jobs.handoff"
WORKFLOW = "keel.job"
# Any: a job's JSON payload; each job defines its own shape.
Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Retry:
    """What a handler returns to be run again later (a durable sleep, not an error)."""

    after_seconds: float


Handler = Callable[[Payload], Awaitable[Retry | None]]


DEFAULT_RETRY_DELAYS = (5.0, 30.0, 300.0)


@dataclass(frozen=True, slots=True)
class JobDefinition:
    """A job kind: its handler and the waits before each retry after it raised."""

    name: str
    handler: Handler
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS


async def enqueue(
    session: AsyncSession,
    name: str,
    payload: Payload,
    *,
    key: str,
    partition: str | None = None,
    coalesce: bool = False,
) -> None:
    """Enqueue a job in the caller's transaction: it runs only if that transaction commits.

    `key` is the job's identity: enqueueing the same key again is a no-op, so a caller that
    may repeat itself (a retry, a re-scan) never runs a job twice. Jobs with the same
    `partition` run one at a time, in enqueue order. With `coalesce`, jobs of one partition
    handed to the engine together run once (for jobs that drain a partition's work).
    """
    if coalesce and partition is None:
        raise ValueError("coalesce needs a partition")
    if await session.get(JobHandoff, key) is None:
        session.add(
            JobHandoff(
                key=key,
                name=name,
                payload=payload,
                partition=partition,
                coalesce=coalesce,
                created_at=utcnow(),
            )
        )
        await session.flush()  # so a repeat of the key in this transaction finds it
    database = database_of(session)

    async def wake() -> None:
        database.send(HANDOFF_SIGNAL)

    after_commit(session, wake, key=HANDOFF_SIGNAL)


@dataclass(frozen=True, slots=True)
class JobView:
    """One job as `keel jobs list` shows it."""

    id: str
    name: str
    status: str
    created_at: float | None
    error: str | None


@dataclass(eq=False)
class JobEngine:
    """Defines jobs, runs the worker of this instance and hands committed jobs to DBOS."""

    settings: Settings
    database: Database
    definitions: dict[str, JobDefinition] = field(default_factory=dict)
    executor_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _task: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _handoff_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _started: bool = False
    # The loop the app (and its database engine) runs on: every handler runs there.
    loop: asyncio.AbstractEventLoop | None = None

    def define(
        self, name: str, handler: Handler, *, retry_delays: tuple[float, ...] | None = None
    ) -> None:
        if name in self.definitions:
            raise RuntimeError(f"job {name!r} is defined twice")
        delays = retry_delays if retry_delays is not None else DEFAULT_RETRY_DELAYS
        self.definitions[name] = JobDefinition(name=name, handler=handler, retry_delays=delays)

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Launch DBOS (process-wide) and this instance's hand-off/heartbeat loop."""
        global _RUNNING
        if not self.settings.jobs_enabled:
            return
        if _RUNNING is not None:
            # DBOS is one per process; a second app in one process (tests) shares the first.
            log.warning("jobs_engine_already_running", executor=_RUNNING.executor_id)
            return
        config: DBOSConfig = {
            "name": "keel",
            "system_database_url": self.settings.effective_jobs_database_url,
            "executor_id": self.executor_id,
            "log_level": "WARNING",
        }
        quiet_engine_logs()
        DBOS(config=config)
        # Launched from the running loop, DBOS runs a job on this loop only while the loop is
        # running when the job is dequeued; otherwise on a loop of its own, in its own thread.
        # _run_once brings the handler back here (see run_on_app_loop).
        self.loop = asyncio.get_running_loop()
        DBOS.launch()
        await DBOS.register_queue_async(
            QUEUE,
            worker_concurrency=self.settings.jobs_worker_concurrency,
            partition_concurrency=1,
            polling_interval_sec=self.settings.jobs_poll_seconds,
        )
        _RUNNING = self
        self._started = True
        await self._heartbeat()
        self.database.connect(HANDOFF_SIGNAL, self._wake.set)
        self._task = asyncio.create_task(self._loop())
        log.info("jobs_started", executor=self.executor_id)

    async def stop(self) -> None:
        """Stop taking work and hand back what this instance holds: its running jobs are
        released to the other instances (or to the next start) at once."""
        global _RUNNING
        if not self._started:
            return
        self.database.disconnect(HANDOFF_SIGNAL, self._wake.set)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(DBOS.destroy, workflow_completion_timeout_sec=0)
        # DBOS made its (now shut down) pool this loop's default executor: give the loop a
        # working one back, or every later asyncio.to_thread on it fails.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())
        _RUNNING = None
        self._started = False
        async with self.database.transaction() as session:
            # A heartbeat from long ago: the next sweep of any instance takes the jobs over.
            await session.execute(
                update(JobExecutor)
                .where(JobExecutor.executor_id == self.executor_id)
                .values(seen_at=utcnow() - timedelta(days=365))
            )
        log.info("jobs_stopped", executor=self.executor_id)

    async def _loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.settings.jobs_poll_seconds):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.hand_off()
                await self._heartbeat()
                await self._take_over_dead_executors()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing database must not end the worker
                log.warning(
                    "jobs_sweep_failed", error_type=type(exc).__name__, error=str(exc)[:300]
                )

    async def _heartbeat(self) -> None:
        async with self.database.transaction() as session:
            updated = await session.execute(
                update(JobExecutor)
                .where(JobExecutor.executor_id == self.executor_id)
                .values(seen_at=utcnow())
            )
            if not getattr(updated, "rowcount", 0):
                session.add(JobExecutor(executor_id=self.executor_id, seen_at=utcnow()))

    async def _take_over_dead_executors(self) -> None:
        cutoff = utcnow() - timedelta(seconds=self.settings.jobs_executor_timeout_seconds)
        async with self.database.transaction() as session:
            # DELETE … RETURNING: exactly one instance claims each dead executor.
            dead = (
                await session.scalars(
                    delete(JobExecutor)
                    .where(JobExecutor.seen_at < cutoff)
                    .returning(JobExecutor.executor_id)
                )
            ).all()
        if dead:
            log.warning("jobs_taking_over", executors=list(dead))
            await asyncio.to_thread(DBOS._recover_pending_workflows, list(dead))

    async def hand_off(self) -> int:
        """Enqueue committed jobs in DBOS (idempotent by key) and drop their rows."""
        async with self._handoff_lock, self.database.transaction() as session:
            query = select(JobHandoff).order_by(JobHandoff.created_at, JobHandoff.key).limit(500)
            if self.database.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = (await session.scalars(query)).all()
            coalesced: set[str] = set()
            for row in rows:
                if row.coalesce and row.partition is not None:
                    if row.partition in coalesced:
                        # The job just enqueued for this partition has not started yet: it
                        # will see this one's work (committed before this pass read it).
                        await session.delete(row)
                        continue
                    coalesced.add(row.partition)
                options: EnqueueOptions = {
                    "queue_name": QUEUE,
                    "workflow_name": WORKFLOW,
                    "workflow_id": row.key,
                    # The queue is partitioned: a job of no partition is one of its own.
                    "queue_partition_key": row.partition or f"job:{row.key}",
                }
                await DBOS.enqueue_workflow_with_options_async(
                    options, row.name, row.payload, row.created_at.timestamp()
                )
                await session.delete(row)
            waiting = await session.scalar(select(func.count()).select_from(JobHandoff))
        JOBS_QUEUED.set(len(rows) + int(waiting or 0))
        return len(rows)


_RUNNING: JobEngine | None = None
JOBS: Slot[JobEngine] = Slot("jobs")


def _running_engine() -> JobEngine:
    if _RUNNING is None:
        raise RuntimeError("no job engine is running in this process")
    return _RUNNING


async def run_on_app_loop(engine: JobEngine, handler: Handler, payload: Payload) -> Retry | None:
    """Run a job's handler on the loop the app runs on, whichever loop DBOS started it on.

    DBOS starts a dequeued job on the loop that launched it only if that loop is running at
    that moment; if not (between two `run_until_complete` calls, as pytest-asyncio makes
    between test phases), it starts it on its background loop, in a thread of its own that
    DBOS.destroy ends. A handler run there opened the app's sessions in that thread, so its
    SQLAlchemy greenlets belonged to that thread, on pool connections the app's loop also
    uses; once the thread ended, greenlet destroyed what was left of them from the main
    thread's pending calls, the path of the freeze of issue #12 (docs/notes-freeze.md).
    Here the handler always runs on the app's loop; this coroutine only waits for it, and
    cancelling it cancels the handler there.
    """
    loop = engine.loop
    if loop is None or loop is asyncio.get_running_loop():
        return await handler(payload)
    if loop.is_closed():
        raise RuntimeError("the app's event loop is closed: the job runs again later")

    async def on_app_loop() -> Retry | None:
        return await handler(payload)

    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(on_app_loop(), loop))


@DBOS.step(name="keel.job.run")
async def _run_once(name: str, payload: Payload, enqueued_at: float, run: int) -> float | None:
    """One run of a job's handler (a checkpointed step: after a crash it runs again)."""
    engine = _running_engine()
    definition = engine.definitions[name]
    if run == 0:
        JOB_LAG.labels(job=name).observe(max(time.time() - enqueued_at, 0.0))
    started = time.perf_counter()
    try:
        outcome = await run_on_app_loop(engine, definition.handler, payload)
    finally:
        JOB_DURATION.labels(job=name).observe(time.perf_counter() - started)
    return None if outcome is None else outcome.after_seconds


@DBOS.workflow(name=WORKFLOW)
async def _job_workflow(name: str, payload: Payload, enqueued_at: float) -> None:
    """A job: run its handler; sleep durably and run again when it asks or after a failure;
    after the last failure raise, which leaves the job in DBOS's ERROR (dead) state."""
    definition = _running_engine().definitions[name]
    failures = 0
    run = 0
    while True:
        try:
            again = await _run_once(name, payload, enqueued_at, run)
        except Exception:
            if failures >= len(definition.retry_delays):
                JOBS_FAILED.labels(job=name).inc()
                raise
            again = definition.retry_delays[failures]
            failures += 1
        run += 1
        if again is None:
            return
        await DBOS.sleep_async(again)
