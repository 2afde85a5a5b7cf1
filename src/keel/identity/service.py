"""Identity rules: accounts, sign-in, rotating refresh tokens, sessions, MFA, roles.

Services take an explicit actor (or proof of identity) and the request's session, and only
flush. Two kinds of writes must outlive a failing request and so get their own transaction:
audit rows for failed sign-ins, and revoking a family when a refresh token is reused.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyotp
import structlog
from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.identity import repository
from keel.identity.models import AuthSession, User
from keel.identity.schemas import LoginIn, RegisterIn, UserPatchIn
from keel.identity.throttle import (
    LoginThrottle,
    MemoryLoginThrottle,
    RedisLoginThrottle,
    Scope,
    failure_delay,
)
from keel.platform.actor import Actor, RequestContext, VerifiedToken
from keel.platform.cache import Cache
from keel.platform.db import Database, after_commit, set_rls_actor, utcnow
from keel.platform.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from keel.platform.security import (
    Encryptor,
    PasswordHasher,
    TokenCodec,
    TokenError,
    derive_key,
    keyed_hash,
    sha256_hex,
)
from keel.platform.services import Slot
from keel.settings import Settings

log = structlog.get_logger("keel.identity")

# v2: the entry holds the profile JSON (v1 held the bare role).
SESSION_CACHE_PREFIX = "identity:session:v2:"
# Cached for a family that is revoked, or whose user is gone or deactivated.
DEAD = b"!"
TOTP_ISSUER = "Keel"


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


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
        return await authenticate_token(
            self, token=token, verified_claims=verified.claims if verified else None
        )

    async def recheck(self, actor: Actor) -> Actor:
        return await live_actor(
            self, user_id=actor.user_id, session_id=actor.session_id, expires_at=actor.expires_at
        )


IDENTITY: Slot[Identity] = Slot("identity")


# --- tokens and sessions -------------------------------------------------------------------


def _whole_seconds(moment: datetime) -> datetime:
    # JWT times are whole seconds; storing the same instant lets a pair be re-derived exactly.
    return moment.replace(microsecond=0)


def _issue(
    identity: Identity,
    *,
    user: User,
    family_id: uuid.UUID,
    refresh_jti: str,
    issued_at: datetime,
) -> IssuedTokens:
    """Sign a pair; a pure function of its inputs, so it can be repeated to the byte."""
    settings = identity.settings
    access = identity.tokens.encode(
        subject=str(user.id),
        token_type="access",
        ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        claims={"sid": str(family_id), "role": user.role},
        jti=identity.child_jti(refresh_jti, "access"),
        now=issued_at,
    )
    refresh = identity.tokens.encode(
        subject=str(user.id),
        token_type="refresh",
        ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
        claims={"sid": str(family_id)},
        jti=refresh_jti,
        now=issued_at,
    )
    return IssuedTokens(access, refresh, settings.access_token_ttl_seconds)


def _trim_agent(context: RequestContext) -> str | None:
    return (context.user_agent or "")[:512] or None


async def _add_step(
    session: AsyncSession,
    identity: Identity,
    *,
    jti: str,
    family_id: uuid.UUID,
    user_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    now: datetime,
    context: RequestContext,
) -> None:
    """Store one refresh-token step of a family: only the hash of its jti."""
    session.add(
        AuthSession(
            jti_hash=sha256_hex(jti),
            family_id=family_id,
            user_id=user_id,
            parent_id=parent_id,
            issued_at=now,
            expires_at=now + timedelta(seconds=identity.settings.refresh_token_ttl_seconds),
            user_agent=_trim_agent(context),
            ip=context.ip,
        )
    )
    await session.flush()


async def start_session(
    session: AsyncSession, identity: Identity, *, user: User, context: RequestContext
) -> IssuedTokens:
    """Open a new session family for a user who just proved who they are."""
    family_id = uuid.uuid4()
    jti = uuid.uuid4().hex
    now = _whole_seconds(utcnow())
    await _add_step(
        session,
        identity,
        jti=jti,
        family_id=family_id,
        user_id=user.id,
        parent_id=None,
        now=now,
        context=context,
    )
    return _issue(identity, user=user, family_id=family_id, refresh_jti=jti, issued_at=now)


def session_cache_key(family_id: uuid.UUID) -> str:
    return f"{SESSION_CACHE_PREFIX}{family_id}"


async def forget_sessions(
    session: AsyncSession, identity: Identity, family_ids: list[uuid.UUID]
) -> None:
    """Drop the cached liveness of sessions whose state this transaction changes.

    Deleted now and once more after commit: a request that read the old state from the
    database between the two could otherwise cache it again.
    """
    if not family_ids:
        return
    keys = [session_cache_key(fid) for fid in family_ids]
    await identity.cache.delete(*keys)

    async def forget_again() -> None:
        await identity.cache.delete(*keys)

    after_commit(session, forget_again)


async def authenticate_token(
    identity: Identity, *, token: str, verified_claims: Mapping[str, Any] | None = None
) -> Actor:
    """Verify an access token and that its session and user are still live.

    On the hot path of every authenticated request: the liveness answer (the user's current
    role, or DEAD) comes from the cache; only a miss reads the database. `verified_claims`
    are this token's claims when the protection layer has already verified it.
    """
    # Any: JWT claim values.
    try:
        claims = (
            verified_claims
            if verified_claims is not None
            else identity.tokens.decode(token, token_type="access")
        )
        user_id = uuid.UUID(str(claims["sub"]))
        session_id = uuid.UUID(str(claims["sid"]))
    except (TokenError, KeyError, ValueError) as exc:
        raise Unauthorized("Invalid or expired access token", code="INVALID_TOKEN") from exc
    expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC) if "exp" in claims else None
    return await live_actor(identity, user_id=user_id, session_id=session_id, expires_at=expires_at)


async def live_actor(
    identity: Identity,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    expires_at: datetime | None,
) -> Actor:
    """The actor of a live session, with the user's current role; 401 once it has ended."""
    key = session_cache_key(session_id)
    state = await identity.cache.get(key)
    if state is None:
        async with identity.db.primary.connect() as conn:
            row = await repository.live_session_user(conn, family_id=session_id, user_id=user_id)
        state = (
            orjson.dumps(
                {
                    "id": str(user_id),
                    "role": row.role,
                    "email": row.email,
                    "name": row.name,
                    "createdAt": row.created_at,
                }
            )
            if row
            else DEAD
        )
        await identity.cache.set(key, state, ttl=identity.settings.auth_cache_ttl_seconds)
    if state == DEAD:
        raise Unauthorized("Session has ended; sign in again", code="SESSION_REVOKED")
    profile = orjson.loads(state)
    # The role comes from the server, not the token: a demotion applies at once. The entry
    # is dropped by forget_sessions whenever role, activity or the account change.
    return Actor(
        user_id=user_id,
        role=profile["role"],
        session_id=session_id,
        profile=profile,
        expires_at=expires_at,
    )


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
    await audit.record(
        session,
        action="auth.register",
        context=context,
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
    )
    return user, await start_session(session, identity, user=user, context=context)


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
) -> None:
    """Count the failure, audit it (and any lock it caused) in a transaction of its own."""
    failure = await identity.throttle.record_failure(scopes)
    actor_id = user.id if user else None
    await audit.record_detached(
        identity.db.sessions,
        action="auth.login",
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


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret)


