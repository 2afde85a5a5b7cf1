"""Identity rules: registration, login, token issuance and verification."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.audit.service import RequestContext
from keel.identity import repository
from keel.identity.models import AuthSession, User
from keel.identity.schemas import LoginIn, RegisterIn
from keel.platform.db import utcnow
from keel.platform.errors import Conflict, Unauthorized
from keel.platform.security import PasswordHasher, TokenCodec, TokenError, sha256_hex
from keel.settings import Settings


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated caller, as services see it."""

    user_id: uuid.UUID
    role: str
    session_id: uuid.UUID

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class Identity:
    """What identity services need from the app: settings, the hasher and the token codec."""

    settings: Settings
    hasher: PasswordHasher
    tokens: TokenCodec


def _issue(
    identity: Identity, *, user: User, family_id: uuid.UUID, refresh_jti: str
) -> IssuedTokens:
    settings = identity.settings
    access = identity.tokens.encode(
        subject=str(user.id),
        token_type="access",
        ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        claims={"sid": str(family_id), "role": user.role},
    )
    refresh = identity.tokens.encode(
        subject=str(user.id),
        token_type="refresh",
        ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
        claims={"sid": str(family_id)},
        jti=refresh_jti,
    )
    return IssuedTokens(access, refresh, settings.access_token_ttl_seconds)


async def start_session(
    session: AsyncSession, identity: Identity, *, user: User, context: RequestContext
) -> IssuedTokens:
    """Open a new session family for a user who just proved who they are."""
    family_id = uuid.uuid4()
    jti = uuid.uuid4().hex
    session.add(
        AuthSession(
            jti_hash=sha256_hex(jti),
            family_id=family_id,
            user_id=user.id,
            expires_at=utcnow() + timedelta(seconds=identity.settings.refresh_token_ttl_seconds),
            user_agent=(context.user_agent or "")[:512] or None,
            ip=context.ip,
        )
    )
    await session.flush()
    return _issue(identity, user=user, family_id=family_id, refresh_jti=jti)


async def register(
    session: AsyncSession, identity: Identity, *, data: RegisterIn, context: RequestContext
) -> tuple[User, IssuedTokens]:
    email = str(data.email).lower()
    if await repository.get_user_by_email(session, email) is not None:
        raise Conflict("An account with this email already exists", code="EMAIL_TAKEN")
    user = User(
        email=email,
        name=data.name,
        role="user",
        password_hash=await identity.hasher.hash(data.password),
    )
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


async def login(
    session: AsyncSession, identity: Identity, *, data: LoginIn, context: RequestContext
) -> tuple[User, IssuedTokens]:
    user = await repository.get_user_by_email(session, data.email)
    valid = await identity.hasher.verify(user.password_hash if user else None, data.password)
    if user is None or not valid or not user.is_active:
        await audit.record(
            session,
            action="auth.login",
            context=context,
            outcome="failure",
            actor_id=user.id if user else None,
        )
        raise Unauthorized("Invalid email or password", code="INVALID_CREDENTIALS")
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


async def authenticate(session: AsyncSession, identity: Identity, *, token: str) -> Actor:
    """Verify an access token and that its session is still live."""
    try:
        claims = identity.tokens.decode(token, token_type="access")
        actor = Actor(
            user_id=uuid.UUID(claims["sub"]),
            role=str(claims["role"]),
            session_id=uuid.UUID(claims["sid"]),
        )
    except (TokenError, KeyError, ValueError) as exc:
        raise Unauthorized("Invalid or expired access token", code="INVALID_TOKEN") from exc
    if not await repository.family_is_live(
        session, family_id=actor.session_id, user_id=actor.user_id
    ):
        raise Unauthorized("Session has ended; sign in again", code="SESSION_REVOKED")
    return actor


async def get_profile(session: AsyncSession, actor: Actor) -> User:
    user = await repository.get_user(session, actor.user_id)
    if user is None:
        raise Unauthorized("Session has ended; sign in again", code="SESSION_REVOKED")
    return user
