"""Queries on users and auth sessions."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from keel.identity.models import AuthSession, User


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == email.lower()))
    return result.scalar_one_or_none()


async def family_is_live(
    session: AsyncSession, *, family_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """True while the session family has no revoked step and its user is active."""
    revoked = await session.execute(
        select(AuthSession.id)
        .where(AuthSession.family_id == family_id, AuthSession.revoked_at.is_not(None))
        .limit(1)
    )
    if revoked.first() is not None:
        return False
    exists = await session.execute(
        select(User.is_active)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(AuthSession.family_id == family_id, User.id == user_id)
        .limit(1)
    )
    row = exists.first()
    return bool(row and row[0])