def _accepted_totp_step(secret: str, code: str, *, last_step: int | None) -> int | None:
    """The time step a code belongs to (now, or one step either side for clock drift),
    unless that step was already used."""
    totp = _totp(secret)
    now = datetime.now(UTC)
    for drift in (0, -1, 1):
        moment = now + timedelta(seconds=drift * totp.interval)
        if hmac.compare_digest(totp.at(moment), code):
            step = int(totp.timecode(moment))
            return step if last_step is None or step > last_step else None
    return None


def _mfa_secret(identity: Identity, user: User) -> str:
    assert identity.encryptor is not None
    assert user.mfa_secret_encrypted is not None
    return identity.encryptor.decrypt(
        user.mfa_secret_encrypted, associated_data=user.id.bytes
    ).decode()


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
    if user.mfa_enabled:
        if data.totp is None:
            raise Unauthorized("A TOTP code is required for this account", code="MFA_REQUIRED")
        step = _accepted_totp_step(
            _mfa_secret(identity, user), data.totp, last_step=user.mfa_last_step
        )
        if step is None:
            await _login_failed(
                identity, scopes=scopes, user=user, context=context, reason="invalid_totp"
            )
            raise Unauthorized("Invalid TOTP code", code="INVALID_TOTP")
        user.mfa_last_step = step
    await identity.throttle.reset(scopes[0])
    if identity.hasher.needs_rehash(user.password_hash):
        user.password_hash = await identity.hasher.hash(data.password)
    await audit.record(
        session,
        action="auth.login",
        context=context,
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
    )
    return user, await start_session(session, identity, user=user, context=context)


