"""Audit rows about a user's account, in the one shape identity's services write them."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.platform.actor import RequestContext


async def audit_user(
    session: AsyncSession,
    *,
    action: str,
    user_id: uuid.UUID,
    context: RequestContext,
    by: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,  # Any: JSON-ready values
) -> None:
    """Record an action on the user's account, taken by that user unless `by` names who."""
    await audit.record(
        session,
        action=action,
        context=context,
        actor_id=by if by is not None else user_id,
        target_type="user",
        target_id=user_id,
        details=details,
    )
