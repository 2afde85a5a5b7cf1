"""The outbox sequencer: gives committed events their client-visible positions (ADR 0011)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.db import Database
from keel.platform.direct import observed, on_driver
from keel.realtime.models import Event
from keel.realtime.service import events_after, raise_purged_watermark

log = structlog.get_logger("keel.realtime")

# Arbitrary constant: the advisory lock one sequencer pass holds ('keel' in ASCII). It is
# taken by the relay, never by a writer: writes commit in parallel, unordered.
SEQUENCER_LOCK_KEY = 0x6B65656C

_LOCK = "SELECT pg_advisory_xact_lock($1)"
# The pass after the lock, in one statement (so in one snapshot taken after the lock): up to
# $1 unnumbered events numbered after the top position in id order, in position order, each
# with that top (one row of the top alone when there are none).
_NUMBER = """
WITH top AS (SELECT coalesce(max(position), 0) AS top FROM events),
ready AS (
    SELECT id, row_number() OVER (ORDER BY id) AS n
    FROM events WHERE position IS NULL ORDER BY id LIMIT $1
),
numbered AS (
    UPDATE events SET position = ready.n + top.top
    FROM ready, top
    WHERE events.id = ready.id
    RETURNING events.position, events.type, events.project_id, events.owner_id,
        events.payload::text AS payload, events.created_at
)
SELECT top.top, numbered.* FROM top LEFT JOIN numbered ON true ORDER BY numbered.position
"""


@dataclass(frozen=True, slots=True)
class NumberedEvent:
    """An event the relay has just numbered, as the driver returned it."""

    position: int
    type: str
    project_id: uuid.UUID
    owner_id: uuid.UUID
    payload: dict[str, Any]  # Any: the event's JSON payload
    created_at: datetime


async def number(database: Database, *, floor: int, limit: int) -> Sequence[Event | NumberedEvent]:
    """One sequencer pass in its own transaction: the numbered events in position order.

    On PostgreSQL it is four round trips on the driver (begin, lock, number, commit), below
    SQLAlchemy's ORM, which cost more than the round trips (docs/performance.md). The ORM
    pass (`assign_positions`) serves SQLite, tracing (its SQL spans come from SQLAlchemy's
    events) and the rare pass that finds the outbox below `floor`.
    """
    if database.direct_path:
        numbered = await _number_on_driver(database, floor=floor, limit=limit)
        if numbered is not None:
            return numbered
    async with database.transaction() as session:
        return await assign_positions(session, floor=floor, limit=limit)


_AFTER = """
SELECT position, type, project_id, owner_id, payload::text AS payload, created_at
FROM events WHERE position > $1 ORDER BY position LIMIT $2
"""


async def numbered_after(
    database: Database, *, after: int, limit: int
) -> Sequence[Event | NumberedEvent]:
    """Numbered events with position > `after`, in position order: what the relay reads when
    another instance numbered them. On PostgreSQL one query on the driver (as `number`)."""
    if database.direct_path:

        async def run(driver: Any) -> list[NumberedEvent]:
            # Any: asyncpg's Connection (untyped).
            observe = database.observe_statement
            return _numbered(await observed(observe, _AFTER, driver.fetch(_AFTER, after, limit)))

        async with database.primary.connect() as connection:
            return await on_driver(connection, run, sql=_AFTER)
    async with database.sessions() as session:
        return await events_after(session, after_id=after, limit=limit)


def _numbered(records: Sequence[Any]) -> list[NumberedEvent]:
    # Any: asyncpg's Records (untyped); a row without a position is the top's alone.
    return [
        NumberedEvent(
            position=record["position"],
            type=record["type"],
            project_id=record["project_id"],
            owner_id=record["owner_id"],
            payload=orjson.loads(record["payload"]),
            created_at=record["created_at"],
        )
        for record in records
        if record["position"] is not None
    ]


class _Rewound(Exception):
    """The outbox's top position is below the relay's cursor: roll back, take the ORM pass."""


async def _number_on_driver(
    database: Database, *, floor: int, limit: int
) -> list[NumberedEvent] | None:
    async def run(driver: Any) -> list[NumberedEvent]:
        # Any: asyncpg's Connection (untyped).
        async with driver.transaction():
            await driver.execute(_LOCK, SEQUENCER_LOCK_KEY)
            observe = database.observe_statement
            records = await observed(observe, _NUMBER, driver.fetch(_NUMBER, limit))
            if records[0]["top"] < floor:  # a restore rewound the outbox: roll back
                raise _Rewound
        return _numbered(records)

    async with database.primary.connect() as connection:
        try:
            return await on_driver(connection, run, sql=_NUMBER, passes=(_Rewound,))
        except _Rewound:
            return None


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