# --- refresh and logout --------------------------------------------------------------------


def _invalid_refresh() -> Unauthorized:
    return Unauthorized("Invalid or expired refresh token", code="INVALID_TOKEN")


async def _step_for_token(
    session: AsyncSession, identity: Identity, *, token: str
) -> tuple[AuthSession, str]:
    """The stored step a refresh token stands for (and its jti), or 401."""
    try:
        claims = identity.tokens.decode(token, token_type="refresh")
        jti = str(claims["jti"])
        user_id = uuid.UUID(str(claims["sub"]))
        family_id = uuid.UUID(str(claims["sid"]))
    except (TokenError, KeyError, ValueError) as exc:
        raise _invalid_refresh() from exc
    step = await repository.get_session_by_jti_hash(session, sha256_hex(jti))
    if step is None or step.user_id != user_id or step.family_id != family_id:
        raise _invalid_refresh()
    return step, jti


async def _revoke_family_detached(
    identity: Identity, *, step: AuthSession, context: RequestContext
) -> None:
    """Refresh-token theft: revoke the whole family and audit it, committed now."""
    now = utcnow()
    async with identity.db.transaction() as detached:
        await repository.revoke_families(
            detached, user_id=step.user_id, family_ids=[step.family_id], revoked_at=now
        )
        await audit.record(
            detached,
            action="auth.refresh_reuse",
            context=context,
            actor_id=step.user_id,
            target_type="session",
            target_id=step.family_id,
            outcome="failure",
            details={"familyRevoked": True},
        )
    await identity.cache.delete(session_cache_key(step.family_id))
    log.warning("refresh_token_reuse", family_id=str(step.family_id))


