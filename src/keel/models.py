"""Imports every feature's models so Base.metadata knows all tables (Alembic, tests)."""

from keel.audit.models import AuditEntry
from keel.identity.models import AuthSession, User
from keel.platform.db import Base
from keel.projects.models import Project
from keel.realtime.models import Event

__all__ = ["AuditEntry", "AuthSession", "Base", "Event", "Project", "User"]
