"""The outbox sequencer: gives committed events their client-visible positions (ADR 0011)."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.realtime.models import Event
from keel.realtime.service import raise_purged_watermark

log = structlog.get_logger("keel.realtime")

# Arbitrary constant: the advisory lock one sequencer pass holds ('keel' in ASCII). It is
# taken by the relay, never by a writer: writes commit in parallel, unordered.
SEQUENCER_LOCK_KEY = 0x6B65656C


async def assign_positions(session: AsyncSession, *, floor: int, limit: int) -> Sequence[Event]:
    """Number up to `limit` committed, unnumbered events after every position already given.

    Passes of all instances run one at a time (a transaction-scoped advisory lock on
    PostgreSQL; SQLite has one writer), and a pass only sees committed rows, so a position
    is never handed out below one a reader may already have seen: "every position after my
    cursor" never skips a late commit. A transaction that commits late simply gets a later
    position. `floor` is the highest position this instance has relayed: if the database
    has less (a restore rewound it), numbering continues above it and the purge watermark
    is raised to it, so no position is reissued and resumes from before it get a resync.
    The caller commits, and only then may the events be delivered.
    """
    if session.get_bind().dialect.name == "postgresql":
        # Its own statement: the next one's snapshot then sees the previous pass's positions.
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCER_LOCK_KEY}
        )
    top = await session.scalar(select(func.coalesce(func.max(Event.position), 0))) or 0
    if floor > top:
        log.warning("outbox_rewound", database_top=top, relayed_through=floor)
        await raise_purged_watermark(session, floor)
        top = floor
    ready = (
        select(Event.id.label("id"), func.row_number().over(order_by=Event.id).label("n"))
        .where(Event.position.is_(None))
        .order_by(Event.id)
        .limit(limit)
        .subquery()
    )
    statement = (
        update(Event)
        .where(Event.id == ready.c.id)
        .values(position=ready.c.n + top)
        .returning(Event)
        .execution_options(synchronize_session=False)
    )
    rows = list((await session.scalars(statement)).all())
    rows.sort(key=lambda row: row.position or 0)
    return rows
