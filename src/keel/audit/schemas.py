"""Response bodies of the audit API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from keel.platform.schemas import ApiModel, Pagination


class AuditEntryOut(ApiModel):
    id: int
    at: datetime
    actor_id: uuid.UUID | None
    action: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    request_id: str | None
    outcome: str
    details: dict[str, Any]  # Any: free-form JSON chosen by each action


class AuditPage(ApiModel):
    data: list[AuditEntryOut]
    pagination: Pagination
