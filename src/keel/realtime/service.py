"""Realtime events: the transactional outbox other features write to, and reading it back.

Ordering guarantee (ADR 0011): writers insert events in their own transaction and take no
lock. The client-visible event id is the row's `position`, which the relay's sequencer
(realtime/sequencer.py) assigns after the commit, one pass at a time, above every position
given before. Readers follow positions only, so "every position > my cursor" never skips
a late commit and every reader sees the same order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, cast

import orjson
from sqlalchemy import Table, delete, event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from keel.platform.db import InsertRow, KeelSession, after_commit, database_of, utcnow
from keel.platform.timestamps import iso_z
from keel.realtime.models import Event, EventTicket, EventWatermark

ProjectEventType = Literal["project.created", "project.updated", "project.deleted"]

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
    project as the API shows it (camelCase JSON-ready dict). The row is inserted just
    before the commit (one flush for all of the transaction's events), so it is not
    visible to queries in the same transaction.
    """
    # Any: JSON-ready payload values.
    pending: list[Event] = session.info.setdefault(_PENDING, [])
    pending.append(
        Event(type=event_type, project_id=project_id, owner_id=owner_id, payload=payload)
    )


EVENTS_COMMITTED = "realtime.events_committed"
# Sent once a numbering pass of this instance's relay has delivered events: what reads the
# outbox by position (the webhook fan-out) has work then.
EVENTS_NUMBERED = "realtime.events_numbered"
EVENTS = cast(Table, Event.__table__)


def project_event_row(
    session: AsyncSession,
    *,
    event_type: ProjectEventType,
    project_id: uuid.UUID,
    owner_id: uuid.UUID,
    payload: dict[str, Any],
) -> InsertRow:
    """One outbox row, for `keel.platform.db.insert_rows` in the caller's transaction: like
    record_project_event, but written with the change's other rows (one round trip)."""
    # Any: JSON-ready payload values.
    _announce_after_commit(session)
    return EVENTS, {
        "position": None,
        "type": event_type,
        "project_id": project_id,
        "owner_id": owner_id,
        "payload": payload,
        "created_at": utcnow(),
    }


def _announce_after_commit(session: AsyncSession | Session) -> None:
    database = database_of(session)

    async def announce() -> None:
        # Wakes this instance's relay, which numbers the events and tells the other instances.
        database.send(EVENTS_COMMITTED)

    after_commit(session, announce, key=EVENTS_COMMITTED)


@event.listens_for(KeelSession, "before_commit")
def _write_pending_events(session: Session) -> None:
    pending: list[Event] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    now = utcnow()
    for item in pending:
        item.created_at = now
    session.add_all(pending)
    _announce_after_commit(session)


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

    id: int  # the position (the client-visible event id)
    type: str
    owner_id: uuid.UUID
    project_id: uuid.UUID
    json: str

    @property
    def sse(self) -> bytes:
        return f"id: {self.id}\nevent: {self.type}\ndata: {self.json}\n\n".encode()


class EventRow(Protocol):
    """A numbered outbox row: the ORM's Event, or the relay's NumberedEvent (sequencer)."""

    @property
    def position(self) -> int | None: ...
    @property
    def type(self) -> str: ...
    @property
    def project_id(self) -> uuid.UUID: ...
    @property
    def owner_id(self) -> uuid.UUID: ...
    @property
    def payload(self) -> dict[str, Any]: ...  # Any: the event's JSON payload
    @property
    def created_at(self) -> datetime: ...


def to_outgoing(row: EventRow) -> OutgoingEvent:
    """A numbered event as subscribers receive it."""
    assert row.position is not None, "only numbered events are delivered"
    body = {
        "id": str(row.position),
        "type": row.type,
        "data": row.payload,
        "timestamp": iso_z(row.created_at),
    }
    return OutgoingEvent(
        id=row.position,
        type=row.type,
        owner_id=row.owner_id,
        project_id=row.project_id,
        json=orjson.dumps(body).decode(),
    )


async def latest_event_id(session: AsyncSession) -> int:
    """The highest position ever given (including purged ones)."""
    newest = await session.scalar(select(func.max(Event.position)))
    return max(newest or 0, await purged_through(session))


async def purged_through(session: AsyncSession) -> int:
    value = await session.scalar(
        select(EventWatermark.value).where(EventWatermark.name == PURGED_WATERMARK)
    )
    return int(value or 0)


async def events_after(
    session: AsyncSession, *, after_id: int, viewer: Viewer | None = None, limit: int = 500
) -> Sequence[Event]:
    """Numbered events with position > after_id in position order, visible to `viewer`."""
    query = select(Event).where(Event.position > after_id).order_by(Event.position).limit(limit)
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
    """Delete numbered outbox rows created before `older_than`, as one contiguous position
    prefix.

    Records the highest purged position so that resumes from before it get a resync. The
    newest row is always kept, so the next position is never one already given.
    """
    newest = await session.scalar(select(func.max(Event.position)))
    through = await session.scalar(
        select(func.max(Event.position)).where(Event.created_at < older_than)
    )
    if newest is None or through is None:
        return 0
    through = min(through, newest - 1)
    if through <= 0:
        return 0
    result = await session.execute(delete(Event).where(Event.position <= through))
    await raise_purged_watermark(session, through)
    return int(getattr(result, "rowcount", 0) or 0)


async def raise_purged_watermark(session: AsyncSession, value: int) -> None:
    """Resumes from a position at or below `value` get a resync from now on."""
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
        await raise_purged_watermark(session, value)


async def purge_expired_tickets(session: AsyncSession) -> int:
    result = await session.execute(delete(EventTicket).where(EventTicket.expires_at < utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def retention_cutoff(retention_seconds: int) -> datetime:
    return utcnow() - timedelta(seconds=retention_seconds)
