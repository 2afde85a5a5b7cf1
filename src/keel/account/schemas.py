"""Response body of the data export."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from keel.identity.schemas import AdminUserOut, LinkedIdentityOut, SessionOut
from keel.platform.schemas import ApiModel


class ExportOut(ApiModel):
    """Everything Keel holds about the caller (GDPR Art. 20), as plain JSON."""

    exported_at: datetime
    user: AdminUserOut
    sessions: list[SessionOut]
    linked_identities: list[LinkedIdentityOut]  # accounts at OpenID providers
    projects: list[dict[str, Any]]  # Any: project rows as JSON objects
    audit_log: list[dict[str, Any]]  # Any: audit rows as JSON objects
