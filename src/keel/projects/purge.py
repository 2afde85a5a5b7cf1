"""Maintenance: purging soft-deleted projects past their retention, and expired keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.platform.actor import SYSTEM_ACTOR_ID, RequestContext
from keel.platform.db import Database, set_rls_actor, utcnow
from keel.projects import repository


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    projects: int
    idempotency_keys: int


async def purge_expired(
    session: AsyncSession, *, now: datetime, retention: timedelta, batch: int = 1000
) -> PurgeCounts:
    """Remove one batch of projects deleted longer ago than the retention, and expired keys."""
    await set_rls_actor(session, user_id=SYSTEM_ACTOR_ID, role="system")
    counts = PurgeCounts(
        projects=await repository.purge_deleted(
            session, deleted_before=now - retention, batch=batch
        ),
        idempotency_keys=await repository.purge_idempotency_keys(session, now=now),
    )
    if counts.projects or counts.idempotency_keys:
        await audit.record(
            session,
            action="project.purged",
            context=RequestContext(),
            target_type="project",
            details={"projects": counts.projects, "idempotencyKeys": counts.idempotency_keys},
        )
    await session.flush()
    return counts


async def purge_all_expired(
    database: Database, *, retention: timedelta, batch: int = 1000
) -> PurgeCounts:
    """Purge in short transactions (one batch each) until nothing is left; for the CLI."""
    projects = keys = 0
    while True:
        async with database.transaction() as session:
            counts = await purge_expired(session, now=utcnow(), retention=retention, batch=batch)
        projects += counts.projects
        keys += counts.idempotency_keys
        if counts.projects < batch:
            return PurgeCounts(projects=projects, idempotency_keys=keys)
