"""Realtime events: the transactional outbox other features write to, and reading it back.

Ordering guarantee: outbox ids are assigned in *commit order*. Events are held in the
session until commit; just before the commit the session takes a transaction-scoped
advisory lock (PostgreSQL) and only then inserts them, so the lock is held from id
allocation until the commit is visible. A reader that sees id N therefore already sees
every committed id below N, and "every id > my cursor" never skips a late commit. SQLite
serialises writers itself, so there the order holds without a lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy import delete, event, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from keel.platform.db import KeelSession, after_commit, database_of, utcnow
from keel.platform.timestamps import iso_z
from keel.realtime.models import Event, EventTicket, EventWatermark

ProjectEventType = Literal["project.created", "project.updated", "project.deleted"]

# Arbitrary constant: the one advisory lock that orders outbox writers ('keel' in ASCII).
OUTBOX_LOCK_KEY = 0x6B65656C
PURGED_WATERMARK = "purged"
_PENDING = "keel.realtime.pending_events"


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
    project as the API shows it (camelCase JSON-ready dict). The row is inserted at
    commit time (to order ids by commit), so it is not visible to queries in the same
    transaction.
    """
    # Any: JSON-ready payload values.
    pending: list[Event] = session.info.setdefault(_PENDING, [])
    pending.append(
        Event(type=event_type, project_id=project_id, owner_id=owner_id, payload=payload)
    )


EVENTS_COMMITTED = "realtime.events_committed"


@event.listens_for(KeelSession, "before_commit")
def _write_pending_events(session: Session) -> None:
    pending: list[Event] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    if session.get_bind().dialect.name == "postgresql":
        # Held until the commit is visible: ids are allocated in commit order.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": OUTBOX_LOCK_KEY})
    now = utcnow()
    for item in pending:
        item.created_at = now
    session.add_all(pending)
    database = database_of(session)

    async def announce() -> None:
        # Wakes this instance's relay, which also tells the other instances.
        database.send(EVENTS_COMMITTED)

    after_commit(session, announce, key=EVENTS_COMMITTED)


@event.listens_for(KeelSession, "after_soft_rollback")
def _discard_pending_events(session: Session, _previous: SessionTransaction) -> None:
    session.info.pop(_PENDING, None)


# --- reading the outbox ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who receives events: owners see their projects, admins see all; optional filter."""

    user_id: uuid.UUID
    is_admin: bool
    project_ids: frozenset[uuid.UUID] | None = None

    def may_see(self, *, owner_id: uuid.UUID, project_id: uuid.UUID) -> bool:
        if self.project_ids is not None and project_id not in self.project_ids:
            return False
        return self.is_admin or owner_id == self.user_id


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """A committed event, serialised once and shared by every subscriber that gets it."""

    id: int
    type: str
    owner_id: uuid.UUID
    project_id: uuid.UUID
    json: str

    @property
    def sse(self) -> bytes:
        return f"id: {self.id}\nevent: {self.type}\ndata: {self.json}\n\n".encode()


def to_outgoing(row: Event) -> OutgoingEvent:
    body = {
        "id": str(row.id),
        "type": row.type,
        "data": row.payload,
        "timestamp": iso_z(row.created_at),
    }
    return OutgoingEvent(
        id=row.id,
        type=row.type,
        owner_id=row.owner_id,
        project_id=row.project_id,
        json=orjson.dumps(body).decode(),
    )


async def latest_event_id(session: AsyncSession) -> int:
    """The highest id ever committed (including purged ones)."""
    newest = await session.scalar(select(func.max(Event.id)))
    return max(newest or 0, await purged_through(session))


async def purged_through(session: AsyncSession) -> int:
    value = await session.scalar(
        select(EventWatermark.value).where(EventWatermark.name == PURGED_WATERMARK)
    )
    return int(value or 0)


async def events_after(
    session: AsyncSession, *, after_id: int, viewer: Viewer | None = None, limit: int = 500
) -> Sequence[Event]:
    """Committed events with id > after_id in id (= commit) order, visible to `viewer`."""
    query = select(Event).where(Event.id > after_id).order_by(Event.id).limit(limit)
    if viewer is not None:
        if not viewer.is_admin:
            query = query.where(Event.owner_id == viewer.user_id)
        if viewer.project_ids is not None:
            query = query.where(Event.project_id.in_(viewer.project_ids))
    return (await session.scalars(query)).all()


@dataclass(frozen=True, slots=True)
class ResumePoint:
    cursor: int
    resync: bool


def parse_event_id(raw: str | None) -> int | None:
    if raw is None or not raw.strip().isdigit() or len(raw.strip()) > 19:
        return None
    return int(raw.strip())


async def resume_point(session: AsyncSession, last_event_id: str | None) -> ResumePoint:
    """Where a subscriber starts: right after its last event, or now (with a resync signal
    when that event is unknown or older than the retention window)."""
    latest = await latest_event_id(session)
    if last_event_id is None:
        return ResumePoint(cursor=latest, resync=False)
    after = parse_event_id(last_event_id)
    if after is None or after > latest or after < await purged_through(session):
        return ResumePoint(cursor=latest, resync=True)
    return ResumePoint(cursor=after, resync=False)


async def purge_events(session: AsyncSession, *, older_than: datetime) -> int:
    """Delete outbox rows created before `older_than`, as one contiguous id prefix.

    Records the highest purged id so that resumes from before it get a resync. The newest
    row is always kept, so SQLite (which may reuse the highest rowid) never reissues an id.
    """
    newest = await session.scalar(select(func.max(Event.id)))
    through = await session.scalar(select(func.max(Event.id)).where(Event.created_at < older_than))
    if newest is None or through is None:
        return 0
    through = min(through, newest - 1)
    if through <= 0:
        return 0
    result = await session.execute(delete(Event).where(Event.id <= through))
    await _raise_watermark(session, through)
    return int(getattr(result, "rowcount", 0) or 0)


async def _raise_watermark(session: AsyncSession, value: int) -> None:
    result = await session.execute(
        update(EventWatermark)
        .where(EventWatermark.name == PURGED_WATERMARK, EventWatermark.value < value)
        .values(value=value)
    )
    if getattr(result, "rowcount", 0):
        return
    if await session.get(EventWatermark, PURGED_WATERMARK) is not None:
        return  # already at or above `value`
    try:
        async with session.begin_nested():
            session.add(EventWatermark(name=PURGED_WATERMARK, value=value))
    except IntegrityError:  # another instance inserted it first; raise it instead
        await _raise_watermark(session, value)


async def purge_expired_tickets(session: AsyncSession) -> int:
    result = await session.execute(delete(EventTicket).where(EventTicket.expires_at < utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def retention_cutoff(retention_seconds: int) -> datetime:
    return utcnow() - timedelta(seconds=retention_seconds)
