"""Session families: issuing token pairs, refresh-token steps, token -> Actor, revocation."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.identity import repository
from keel.identity.models import AuthSession, User
from keel.platform.actor import Actor, RequestContext
from keel.platform.cache import Cache
from keel.platform.db import Database, after_commit, utcnow
from keel.platform.errors import NotFound, Unauthorized
from keel.platform.security import TokenCodec, TokenError, sha256_hex
from keel.settings import Settings

log = structlog.get_logger("keel.identity")

# v2: the entry holds the profile JSON (v1 held the bare role).
SESSION_CACHE_PREFIX = "identity:session:v2:"
# Cached for a family that is revoked, or whose user is gone or deactivated.
DEAD = b"!"


class SessionParts(Protocol):
    """What keeping sessions needs of the identity part (service.Identity provides it).

    Named here as a protocol so that this module, which the service builds on, does not
    import the service.
    """

    @property
    def settings(self) -> Settings: ...

    @property
    def tokens(self) -> TokenCodec: ...

    @property
    def cache(self) -> Cache: ...

    @property
    def db(self) -> Database: ...

    def child_jti(self, parent_jti: str, purpose: str) -> str: ...


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


def ended() -> Unauthorized:
    return Unauthorized("Session has ended; sign in again", code="SESSION_REVOKED")


def invalid_refresh() -> Unauthorized:
    return Unauthorized("Invalid or expired refresh token", code="INVALID_TOKEN")


# --- issuing -------------------------------------------------------------------------------


def whole_seconds(moment: datetime) -> datetime:
    # JWT times are whole seconds; storing the same instant lets a pair be re-derived exactly.
    return moment.replace(microsecond=0)


def issue(
    identity: SessionParts,
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


async def add_step(
    session: AsyncSession,
    identity: SessionParts,
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
    session: AsyncSession, identity: SessionParts, *, user: User, context: RequestContext
) -> IssuedTokens:
    """Open a new session family for a user who just proved who they are."""
    family_id = uuid.uuid4()
    jti = uuid.uuid4().hex
    now = whole_seconds(utcnow())
    await add_step(
        session,
        identity,
        jti=jti,
        family_id=family_id,
        user_id=user.id,
        parent_id=None,
        now=now,
        context=context,
    )
    return issue(identity, user=user, family_id=family_id, refresh_jti=jti, issued_at=now)


# --- refresh-token steps -------------------------------------------------------------------


async def step_for_token(
    session: AsyncSession, identity: SessionParts, *, token: str
) -> tuple[AuthSession, str]:
    """The stored step a refresh token stands for (and its jti), or 401."""
    try:
        claims = identity.tokens.decode(token, token_type="refresh")
        jti = str(claims["jti"])
        user_id = uuid.UUID(str(claims["sub"]))
        family_id = uuid.UUID(str(claims["sid"]))
    except (TokenError, KeyError, ValueError) as exc:
        raise invalid_refresh() from exc
    step = await repository.get_session_by_jti_hash(session, sha256_hex(jti))
    if step is None or step.user_id != user_id or step.family_id != family_id:
        raise invalid_refresh()
    return step, jti


async def revoke_family_detached(
    identity: SessionParts, *, step: AuthSession, context: RequestContext
) -> None:
    """Refresh-token theft: revoke the whole family and audit it in a transaction of its own,
    committed now, so that it outlives the failing request."""
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


# --- token -> Actor ------------------------------------------------------------------------


def session_cache_key(family_id: uuid.UUID) -> str:
    return f"{SESSION_CACHE_PREFIX}{family_id}"


async def forget_sessions(
    session: AsyncSession, identity: SessionParts, *, family_ids: list[uuid.UUID]
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
    identity: SessionParts, *, token: str, verified_claims: Mapping[str, Any] | None = None
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
    identity: SessionParts,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    expires_at: datetime | None,
) -> Actor:
    """The actor of a live session, with the user's current role; 401 once it has ended."""

    async def read_state() -> bytes:
        async with identity.db.primary.connect() as conn:
            row = await repository.live_session_user(conn, family_id=session_id, user_id=user_id)
        if row is None:
            return DEAD
        return orjson.dumps(
            {
                "id": str(user_id),
                "role": row.role,
                "email": row.email,
                "name": row.name,
                "emailVerified": row.email_verified,
                "createdAt": row.created_at,
            }
        )

    # get_or_set, not get then set: a read that began before a logout or demotion committed
    # must not be cached after forget_sessions dropped the entry (the cache discards a value
    # computed across an invalidation of its key), or the ended session would live on.
    state = await identity.cache.get_or_set(
        session_cache_key(session_id), read_state, ttl=identity.settings.auth_cache_ttl_seconds
    )
    if state == DEAD:
        raise ended()
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


# --- the caller's sessions -----------------------------------------------------------------


async def list_sessions(session: AsyncSession, actor: Actor) -> list[repository.FamilySummary]:
    return await repository.live_families(session, user_id=actor.user_id, now=utcnow())


async def end_family(
    session: AsyncSession,
    identity: SessionParts,
    *,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    action: str,
    context: RequestContext,
) -> bool:
    """Revoke one live session family of a user and audit it; False when none was live."""
    revoked = await repository.revoke_families(
        session, user_id=user_id, family_ids=[family_id], revoked_at=utcnow()
    )
    if not revoked:
        return False
    await forget_sessions(session, identity, family_ids=revoked)
    await audit.record(
        session,
        action=action,
        context=context,
        actor_id=user_id,
        target_type="session",
        target_id=family_id,
    )
    return True


async def revoke_session(
    session: AsyncSession,
    identity: SessionParts,
    actor: Actor,
    *,
    family_id: uuid.UUID,
    context: RequestContext,
) -> None:
    """Revoke one of the caller's own sessions; anyone else's is 'not found'."""
    if not await end_family(
        session,
        identity,
        user_id=actor.user_id,
        family_id=family_id,
        action="auth.session_revoke",
        context=context,
    ):
        raise NotFound("Session not found")
