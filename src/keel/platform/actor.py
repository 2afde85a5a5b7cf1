"""The caller as every front door and service sees it: who acts, and from where."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated caller, as services see it (built by the one Authenticator)."""

    user_id: uuid.UUID
    role: str
    session_id: uuid.UUID
    # The user as /auth/profile shows it, when authentication read it (from the cache).
    # Any: JSON-decoded values.
    profile: Mapping[str, Any] | None = field(default=None, compare=False)
    # When the access token that proved this actor expires (streams end then).
    expires_at: datetime | None = field(default=None, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is calling from where; taken from the request (or CLI) by the front door."""

    ip: str | None = None
    request_id: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """An access token the protection layer already verified (signature, expiry, type),
    handed to authentication so the JWT is decoded once per request."""

    token: str
    # Any: JWT claim values.
    claims: Mapping[str, Any]


# Maintenance (purges, the CLI) acts as this pseudo-user with role 'system' under RLS.
SYSTEM_ACTOR_ID = uuid.UUID(int=0)
