"""The caller's password: proving it before a sensitive change, and changing it."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.identity import repository, sessions
from keel.identity.auditing import audit_user
from keel.identity.models import User
from keel.identity.passwords import identifier_problem
from keel.identity.service import Identity, get_profile
from keel.identity.service import _locked_error as locked_error
from keel.identity.service import _login_failed as login_failed
from keel.identity.service import _login_scopes as login_scopes
from keel.platform.actor import Actor, RequestContext
from keel.platform.db import utcnow
from keel.platform.errors import ErrorDetail, Forbidden, ValidationFailed

REVERIFY_ACTION = "auth.password_verify"


async def verify_password(
    identity: Identity, actor: Actor, *, password: str, context: RequestContext
) -> None:
    """The caller proves their password; checked before the request's own transaction
    touches the database, so no connection is held during the hash.

    Counted like a failed sign-in against the account (and the IP): a stolen access token
    cannot guess the password at the request rate. Failures are slowed, then the account is
    locked for sign-in and re-verification alike; every failure and lock is audited.
    """
    async with identity.db.sessions() as lookup:
        user = await repository.get_user(lookup, actor.user_id)
    if user is None:
        raise sessions.ended()
    scopes = login_scopes(identity, email=user.email, context=context)
    retry_after = await identity.throttle.retry_after(scopes)
    if retry_after:
        await audit.record_detached(
            identity.db.sessions,
            action=REVERIFY_ACTION,
            context=context,
            actor_id=user.id,
            outcome="failure",
            details={"reason": "locked"},
        )
        raise locked_error(retry_after)
    if not await identity.hasher.verify(user.password_hash, password):
        await login_failed(
            identity,
            scopes=scopes,
            user=user,
            context=context,
            reason="invalid_password",
            action=REVERIFY_ACTION,
        )
        raise Forbidden("The password is not correct", code="INVALID_PASSWORD")
    await identity.throttle.reset(scopes[0])


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
    await verify_password(identity, actor, password=current_password, context=context)
    user = await get_profile(session, actor)
    problem = identifier_problem(new_password, email=user.email, name=user.name)
    if problem is not None:
        raise ValidationFailed(details=[ErrorDetail(field="newPassword", message=problem)])
    await replace_password(
        session,
        identity,
        user=user,
        new_hash=await identity.hasher.hash(new_password),
        keep=actor.session_id,
        action="auth.password_change",
        context=context,
    )


async def replace_password(
    session: AsyncSession,
    identity: Identity,
    *,
    user: User,
    new_hash: str,
    keep: uuid.UUID | None,
    action: str,
    context: RequestContext,
) -> None:
    """Store a new password hash and revoke every session of the user but `keep` (None:
    all of them), at once on every instance; audited as `action`."""
    user.password_hash = new_hash
    revoked = await repository.revoke_families(
        session, user_id=user.id, keep=keep, revoked_at=utcnow()
    )
    await session.flush()
    await sessions.forget_sessions(session, identity, family_ids=revoked)
    await audit_user(
        session,
        action=action,
        user_id=user.id,
        context=context,
        details={"sessionsRevoked": len(revoked)},
    )
