"""HTTP adapter of the audit log: GET /api/v1/audit (administrators)."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from keel.audit import service
from keel.audit.schemas import AuditEntryOut, AuditPage
from keel.platform.deps import AdminActor, SessionDep
from keel.platform.errors import (
    ErrorDetail,
    Forbidden,
    Unauthorized,
    ValidationFailed,
    error_responses,
)
from keel.platform.schemas import Pagination, SafeStr

router = APIRouter(prefix="/api/v1/audit", tags=["audit (admin)"])


@router.get(
    "",
    response_model=AuditPage,
    summary="Read the audit log, newest first (administrators)",
    description="Filters: `actor` (user id), `action` (e.g. `auth.login`), `from` (inclusive) "
    "and `to` (exclusive) as ISO-8601 date-times.",
    responses=error_responses(Unauthorized, Forbidden),
)
async def list_audit(
    actor: AdminActor,
    session: SessionDep,
    actor_id: Annotated[uuid.UUID | None, Query(alias="actor")] = None,
    action: Annotated[SafeStr | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> AuditPage:
    for name, moment in (("from", since), ("to", until)):
        if moment is not None and moment.tzinfo is None:
            raise ValidationFailed(
                details=[ErrorDetail(field=name, message="Must include a time zone (e.g. Z)")]
            )
    entries, total = await service.list_entries(
        session,
        actor,
        filters=service.AuditFilter(actor_id=actor_id, action=action, since=since, until=until),
        page=page,
        limit=limit,
    )
    return AuditPage(
        data=[AuditEntryOut.model_validate(e) for e in entries],
        pagination=Pagination(
            page=page, limit=limit, total=total, total_pages=math.ceil(total / limit)
        ),
    )
