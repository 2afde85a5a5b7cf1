"""Queries of the webhooks feature (endpoints, deliveries, attempts, the fan-out cursor)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from keel.webhooks.models import (
    WebhookAttempt,
    WebhookCursor,
    WebhookDelivery,
    WebhookEndpoint,
)

FANOUT_CURSOR = "fanout"


async def endpoints_of(session: AsyncSession, user_id: uuid.UUID) -> Sequence[WebhookEndpoint]:
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.user_id == user_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return (await session.scalars(query)).all()


async def active_endpoints_of(
    session: AsyncSession, user_ids: set[uuid.UUID]
) -> Sequence[WebhookEndpoint]:
    """The users' active endpoints, locked until the transaction ends: a drain that starts
    meanwhile clears `drain_requested_at` only after the fan-out commits, so it sees the
    fan-out's deliveries (or the fan-out sees it cleared and requests another drain)."""
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.user_id.in_(user_ids), WebhookEndpoint.is_active.is_(True))
        .with_for_update()
    )
    return (await session.scalars(query)).all()


async def deliveries_of(
    session: AsyncSession, endpoint_id: uuid.UUID, *, limit: int
) -> Sequence[WebhookDelivery]:
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.event_id.desc())
        .limit(limit)
    )
    return (await session.scalars(query)).all()


async def attempts_of(
    session: AsyncSession, delivery_ids: Sequence[str]
) -> dict[str, list[WebhookAttempt]]:
    found: dict[str, list[WebhookAttempt]] = {key: [] for key in delivery_ids}
    if not delivery_ids:
        return found
    query = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.id)
    )
    for attempt in (await session.scalars(query)).all():
        found[attempt.delivery_id].append(attempt)
    return found


async def queue_heads(
    session: AsyncSession, endpoint_id: uuid.UUID, *, limit: int = 50
) -> Sequence[WebhookDelivery]:
    """The oldest pending delivery of each project at one endpoint, oldest first: only a
    project's head may be sent (one project's events go out in order)."""
    earlier = aliased(WebhookDelivery)
    older_pending = (
        select(earlier.id)
        .where(
            earlier.endpoint_id == WebhookDelivery.endpoint_id,
            earlier.project_id == WebhookDelivery.project_id,
            earlier.status == "pending",
            earlier.event_id < WebhookDelivery.event_id,
        )
        .exists()
    )
    query = (
        select(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == "pending",
            ~older_pending,
        )
        .order_by(WebhookDelivery.event_id)
        .limit(limit)
    )
    return (await session.scalars(query)).all()


async def fail_pending(session: AsyncSession, endpoint_id: uuid.UUID) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .values(status="failed", next_attempt_at=None)
    )


async def lock_cursor(session: AsyncSession) -> WebhookCursor:
    """The fan-out cursor, locked until the transaction ends (one fan-out at a time).

    SQLite has no FOR UPDATE, and its driver begins a transaction only at the first write:
    a no-op write to the cursor comes first, so the whole fan-out holds SQLite's one write
    lock and nothing it reads next can change before it commits."""
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(
            update(WebhookCursor)
            .where(WebhookCursor.name == FANOUT_CURSOR)
            .values(value=WebhookCursor.value)
            .execution_options(synchronize_session=False)
        )
    cursor = await session.get(WebhookCursor, FANOUT_CURSOR, with_for_update=True)
    if cursor is None:
        cursor = WebhookCursor(name=FANOUT_CURSOR, value=0)
        session.add(cursor)
        await session.flush()
    return cursor
