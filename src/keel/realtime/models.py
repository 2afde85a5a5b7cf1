"""The transactional outbox of realtime events, its purge watermark and SSE tickets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db import Base, BigIntPK, JSONType, UTCDateTime, UUIDType, utcnow


class Event(Base):
    """One change, written in its transaction without any lock.

    `id` only identifies the row. `position` is what clients see as the event id: the relay
    assigns it after the commit, in one total order (ADR 0011, realtime/sequencer.py).
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_created_at", "created_at"),
        Index("uq_events_position", "position", unique=True),
        Index("ix_events_owner_id_position", "owner_id", "position"),
        Index(
            "ix_events_unsequenced",
            "id",
            postgresql_where=text("position IS NULL"),
            sqlite_where=text("position IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    position: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    project_id: Mapped[uuid.UUID] = mapped_column(UUIDType, nullable=False)
    owner_id: Mapped[uuid.UUID] = mapped_column(UUIDType, nullable=False)
    # Any: the event's JSON payload (a serialised Project).
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class EventWatermark(Base):
    """Named high-water marks of the outbox; `purged` is the highest id ever purged.

    A client resuming from an id below it may have missed purged events: it must resync.
    """

    __tablename__ = "event_watermarks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class EventTicket(Base):
    """A single-use SSE ticket (when no Redis is configured): the hash of the ticket and the
    access token it stands for, encrypted at rest."""

    __tablename__ = "event_tickets"
    __table_args__ = (Index("ix_event_tickets_expires_at", "expires_at"),)

    ticket_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed_token: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