async def refresh(
    session: AsyncSession, identity: Identity, *, token: str, context: RequestContext
) -> IssuedTokens:
    """Rotate a refresh token: the presented one is used up and a new pair issued.

    Presenting a used token again within the grace window (several tabs refreshing at once)
    returns the very same new pair; after it, the family is revoked as stolen.
    """
    step, jti = await _step_for_token(session, identity, token=token)
    if step.revoked_at is not None:
        raise Unauthorized("Session has ended; sign in again", code="SESSION_REVOKED")
    user = await repository.get_user(session, step.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("Session has ended; sign in again", code="SESSION_REVOKED")
    now = _whole_seconds(utcnow())
    if step.expires_at <= now:
        raise _invalid_refresh()
    if step.used_at is None:
        if await repository.claim_for_rotation(session, session_id=step.id, used_at=now):
            child = identity.child_jti(jti, "refresh")
            await _add_step(
                session,
                identity,
                jti=child,
                family_id=step.family_id,
                user_id=step.user_id,
                parent_id=step.id,
                now=now,
                context=context,
            )
            return _issue(
                identity, user=user, family_id=step.family_id, refresh_jti=child, issued_at=now
            )
        # Another request rotated it a moment ago: read what it wrote.
        fresh = await repository.get_session_by_jti_hash(session, step.jti_hash)
        if fresh is None or fresh.revoked_at is not None or fresh.used_at is None:
            raise Unauthorized("Session has ended; sign in again", code="SESSION_REVOKED")
        step = fresh
    assert step.used_at is not None
    used_at = step.used_at
    if (now - used_at).total_seconds() > identity.settings.refresh_grace_seconds:
        await _revoke_family_detached(identity, step=step, context=context)
        raise Unauthorized(
            "Refresh token was already used; the session is revoked", code="REFRESH_TOKEN_REUSED"
        )
    return _issue(
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
    step, _ = await _step_for_token(session, identity, token=token)
    revoked = await repository.revoke_families(
        session, user_id=step.user_id, family_ids=[step.family_id], revoked_at=utcnow()
    )
    if not revoked:
        raise Unauthorized("Session has ended; sign in again", code="SESSION_REVOKED")
    await forget_sessions(session, identity, revoked)
    await audit.record(
        session,
        action="auth.logout",
        context=context,
        actor_id=step.user_id,
        target_type="session",
        target_id=step.family_id,
    )


# --- the signed-in user --------------------------------------------------------------------


async def get_profile(session: AsyncSession, actor: Actor) -> User:
    user = await repository.get_user(session, actor.user_id)
    if user is None:
        raise Unauthorized("Session has ended; sign in again", code="SESSION_REVOKED")
    return user


async def list_sessions(session: AsyncSession, actor: Actor) -> list[repository.FamilySummary]:
    return await repository.live_families(session, user_id=actor.user_id, now=utcnow())


async def revoke_session(
    session: AsyncSession,
    identity: Identity,
    actor: Actor,
    *,
    family_id: uuid.UUID,
    context: RequestContext,
) -> None:
    """Revoke one of the caller's own sessions; anyone else's is 'not found'."""
    revoked = await repository.revoke_families(
        session, user_id=actor.user_id, family_ids=[family_id], revoked_at=utcnow()
    )
    if not revoked:
        raise NotFound("Session not found")
    await forget_sessions(session, identity, revoked)
    await audit.record(
        session,
        action="auth.session_revoke",
        context=context,
        actor_id=actor.user_id,
        target_type="session",
        target_id=family_id,
    )


async def verify_password(identity: Identity, actor: Actor, password: str) -> None:
    """The caller proves their password; checked before the request's own transaction
    touches the database, so no connection is held during the hash."""
    async with identity.db.sessions() as lookup:
        user = await repository.get_user(lookup, actor.user_id)
    if user is None:
        raise Unauthorized("Session has ended; sign in again", code="SESSION_REVOKED")
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
    await verify_password(identity, actor, current_password)
    new_hash = await identity.hasher.hash(new_password)
    user = await get_profile(session, actor)
    user.password_hash = new_hash
    revoked = await repository.revoke_families(
        session, user_id=user.id, keep=actor.session_id, revoked_at=utcnow()
    )
    await session.flush()
    await forget_sessions(session, identity, revoked)
    await audit.record(
        session,
        action="auth.password_change",
        context=context,
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
        details={"sessionsRevoked": len(revoked)},
    )


# --- MFA -----------------------------------------------------------------------------------


async def start_mfa_enrolment(
    session: AsyncSession, identity: Identity, actor: Actor, *, context: RequestContext
) -> tuple[str, str]:
    """Create a TOTP secret (stored encrypted, not yet required); returns it and its URI."""
    assert identity.encryptor is not None
    user = await get_profile(session, actor)
    if user.mfa_enabled:
        raise Conflict("MFA is already enabled; disable it first", code="MFA_ALREADY_ENABLED")
    secret = pyotp.random_base32()
    user.mfa_secret_encrypted = identity.encryptor.encrypt(
        secret.encode(), associated_data=user.id.bytes
    )
    user.mfa_last_step = None
    await session.flush()
    await audit.record(
        session,
        action="auth.mfa_enrol",
        context=context,
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
    )
    uri = _totp(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)
    return secret, uri


def _check_code(identity: Identity, user: User, code: str) -> None:
    if user.mfa_secret_encrypted is None:
        raise Conflict("Start MFA enrolment first", code="MFA_NOT_ENROLLED")
    step = _accepted_totp_step(_mfa_secret(identity, user), code, last_step=user.mfa_last_step)
    if step is None:
        raise BadRequest("Invalid TOTP code", code="INVALID_TOTP")
    user.mfa_last_step = step


async def confirm_mfa(
    session: AsyncSession,
    identity: Identity,
    actor: Actor,
    *,
    code: str,
    context: RequestContext,
) -> None:
    """Turn MFA on after the user proved their authenticator produces valid codes."""
    user = await get_profile(session, actor)
    if user.mfa_enabled:
        raise Conflict("MFA is already enabled", code="MFA_ALREADY_ENABLED")
    _check_code(identity, user, code)
    user.mfa_enabled = True
    await session.flush()
    await audit.record(
        session,
        action="auth.mfa_enable",
        context=context,
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
    )


async def disable_mfa(
    session: AsyncSession,
    identity: Identity,
    actor: Actor,
    *,
    password: str,
    code: str,
    context: RequestContext,
) -> None:
    await verify_password(identity, actor, password)
    user = await get_profile(session, actor)
    if not user.mfa_enabled:
        raise Conflict("MFA is not enabled", code="MFA_NOT_ENABLED")
    _check_code(identity, user, code)
    user.mfa_enabled = False
    user.mfa_secret_encrypted = None
    await session.flush()
    await audit.record(
        session,
        action="auth.mfa_disable",
        context=context,
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
    )


# --- GDPR ----------------------------------------------------------------------------------


async def erase_user(session: AsyncSession, identity: Identity, actor: Actor) -> None:
    """Delete the caller's user row (sessions go by cascade) and forget its sessions."""
    user = await get_profile(session, actor)
    families = await repository.family_ids_of_user(session, user.id)
    await set_rls_actor(session, user_id=user.id, role=user.role)
    await session.delete(user)
    await session.flush()
    await forget_sessions(session, identity, families)


# --- administration ------------------------------------------------------------------------


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
    touched = False
    if changes.role is not None and changes.role != user.role:
        await audit.record(
            session,
            action="user.role_change",
            context=context,
            actor_id=actor.user_id,
            target_type="user",
            target_id=user.id,
            details={"from": user.role, "to": changes.role},
        )
        user.role = changes.role
        touched = True
    if changes.is_active is not None and changes.is_active != user.is_active:
        await audit.record(
            session,
            action="user.activation_change",
            context=context,
            actor_id=actor.user_id,
            target_type="user",
            target_id=user.id,
            details={"isActive": changes.is_active},
        )
        user.is_active = changes.is_active
        touched = True
        if not changes.is_active:
            await repository.revoke_families(session, user_id=user.id, revoked_at=utcnow())
    await session.flush()
    if touched:
        # Every session of the user re-reads role and activation on its next request.
        await forget_sessions(
            session, identity, await repository.family_ids_of_user(session, user.id)
        )
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
    await audit.record(
        session,
        action="user.create_admin",
        context=RequestContext(request_id="cli"),
        target_type="user",
        target_id=user.id,
        details={"created": created},
    )
    # Running servers re-read the role when their cached session state is dropped.
    await forget_sessions(session, identity, await repository.family_ids_of_user(session, user.id))
    return user, created


async def users_by_ids(
    session: AsyncSession, actor: Actor, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, User]:
    """Users by id in one query, for batching front doors (GraphQL's DataLoader); a user
    sees only themselves, an admin everyone. Ids not found or not visible are left out."""
    wanted = [uid for uid in set(user_ids) if actor.is_admin or uid == actor.user_id]
    if not wanted:
        return {}
    return {user.id: user for user in await repository.get_users(session, wanted)}
