"""The caller's password: proving it before a sensitive change, and changing it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from keel.identity import repository, sessions
from keel.identity.auditing import audit_user
from keel.identity.service import Identity, get_profile
from keel.platform.actor import Actor, RequestContext
from keel.platform.db import utcnow
from keel.platform.errors import Forbidden


async def verify_password(identity: Identity, actor: Actor, *, password: str) -> None:
    """The caller proves their password; checked before the request's own transaction
    touches the database, so no connection is held during the hash."""
    async with identity.db.sessions() as lookup:
        user = await repository.get_user(lookup, actor.user_id)
    if user is None:
        raise sessions.ended()
    if not await identity.hasher.verify(user.password_hash, password):
        raise Forbidden("The password is not correct", code="INVALID_PASSWORD")


async def change_password(
    session: AsyncSession,
    identity: Identity,
    actor: Actor,
    *,
    current_password: str,
    new_password: str,
    context: RequestContext,
) -> None:
    """Set a new password (proving the current one) and sign out every other session."""
    await verify_password(identity, actor, password=current_password)
    new_hash = await identity.hasher.hash(new_password)
    user = await get_profile(session, actor)
    user.password_hash = new_hash
    revoked = await repository.revoke_families(
        session, user_id=user.id, keep=actor.session_id, revoked_at=utcnow()
    )
    await session.flush()
    await sessions.forget_sessions(session, identity, family_ids=revoked)
    await audit_user(
        session,
        action="auth.password_change",
        user_id=user.id,
        context=context,
        details={"sessionsRevoked": len(revoked)},
    )
