"""Writing and reading the audit log; every feature records security-relevant actions here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.audit.models import AuditEntry
from keel.platform.actor import Actor, RequestContext
from keel.platform.db import InsertRow, transaction, utcnow
from keel.platform.errors import Forbidden

AUDIT_LOG = cast(Table, AuditEntry.__table__)


def entry_row(
    *,
    action: str,
    context: RequestContext,
    actor_id: uuid.UUID | None,
    target_type: str | None = None,
    target_id: str | uuid.UUID | None = None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
) -> InsertRow:
    """One audit row, for `keel.platform.db.insert_rows` in the caller's transaction (written
    together with the change it records). `details` must never hold secrets."""
    # Any: JSON-ready details.
    return AUDIT_LOG, {
        "at": utcnow(),
        "actor_id": actor_id,
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id) if target_id is not None else None,
        "ip": context.ip,
        "request_id": context.request_id,
        "outcome": outcome,
        "details": details or {},
    }


async def record(
    session: AsyncSession,
    *,
    action: str,
    context: RequestContext,
    actor_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: str | uuid.UUID | None = None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit row in the caller's transaction (it commits or rolls back with it).

    `details` must never hold passwords, tokens or hashes.
    """
    _table, values = entry_row(
        action=action,
        context=context,
        actor_id=actor_id,
        target_type=target_type,
        target_id=target_id,
        outcome=outcome,
        details=details,
    )
    session.add(AuditEntry(**values))


async def record_detached(
    sessions: async_sessionmaker[AsyncSession],
    *,
    action: str,
    context: RequestContext,
    actor_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: str | uuid.UUID | None = None,
    outcome: str = "failure",
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit row in its own transaction, committed now.

    For failures: the request's transaction rolls back with the error response, and the row
    saying the attempt failed must survive that.
    """
    async with transaction(sessions) as session:
        await record(
            session,
            action=action,
            context=context,
            actor_id=actor_id,
            target_type=target_type,
            target_id=target_id,
            outcome=outcome,
            details=details,
        )


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor_id: uuid.UUID | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_entries(
    session: AsyncSession,
    actor: Actor,
    *,
    filters: AuditFilter,
    page: int,
    limit: int,
) -> tuple[list[AuditEntry], int]:
    """A page of the log, newest first; administrators only."""
    if not actor.is_admin:
        raise Forbidden("Administrator role required")
    conditions = []
    if filters.actor_id is not None:
        conditions.append(AuditEntry.actor_id == filters.actor_id)
    if filters.action is not None:
        conditions.append(AuditEntry.action == filters.action)
    if filters.since is not None:
        conditions.append(AuditEntry.at >= filters.since)
    if filters.until is not None:
        conditions.append(AuditEntry.at < filters.until)
    total = (
        await session.execute(select(func.count()).select_from(AuditEntry).where(*conditions))
    ).scalar_one()
    result = await session.execute(
        select(AuditEntry)
        .where(*conditions)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return list(result.scalars()), int(total)


async def entries_of_actor(session: AsyncSession, actor_id: uuid.UUID) -> list[AuditEntry]:
    """Every row a user caused (for their data export)."""
    result = await session.execute(
        select(AuditEntry).where(AuditEntry.actor_id == actor_id).order_by(AuditEntry.id)
    )
    return list(result.scalars())
