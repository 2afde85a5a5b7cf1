"""Jobs written in a change's transaction, waiting to be handed to the engine; live instances."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db import Base, JSONType, UTCDateTime, utcnow


class JobHandoff(Base):
    """A job enqueued in a committed transaction and not yet handed to the engine.

    The row commits (or rolls back) with the change that caused it; a hand-off pass then
    enqueues it in the engine under `key` (the engine's idempotent workflow id) and deletes
    it. A crash between the commit and the hand-off leaves the row for the next pass.
    """

    __tablename__ = "job_handoffs"
    __table_args__ = (Index("ix_job_handoffs_created_at", "created_at"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    # Any: the job's JSON payload, as the feature that defined the job wrote it.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    # Jobs of one partition run one at a time, in enqueue order.
    partition: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # While a job of the partition waits to start, another one is not enqueued (the waiting
    # one will see the newer work when it runs).
    coalesce: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class JobExecutor(Base):
    """One live worker (instance process) and its last heartbeat; a stale row means its
    running jobs are taken over by the others."""

    __tablename__ = "job_executors"

    executor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
