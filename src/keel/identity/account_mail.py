"""Account life cycle by mail (SPEC §11): forgotten password, address verification, address
change. Each step is audited; mails are queued in the request's transaction.

No answer tells whether an address has an account: `forgot` is 202 for every address, and
`change` to an address another account holds is 202 too (no link is sent to it).
"""

from __future__ import annotations

import uuid

from limits import RateLimitItem, parse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.identity import credentials, mail_links, repository, sessions
from keel.identity.auditing import audit_user
from keel.identity.models import EmailToken, User
from keel.identity.passwords import identifier_problem
from keel.identity.service import Identity, get_profile
from keel.mail import templates
from keel.mail.outbox import queue_mail
from keel.platform.actor import Actor, RequestContext
from keel.platform.db import utcnow
from keel.platform.errors import (
    BadRequest,
    Conflict,
    ErrorDetail,
    ServiceUnavailable,
    TooManyRequests,
    ValidationFailed,
)
from keel.platform.ratelimit import LimiterUnavailable, RateLimiter
from keel.platform.security import sha256_hex


def invalid_token() -> BadRequest:
    return BadRequest("The link is invalid, used or expired", code="INVALID_TOKEN")


def normalize(email: str) -> str:
    return email.strip().lower()


_LIMITS: dict[str, RateLimitItem] = {}


async def limit_address(identity: Identity, limiter: RateLimiter | None, address: str) -> None:
    """At most KEEL_MAIL_RATE_LIMIT_PER_ADDRESS mails to one address per window (counted
    for every address, with or without an account, so the 429 reveals nothing)."""
    if limiter is None:  # KEEL_RATE_LIMIT_ENABLED=false turns every limit off
        return
    spec = identity.settings.mail_rate_limit_per_address
    item = _LIMITS.get(spec) or _LIMITS.setdefault(spec, parse(spec))
    try:
        decision = await limiter.hit(item, "mail", sha256_hex(address))
    except LimiterUnavailable as exc:
        raise ServiceUnavailable("Rate limiting is unavailable; try again later") from exc
    if not decision.allowed:
        raise TooManyRequests(
            "Too many mails to this address; try again later",
            code="RATE_LIMITED",
            headers={"Retry-After": str(max(1, decision.reset_after))},
        )


async def _live_token(
    identity: Identity,
    token: str,
    *,
    purposes: tuple[str, ...],
    action: str,
    context: RequestContext,
) -> str:
    """The hash of a token that is live for one of `purposes`; else audited 400 INVALID_TOKEN.

    Read in a short transaction of its own before the request's transaction writes: a
    failure is audited in another transaction, which must not wait for a write lock the
    request holds (SQLite), and a bad token costs no password hash.
    """
    hashed = sha256_hex(token)
    async with identity.db.sessions() as lookup:
        found = await repository.get_email_token(lookup, hashed)
    live = (
        found is not None
        and found.purpose in purposes
        and found.used_at is None
        and found.expires_at > utcnow()
    )
    if not live:
        await audit.record_detached(
            identity.db.sessions,
            action=action,
            context=context,
            details={"reason": "invalid_token"},
        )
        raise invalid_token()
    return hashed


async def _use_token(
    session: AsyncSession, *, hashed: str, purposes: tuple[str, ...]
) -> tuple[EmailToken, User]:
    """Use the token up (one UPDATE … RETURNING: of concurrent uses, one wins) and return it
    with its user; 400 INVALID_TOKEN when another request used it first."""
    used = await repository.consume_email_token(
        session, token_hash=hashed, purposes=purposes, now=utcnow()
    )
    user = await repository.get_user(session, used.user_id) if used is not None else None
    if used is None or user is None or not user.is_active:
        raise invalid_token()
    return used, user


# --- forgotten password --------------------------------------------------------------------


