"""Queries on users and auth sessions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from keel.identity.models import AuthSession, EmailToken, User


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == email.strip().lower()))
    return result.scalar_one_or_none()


async def live_session_user(
    conn: AsyncConnection, *, family_id: uuid.UUID, user_id: uuid.UUID
) -> Row[str, str, str, bool, datetime] | None:
    """(role, email, name, email_verified, created_at) while the session family exists, has
    no revoked step and the user is active; None otherwise. One round trip, Core only: this
    runs on cache misses of the per-request authentication check."""
    family = AuthSession.__table__
    users = User.__table__
    in_family = and_(family.c.family_id == family_id, family.c.user_id == user_id)
    stmt = select(
        users.c.role, users.c.email, users.c.name, users.c.email_verified, users.c.created_at
    ).where(
        users.c.id == user_id,
        users.c.is_active.is_(True),
        exists().where(in_family),
        ~exists().where(in_family, family.c.revoked_at.is_not(None)),
    )
    return (await conn.execute(stmt)).first()


async def get_session_by_jti_hash(session: AsyncSession, jti_hash: str) -> AuthSession | None:
    result = await session.execute(
        select(AuthSession)
        .where(AuthSession.jti_hash == jti_hash)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def claim_for_rotation(
    session: AsyncSession, *, session_id: uuid.UUID, used_at: datetime
) -> bool:
    """Mark a refresh step used, atomically: True for the one caller that got it.

    Concurrent callers with the same token wait on the row lock (PostgreSQL) or the database
    lock (SQLite) and then see it already used.
    """
    result = await session.execute(
        update(AuthSession)
        .where(
            AuthSession.id == session_id,
            AuthSession.used_at.is_(None),
            AuthSession.revoked_at.is_(None),
        )
        .values(used_at=used_at)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def revoke_families(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    revoked_at: datetime,
    family_ids: list[uuid.UUID] | None = None,
    keep: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Revoke the given families of a user (all when None, except `keep`); return their ids."""
    conditions = [AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)]
    if family_ids is not None:
        conditions.append(AuthSession.family_id.in_(family_ids))
    if keep is not None:
        conditions.append(AuthSession.family_id != keep)
    ids = (
        await session.execute(select(AuthSession.family_id).where(*conditions).distinct())
    ).scalars()
    revoked = list(ids)
    if revoked:
        await session.execute(
            update(AuthSession)
            .where(*conditions)
            .values(revoked_at=revoked_at)
            .execution_options(synchronize_session=False)
        )
    return revoked


async def delete_expired_families(session: AsyncSession, *, before: datetime) -> int:
    """Delete whole families whose every step expired before `before` (never part of a live
    family: steps point at their parent, and the parent link cascades)."""
    dead = (
        select(AuthSession.family_id)
        .group_by(AuthSession.family_id)
        .having(func.max(AuthSession.expires_at) < before)
    )
    # Counted first: SQLite's row count leaves out rows removed by the parent cascade.
    count = (
        await session.execute(
            select(func.count()).select_from(AuthSession).where(AuthSession.family_id.in_(dead))
        )
    ).scalar_one()
    await session.execute(
        delete(AuthSession)
        .where(AuthSession.family_id.in_(dead))
        .execution_options(synchronize_session=False)
    )
    return int(count)


async def family_ids_of_user(session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    result = await session.execute(
        select(AuthSession.family_id).where(AuthSession.user_id == user_id).distinct()
    )
    return list(result.scalars())


@dataclass(frozen=True, slots=True)
class FamilySummary:
    family_id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None


async def live_families(
    session: AsyncSession, *, user_id: uuid.UUID, now: datetime
) -> list[FamilySummary]:
    """The user's sessions that can still be refreshed, newest activity first."""
    agg = (
        select(
            AuthSession.family_id,
            func.min(AuthSession.issued_at).label("created_at"),
            func.max(AuthSession.issued_at).label("last_used_at"),
            func.max(AuthSession.expires_at).label("expires_at"),
        )
        .where(AuthSession.user_id == user_id)
        .group_by(AuthSession.family_id)
        .having(func.count(AuthSession.revoked_at) == 0)
    )
    families = {row.family_id: row for row in (await session.execute(agg)).all()}
    families = {fid: row for fid, row in families.items() if row.expires_at > now}
    if not families:
        return []
    heads = await session.execute(
        select(AuthSession.family_id, AuthSession.user_agent, AuthSession.ip)
        .where(AuthSession.family_id.in_(list(families)), AuthSession.used_at.is_(None))
        .order_by(AuthSession.issued_at)
    )
    where = {row.family_id: row for row in heads.all()}
    summaries = [
        FamilySummary(
            family_id=fid,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            user_agent=where[fid].user_agent if fid in where else None,
            ip=where[fid].ip if fid in where else None,
        )
        for fid, row in families.items()
    ]
    return sorted(summaries, key=lambda s: s.last_used_at, reverse=True)


async def list_users(session: AsyncSession, *, offset: int, limit: int) -> tuple[list[User], int]:
    total = (await session.execute(select(func.count()).select_from(User))).scalar_one()
    result = await session.execute(
        select(User).order_by(User.created_at.desc(), User.id).offset(offset).limit(limit)
    )
    return list(result.scalars()), int(total)


async def get_users(session: AsyncSession, user_ids: Sequence[uuid.UUID]) -> list[User]:
    result = await session.execute(select(User).where(User.id.in_(user_ids)))
    return list(result.scalars())


# --- one-time mail tokens (SPEC §11) -------------------------------------------------------


async def get_email_token(session: AsyncSession, token_hash: str) -> EmailToken | None:
    return (
        await session.execute(select(EmailToken).where(EmailToken.token_hash == token_hash))
    ).scalar_one_or_none()


async def consume_email_token(
    session: AsyncSession, *, token_hash: str, purposes: Sequence[str], now: datetime
) -> EmailToken | None:
    """Use up a live token in one statement: of two concurrent uses, exactly one gets it."""
    row = (
        await session.execute(
            update(EmailToken)
            .where(
                EmailToken.token_hash == token_hash,
                EmailToken.purpose.in_(list(purposes)),
                EmailToken.used_at.is_(None),
                EmailToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(
                EmailToken.id,
                EmailToken.purpose,
                EmailToken.user_id,
                EmailToken.email,
                EmailToken.expires_at,
            )
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        return None
    return EmailToken(
        id=row.id,
        purpose=row.purpose,
        user_id=row.user_id,
        email=row.email,
        expires_at=row.expires_at,
        used_at=now,
    )


async def retire_email_tokens(
    session: AsyncSession, *, user_id: uuid.UUID, purposes: Sequence[str], now: datetime
) -> None:
    """Use up every live token of these purposes of a user (a newer one supersedes them)."""
    await session.execute(
        update(EmailToken)
        .where(
            EmailToken.user_id == user_id,
            EmailToken.purpose.in_(list(purposes)),
            EmailToken.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
