"""Administration of users: listing, role and activation changes, the CLI's admin account."""

from __future__ import annotations

import math
import uuid
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.identity import repository, sessions
from keel.identity.auditing import audit_user
from keel.identity.models import User
from keel.identity.schemas import UserPatchIn
from keel.identity.service import Identity
from keel.platform.actor import Actor, RequestContext
from keel.platform.db import utcnow
from keel.platform.errors import Conflict, Forbidden, NotFound


def require_admin(actor: Actor) -> None:
    """Authorization enforced again in the service, whatever the route declared."""
    if not actor.is_admin:
        raise Forbidden("Administrator role required")


async def list_users(
    session: AsyncSession, actor: Actor, *, page: int, limit: int
) -> tuple[list[User], int]:
    require_admin(actor)
    return await repository.list_users(session, offset=(page - 1) * limit, limit=limit)


def total_pages(total: int, limit: int) -> int:
    return math.ceil(total / limit) if total else 0


async def _forget_user_sessions(
    session: AsyncSession, identity: Identity, *, user_id: uuid.UUID
) -> None:
    # Every session of the user re-reads role and activation on its next request.
    families = await repository.family_ids_of_user(session, user_id)
    await sessions.forget_sessions(session, identity, family_ids=families)


async def update_user(
    session: AsyncSession,
    identity: Identity,
    actor: Actor,
    *,
    user_id: uuid.UUID,
    changes: UserPatchIn,
    context: RequestContext,
) -> User:
    """Change a user's role or activation; deactivation signs them out everywhere."""
    require_admin(actor)
    user = await repository.get_user(session, user_id)
    if user is None:
        raise NotFound("User not found")
    if user.id == actor.user_id and (
        (changes.role is not None and changes.role != user.role) or changes.is_active is False
    ):
        raise Conflict("Administrators cannot demote or deactivate themselves", code="SELF_CHANGE")
    audit_change = partial(audit_user, session, user_id=user.id, context=context, by=actor.user_id)
    touched = False
    if changes.role is not None and changes.role != user.role:
        await audit_change(
            action="user.role_change", details={"from": user.role, "to": changes.role}
        )
        user.role = changes.role
        touched = True
    if changes.is_active is not None and changes.is_active != user.is_active:
        await audit_change(action="user.activation_change", details={"isActive": changes.is_active})
        user.is_active = changes.is_active
        touched = True
        if not changes.is_active:
            await repository.revoke_families(session, user_id=user.id, revoked_at=utcnow())
    await session.flush()
    if touched:
        await _forget_user_sessions(session, identity, user_id=user.id)
    return user


async def ensure_admin(
    session: AsyncSession, identity: Identity, *, email: str, password: str, name: str
) -> tuple[User, bool]:
    """Make the account an administrator, creating it when missing (for the CLI).

    Returns the user and whether it was created. An existing user keeps their password.
    """
    email = email.strip().lower()
    user = await repository.get_user_by_email(session, email)
    created = user is None
    if user is None:
        user = User(
            email=email,
            name=name,
            role="admin",
            password_hash=await identity.hasher.hash(password),
        )
        session.add(user)
    else:
        user.role = "admin"
        user.is_active = True
    await session.flush()
    # No actor: the operator at the console is not a user.
    await audit.record(
        session,
        action="user.create_admin",
        context=RequestContext(request_id="cli"),
        target_type="user",
        target_id=user.id,
        details={"created": created},
    )
    await _forget_user_sessions(session, identity, user_id=user.id)
    return user, created
