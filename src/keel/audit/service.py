"""Writing to the audit log; every feature records security-relevant actions through here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit.models import AuditEntry


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is calling from where; taken from the request by the routes."""

    ip: str | None = None
    request_id: str | None = None
    user_agent: str | None = None


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
    session.add(
        AuditEntry(
            actor_id=actor_id,
            action=action,
            target_type=target_type,
            target_id=str(target_id) if target_id is not None else None,
            ip=context.ip,
            request_id=context.request_id,
            outcome=outcome,
            details=details or {},
        )
    )
