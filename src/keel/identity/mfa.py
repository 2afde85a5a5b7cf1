"""Multi-factor sign-in: TOTP enrolment, turning it on, and turning it off."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from keel.identity import totp
from keel.identity.auditing import audit_user
from keel.identity.credentials import verify_password
from keel.identity.models import User
from keel.identity.service import Identity, get_profile
from keel.platform.actor import Actor, RequestContext
from keel.platform.errors import BadRequest, Conflict


async def start_mfa_enrolment(
    session: AsyncSession, identity: Identity, actor: Actor, *, context: RequestContext
) -> tuple[str, str]:
    """Create a TOTP secret (stored encrypted, not yet required); returns it and its URI."""
    user = await get_profile(session, actor)
    if user.mfa_enabled:
        raise Conflict("MFA is already enabled; disable it first", code="MFA_ALREADY_ENABLED")
    secret = totp.new_secret()
    totp.seal_secret(identity.encryptor, user=user, secret=secret)
    user.mfa_last_step = None
    await session.flush()
    await audit_user(session, action="auth.mfa_enrol", user_id=user.id, context=context)
    return secret, totp.provisioning_uri(secret, email=user.email)


def _check_code(identity: Identity, *, user: User, code: str) -> None:
    if user.mfa_secret_encrypted is None:
        raise Conflict("Start MFA enrolment first", code="MFA_NOT_ENROLLED")
    if not totp.accept_code(identity.encryptor, user=user, code=code):
        raise BadRequest("Invalid TOTP code", code="INVALID_TOTP")


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
    _check_code(identity, user=user, code=code)
    user.mfa_enabled = True
    await session.flush()
    await audit_user(session, action="auth.mfa_enable", user_id=user.id, context=context)


async def disable_mfa(
    session: AsyncSession,
    identity: Identity,
    actor: Actor,
    *,
    password: str,
    code: str,
    context: RequestContext,
) -> None:
    """Turn MFA off; the caller proves both their password and a current code."""
    await verify_password(identity, actor, password=password, context=context)
    user = await get_profile(session, actor)
    if not user.mfa_enabled:
        raise Conflict("MFA is not enabled", code="MFA_NOT_ENABLED")
    _check_code(identity, user=user, code=code)
    user.mfa_enabled = False
    user.mfa_secret_encrypted = None
    await session.flush()
    await audit_user(session, action="auth.mfa_disable", user_id=user.id, context=context)
