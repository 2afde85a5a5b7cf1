"""Imports every feature's models so Base.metadata knows all tables (Alembic, tests)."""

from keel.audit.models import AuditEntry
from keel.identity.models import (
    AuthSession,
    EmailToken,
    OidcHandoff,
    OidcIdentity,
    OidcLogin,
    User,
)
from keel.jobs.models import JobExecutor, JobHandoff
from keel.platform.db import Base
from keel.projects.models import Project
from keel.realtime.models import Event
from keel.webhooks.models import WebhookAttempt, WebhookCursor, WebhookDelivery, WebhookEndpoint

__all__ = [
    "AuditEntry",
    "AuthSession",
    "Base",
    "EmailToken",
    "Event",
    "JobExecutor",
    "JobHandoff",
    "OidcHandoff",
    "OidcIdentity",
    "OidcLogin",
    "Project",
    "User",
    "WebhookAttempt",
    "WebhookCursor",
    "WebhookDelivery",
    "WebhookEndpoint",
]
