"""Realtime events: the transactional outbox that other features write to."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from keel.realtime.models import Event

ProjectEventType = Literal["project.created", "project.updated", "project.deleted"]


async def record_project_event(
    session: AsyncSession,
    *,
    event_type: ProjectEventType,
    project_id: uuid.UUID,
    owner_id: uuid.UUID,
    payload: dict[str, Any],
) -> None:
    """Append an event to the outbox in the caller's transaction.

    It becomes visible to subscribers only if that transaction commits. `payload` is the
    project as the API shows it (camelCase JSON-ready dict).
    """
    # Any: JSON-ready payload values.
    session.add(Event(type=event_type, project_id=project_id, owner_id=owner_id, payload=payload))
