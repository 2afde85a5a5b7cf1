"""Stopping background tasks without losing the caller's own cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog

log = structlog.get_logger("keel.tasks")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel tasks and wait until they have ended, without swallowing our own cancellation.

    `with suppress(CancelledError): await task` also suppresses a cancellation aimed at the
    caller (a bounded shutdown step timing out), which then waits on; `asyncio.wait` returns
    when the tasks are done and raises CancelledError only when the caller itself is cancelled.
    """
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "task_failed_on_stop",
                task=task.get_name(),
                error=type(task.exception()).__name__,
            )
