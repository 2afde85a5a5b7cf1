"""Projects: the tracked resource, owned by one user; and stored idempotent responses."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db import Base, UTCDateTime, UUIDType, new_id, utcnow

STATUSES = ("active", "completed", "archived")

LIVE = text("deleted_at IS NULL")


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'completed', 'archived')", name="status"),
        Index("ix_projects_user_id_created_at", "user_id", text("created_at DESC")),
        Index("ix_projects_created_at", text("created_at DESC")),
        Index(
            "ix_projects_status_not_archived",
            "status",
            postgresql_where=text("status <> 'archived'"),
            sqlite_where=text("status <> 'archived'"),
        ),
        # Keyset pagination over live rows: (owner, sort key, id) serves every sort of a
        # user's list without a sort step; the admin list uses the owner-less ones.
        Index(
            "ix_projects_live_owner_created",
            "user_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        ),
        Index(
            "ix_projects_live_owner_updated",
            "user_id",
            text("updated_at DESC"),
            text("id DESC"),
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        ),
        Index(
            "ix_projects_live_owner_name",
            "user_id",
            "name",
            "id",
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        ),
        Index(
            "ix_projects_live_created",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        ),
        Index(
            "ix_projects_deleted_at",
            "deleted_at",
            postgresql_where=text("deleted_at IS NOT NULL"),
            sqlite_where=text("deleted_at IS NOT NULL"),
        ),
        # The trigram GIN indexes for search exist on PostgreSQL only (migration 0003).
    )

    id: Mapped[uuid.UUID] = mapped_column(UUIDType, primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUIDType, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Case-folded copies of name and description, written by the service: `q` matches them
    # with LIKE, so search is Unicode case-insensitive in exactly the same way on SQLite
    # (whose lower()/LIKE only fold ASCII) and on PostgreSQL (trigram GIN indexed).
    search_name: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    search_description: Mapped[str | None] = mapped_column(Text, nullable=True)


class IdempotencyKey(Base):
    """One POST's outcome under a client's Idempotency-Key, per user, kept for a TTL.

    The primary key makes concurrent requests with one key race-safe: exactly one insert
    wins and does the work; the others wait for it and replay its stored response.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUIDType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    location: Mapped[str | None] = mapped_column(String(255), nullable=True)
    etag: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
