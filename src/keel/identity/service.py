"""Identity's core: the Identity part and slot; registration, sign-in, refresh, logout, erasure."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.identity import mail_links, repository, sessions, totp
from keel.identity.auditing import audit_user
from keel.identity.models import User
from keel.identity.schemas import LoginIn, RegisterIn
from keel.identity.sessions import IssuedTokens
from keel.identity.throttle import (
    LoginThrottle,
    MemoryLoginThrottle,
    RedisLoginThrottle,
    Scope,
    failure_delay,
)
from keel.platform.actor import Actor, RequestContext, VerifiedToken
from keel.platform.cache import Cache
from keel.platform.db import Database, set_rls_actor, utcnow
from keel.platform.errors import Conflict, TooManyRequests, Unauthorized
from keel.platform.security import (
    Encryptor,
    PasswordHasher,
    TokenCodec,
    derive_key,
    keyed_hash,
)
from keel.platform.services import Slot
from keel.settings import Settings


@dataclass(eq=False)
class Identity:
    """What identity services need from the app, built once in create_app.

    It is also the app's Authenticator (keel.platform.auth): the one path from an access
    token to an Actor, for every front door.
    """

    settings: Settings
    hasher: PasswordHasher
    tokens: TokenCodec
    database: Database
    encryptor: Encryptor
    cache: Cache
    redis: Redis | None = None
    _throttle: LoginThrottle | None = field(default=None, init=False)
    _child_key: bytes = field(default=b"", init=False)

    def __post_init__(self) -> None:
        # Derives the next refresh token's jti from the one it replaces, so concurrent
        # refreshes within the grace window can be answered with the same pair again
        # without storing any token.
        self._child_key = derive_key(self.settings.signing_secret, b"refresh-rotation")

    @property
    def db(self) -> Database:
        return self.database

    @property
    def throttle(self) -> LoginThrottle:
        if self._throttle is None:
            window = self.settings.login_failure_window_seconds
            lockout = self.settings.login_lockout_seconds
            self._throttle = (
                RedisLoginThrottle(self.redis, window_seconds=window, lockout_seconds=lockout)
                if self.redis is not None
                else MemoryLoginThrottle(window_seconds=window, lockout_seconds=lockout)
            )
        return self._throttle

    def child_jti(self, parent_jti: str, purpose: str) -> str:
        return keyed_hash(self._child_key, f"{purpose}:{parent_jti}")[:32]

    async def authenticate(self, token: str, *, verified: VerifiedToken | None = None) -> Actor:
        return await sessions.authenticate_token(
            self, token=token, verified_claims=verified.claims if verified else None
        )

    async def recheck(self, actor: Actor) -> Actor:
        return await sessions.live_actor(
            self, user_id=actor.user_id, session_id=actor.session_id, expires_at=actor.expires_at
        )


IDENTITY: Slot[Identity] = Slot("identity")


# --- registration and sign-in --------------------------------------------------------------


async def register(
    session: AsyncSession, identity: Identity, *, data: RegisterIn, context: RequestContext
) -> tuple[User, IssuedTokens]:
    email = str(data.email).strip().lower()
    # Hash first: no database connection is held while waiting for a hashing slot.
    password_hash = await identity.hasher.hash(data.password)
    if await repository.get_user_by_email(session, email) is not None:
        raise Conflict("An account with this email already exists", code="EMAIL_TAKEN")
    user = User(email=email, name=data.name, role="user", password_hash=password_hash)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        raise Conflict("An account with this email already exists", code="EMAIL_TAKEN") from exc
    await audit_user(session, action="auth.register", user_id=user.id, context=context)
    # In this transaction: the verification mail goes out if and only if the account exists.
    await mail_links.send_verification(session, identity.settings, identity.encryptor, user=user)
    return user, await sessions.start_session(session, identity, user=user, context=context)


def _login_scopes(identity: Identity, *, email: str, context: RequestContext) -> list[Scope]:
    settings = identity.settings
    scopes = [Scope.account(email, settings.login_max_failures_per_account)]
    if context.ip:
        scopes.append(Scope.ip(context.ip, settings.login_max_failures_per_ip))
    return scopes


def _locked_error(retry_after: int) -> TooManyRequests:
    return TooManyRequests(
        "Too many failed sign-in attempts; try again later",
        code="LOGIN_LOCKED",
        headers={"Retry-After": str(max(1, retry_after))},
    )


async def _login_failed(
    identity: Identity,
    *,
    scopes: list[Scope],
    user: User | None,
    context: RequestContext,
    reason: str,
    action: str = "auth.login",
) -> None:
    """Count the failure, audit it (and any lock it caused) in a transaction of its own."""
    failure = await identity.throttle.record_failure(scopes)
    actor_id = user.id if user else None
    await audit.record_detached(
        identity.db.sessions,
        action=action,
        context=context,
        actor_id=actor_id,
        outcome="failure",
        details={"reason": reason},
    )
    for scope in failure.locked:
        await audit.record_detached(
            identity.db.sessions,
            action="auth.lockout",
            context=context,
            actor_id=actor_id if scope.kind == "account" else None,
            target_type=scope.kind,
            outcome="success",
            details={"lockoutSeconds": identity.settings.login_lockout_seconds},
        )
    # Repeated failures are slowed before they are locked. No database connection is held
    # here: the lookup and the audit rows used short transactions of their own.
    delay = failure_delay(failure.count, ceiling=identity.settings.login_failure_delay_max_seconds)
    if delay:
        await asyncio.sleep(delay)


async def login(
    session: AsyncSession, identity: Identity, *, data: LoginIn, context: RequestContext
) -> tuple[User, IssuedTokens]:
    email = data.email.strip().lower()
    scopes = _login_scopes(identity, email=email, context=context)
    retry_after = await identity.throttle.retry_after(scopes)
    if retry_after:
        await audit.record_detached(
            identity.db.sessions,
            action="auth.login",
            context=context,
            outcome="failure",
            details={"reason": "locked"},
        )
        raise _locked_error(retry_after)
    # Looked up in a short transaction of its own, so that no pooled connection is held
    # while this request waits for (and runs) the hash: a login flood queues on the hash
    # pool, not on the database pool.
    async with identity.db.sessions() as lookup:
        found = await repository.get_user_by_email(lookup, email)
    valid = await identity.hasher.verify(found.password_hash if found else None, data.password)
    user = await repository.get_user(session, found.id) if found is not None and valid else None
    if user is None or not user.is_active:
        reason = "inactive" if user is not None else "invalid_credentials"
        await _login_failed(identity, scopes=scopes, user=found, context=context, reason=reason)
        raise Unauthorized("Invalid email or password", code="INVALID_CREDENTIALS")
    if identity.hasher.needs_rehash(user.password_hash):
        # Rolled back with the transaction when the second factor below fails.
        user.password_hash = await identity.hasher.hash(data.password)
    tokens = await finish_sign_in(
        session, identity, user=user, totp_code=data.totp, context=context, scopes=scopes
    )
    return user, tokens


async def finish_sign_in(
    session: AsyncSession,
    identity: Identity,
    *,
    user: User,
    totp_code: str | None,
    context: RequestContext,
    scopes: list[Scope] | None = None,
    details: dict[str, str] | None = None,
) -> IssuedTokens:
    """What every sign-in ends with once the first factor holds (a password, or an OpenID
    provider's word): the TOTP code when MFA is on, the `auth.login` audit row, a session.

    `scopes` are the login's throttling scopes when the caller has checked them already.
    """
    if scopes is None:
        scopes = _login_scopes(identity, email=user.email, context=context)
        if user.mfa_enabled and (retry_after := await identity.throttle.retry_after(scopes)):
            raise _locked_error(retry_after)
    if user.mfa_enabled:
        if totp_code is None:
            raise Unauthorized("A TOTP code is required for this account", code="MFA_REQUIRED")
        if not totp.accept_code(identity.encryptor, user=user, code=totp_code):
            await _login_failed(
                identity, scopes=scopes, user=user, context=context, reason="invalid_totp"
            )
            raise Unauthorized("Invalid TOTP code", code="INVALID_TOTP")
    await identity.throttle.reset(scopes[0])
    await audit_user(
        session, action="auth.login", user_id=user.id, context=context, details=details
    )
    return await sessions.start_session(session, identity, user=user, context=context)


# --- refresh and logout --------------------------------------------------------------------


async def refresh(
    session: AsyncSession, identity: Identity, *, token: str, context: RequestContext
) -> IssuedTokens:
    """Rotate a refresh token: the presented one is used up and a new pair issued.

    Presenting a used token again within the grace window (several tabs refreshing at once)
    returns the very same new pair; after it, the family is revoked as stolen.
    """
    step, jti = await sessions.step_for_token(session, identity, token=token)
    if step.revoked_at is not None:
        raise sessions.ended()
    user = await repository.get_user(session, step.user_id)
    if user is None or not user.is_active:
        raise sessions.ended()
    now = sessions.whole_seconds(utcnow())
    if step.expires_at <= now:
        raise sessions.invalid_refresh()
    if step.used_at is None:
        if await repository.claim_for_rotation(session, session_id=step.id, used_at=now):
            child = identity.child_jti(jti, "refresh")
            await sessions.add_step(
                session,
                identity,
                jti=child,
                family_id=step.family_id,
                user_id=step.user_id,
                parent_id=step.id,
                now=now,
                context=context,
            )
            return sessions.issue(
                identity, user=user, family_id=step.family_id, refresh_jti=child, issued_at=now
            )
        # Another request rotated it a moment ago: read what it wrote.
        fresh = await repository.get_session_by_jti_hash(session, step.jti_hash)
        if fresh is None or fresh.revoked_at is not None or fresh.used_at is None:
            raise sessions.ended()
        step = fresh
    assert step.used_at is not None
    used_at = step.used_at
    if (now - used_at).total_seconds() > identity.settings.refresh_grace_seconds:
        await sessions.revoke_family_detached(identity, step=step, context=context)
        raise Unauthorized(
            "Refresh token was already used; the session is revoked", code="REFRESH_TOKEN_REUSED"
        )
    return sessions.issue(
        identity,
        user=user,
        family_id=step.family_id,
        refresh_jti=identity.child_jti(jti, "refresh"),
        issued_at=used_at,
    )


async def logout(
    session: AsyncSession, identity: Identity, *, token: str, context: RequestContext
) -> None:
    """End the session family of a refresh token; other sessions are untouched."""
    step, _ = await sessions.step_for_token(session, identity, token=token)
    if not await sessions.end_family(
        session,
        identity,
        user_id=step.user_id,
        family_id=step.family_id,
        action="auth.logout",
        context=context,
    ):
        raise sessions.ended()


# --- the signed-in user --------------------------------------------------------------------


async def get_profile(session: AsyncSession, actor: Actor) -> User:
    user = await repository.get_user(session, actor.user_id)
    if user is None:
        raise sessions.ended()
    return user


async def erase_user(session: AsyncSession, identity: Identity, actor: Actor) -> None:
    """Delete the caller's user row (sessions go by cascade) and forget its sessions."""
    user = await get_profile(session, actor)
    families = await repository.family_ids_of_user(session, user.id)
    await set_rls_actor(session, user_id=user.id, role=user.role)
    await session.delete(user)
    await session.flush()
    await sessions.forget_sessions(session, identity, family_ids=families)


async def users_by_ids(
    session: AsyncSession, actor: Actor, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, User]:
    """Users by id in one query, for batching front doors (GraphQL's DataLoader); a user
    sees only themselves, an admin everyone. Ids not found or not visible are left out."""
    wanted = [uid for uid in set(user_ids) if actor.is_admin or uid == actor.user_id]
    if not wanted:
        return {}
    return {user.id: user for user in await repository.get_users(session, wanted)}