async def forgot_password(
    session: AsyncSession,
    identity: Identity,
    limiter: RateLimiter | None,
    *,
    email: str,
    context: RequestContext,
) -> None:
    """Mail a reset link if the address has an active account; the same answer otherwise."""
    address = normalize(email)
    await limit_address(identity, limiter, address)
    user = await repository.get_user_by_email(session, address)
    if user is None or not user.is_active:
        await audit.record(
            session,
            action="auth.password_reset_requested",
            context=context,
            outcome="failure",
            details={"reason": "unknown_email" if user is None else "inactive"},
        )
        return
    settings = identity.settings
    # One link at a time: asking again retires the earlier ones.
    await repository.retire_email_tokens(session, user_id=user.id, purposes=["reset"], now=utcnow())
    raw = await mail_links.issue_token(
        session, user_id=user.id, purpose="reset", ttl_seconds=settings.password_reset_ttl_seconds
    )
    content = templates.PASSWORD_RESET.render(
        name=user.name,
        link=mail_links.link(settings, "reset-password", raw),
        minutes=str(settings.password_reset_ttl_seconds // 60),
    )
    await queue_mail(
        session,
        identity.encryptor,
        to=user.email,
        content=content,
        key=sha256_hex(raw)[:32],
    )
    await audit_user(
        session, action="auth.password_reset_requested", user_id=user.id, context=context
    )


async def reset_password(
    session: AsyncSession,
    identity: Identity,
    *,
    token: str,
    new_password: str,
    context: RequestContext,
) -> None:
    """Set a new password with a reset link's token; every session of the user ends."""
    purposes = ("reset",)
    hashed = await _live_token(
        identity, token, purposes=purposes, action="auth.password_reset", context=context
    )
    # Hashed before the transaction touches the database: no connection held meanwhile.
    new_hash = await identity.hasher.hash(new_password)
    now = utcnow()
    _, user = await _use_token(session, hashed=hashed, purposes=purposes)
    problem = identifier_problem(new_password, email=user.email, name=user.name)
    if problem is not None:  # raised before commit: the token stays usable
        raise ValidationFailed(details=[ErrorDetail(field="newPassword", message=problem)])
    await repository.retire_email_tokens(session, user_id=user.id, purposes=["reset"], now=now)
    # The link reached the address: that proves it as much as a verification link would.
    if not user.email_verified:
        user.email_verified = True
    await credentials.replace_password(
        session,
        identity,
        user=user,
        new_hash=new_hash,
        keep=None,
        action="auth.password_reset",
        context=context,
    )


# --- verification and change ---------------------------------------------------------------


async def verify_email(
    session: AsyncSession, identity: Identity, *, token: str, context: RequestContext
) -> User:
    """Apply a verification link (the address is proved) or a change link (the account
    moves to the new, thereby proved, address)."""
    purposes = ("verify", "change")
    hashed = await _live_token(
        identity, token, purposes=purposes, action="auth.email_verified", context=context
    )
    now = utcnow()
    used, user = await _use_token(session, hashed=hashed, purposes=purposes)
    if used.email is None:  # pragma: no cover - verify and change tokens always name one
        raise invalid_token()
    if used.purpose == "verify":
        if used.email != user.email:  # the account has moved to another address since
            raise invalid_token()
        user.email_verified = True
        action = "auth.email_verified"
    else:
        user.email = used.email
        user.email_verified = True
        await repository.retire_email_tokens(
            session, user_id=user.id, purposes=["change", "verify", "reset"], now=now
        )
        action = "auth.email_changed"
    try:
        await session.flush()
    except IntegrityError as exc:  # the new address was taken after the link was sent
        raise Conflict("An account with this email already exists", code="EMAIL_TAKEN") from exc
    await _forget_profile(session, identity, user.id)
    await audit_user(session, action=action, user_id=user.id, context=context)
    return user


async def resend_verification(
    session: AsyncSession,
    identity: Identity,
    limiter: RateLimiter | None,
    actor: Actor,
    *,
    context: RequestContext,
) -> None:
    """Send the signed-in user a new verification link (nothing when already verified)."""
    user = await get_profile(session, actor)
    if user.email_verified:
        return
    await limit_address(identity, limiter, user.email)
    await mail_links.send_verification(session, identity.settings, identity.encryptor, user=user)
    await audit_user(
        session, action="auth.email_verification_requested", user_id=user.id, context=context
    )


async def request_email_change(
    session: AsyncSession,
    identity: Identity,
    limiter: RateLimiter | None,
    actor: Actor,
    *,
    new_email: str,
    password: str,
    context: RequestContext,
) -> None:
    """Send a confirmation link to the new address and a notice to the current one.

    An address another account holds gets no link (the change could never apply), but the
    answer is the same 202, so the endpoint cannot be used to find out who has an account.
    """
    await credentials.verify_password(identity, actor, password=password, context=context)
    address = normalize(new_email)
    user = await get_profile(session, actor)
    if address == user.email:
        raise ValidationFailed(
            details=[ErrorDetail(field="newEmail", message="is already your address")]
        )
    await limit_address(identity, limiter, address)
    taken = await repository.get_user_by_email(session, address) is not None
    if not taken:
        # One pending change at a time: a newer request retires the earlier links.
        await repository.retire_email_tokens(
            session, user_id=user.id, purposes=["change"], now=utcnow()
        )
        await mail_links.send_verification(
            session,
            identity.settings,
            identity.encryptor,
            user=user,
            purpose="change",
            address=address,
        )
    notice = templates.EMAIL_CHANGE_NOTICE.render(name=user.name)
    await queue_mail(session, identity.encryptor, to=user.email, content=notice)
    await audit_user(
        session,
        action="auth.email_change_requested",
        user_id=user.id,
        context=context,
        details={"linkSent": not taken},
    )


async def _forget_profile(session: AsyncSession, identity: Identity, user_id: uuid.UUID) -> None:
    """The cached profile of every session carries the address and its verification."""
    families = await repository.family_ids_of_user(session, user_id)
    await sessions.forget_sessions(session, identity, family_ids=families)
