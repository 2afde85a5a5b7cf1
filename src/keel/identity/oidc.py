"""OpenID Connect sign-in (SPEC §11, docs/oidc.md).

authorize: the front end sends the browser to /auth/oidc/{provider}/authorize?redirectUri=…;
Keel keeps state, nonce and the PKCE verifier server-side (`oidc_logins`, hashed state, single
use, expiring) and redirects to the provider. callback: the provider sends the browser back
with a code; Keel takes the state, exchanges the code (PKCE), verifies the ID token against the
provider's JWKS (signature, iss, aud, exp, nonce), finds or links or creates the user and
redirects to redirectUri with a one-time code (`oidc_handoffs`, hashed, single use). exchange:
the front end trades that code for the same response as a password login.

Authlib does discovery, the authorization URL (PKCE S256, nonce), the code exchange and the
ID-token checks, over httpx.
"""

from __future__ import annotations

import secrets
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from joserfc.errors import JoseError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.identity import repository
from keel.identity.auditing import audit_user
from keel.identity.models import OidcHandoff, OidcIdentity, OidcLogin, User
from keel.identity.oidc_rules import (
    LEEWAY_SECONDS,
    MAX_EMAIL,
    MAX_NAME,
    MAX_SUBJECT,
    SCOPE,
    OidcFailure,
    invalid_id_token,
    invalid_state,
    provider_unavailable,
    unknown_provider,
    with_params,
)
from keel.identity.service import Identity, finish_sign_in
from keel.identity.sessions import IssuedTokens
from keel.platform.actor import RequestContext
from keel.platform.db import utcnow
from keel.platform.errors import AppError, BadRequest, Conflict
from keel.platform.security import sha256_hex
from keel.platform.services import Slot
from keel.settings import OidcProvider, Settings

with warnings.catch_warnings():
    # Authlib's httpx client announces, on import and to every process, a move to a fork
    # named httpx2 (and turns its own warnings on globally); httpx is the one Keel uses.
    from authlib import deprecate

    warnings.simplefilter("ignore", deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.starlette_client import StarletteOAuth2App

log = structlog.get_logger("keel.identity.oidc")


@dataclass(eq=False)
class OidcClients:
    """One Authlib client per configured provider, built on first use; discovery (and the
    JWKS) are fetched once and kept, the JWKS again when a token names an unknown key."""

    settings: Settings
    _apps: dict[str, StarletteOAuth2App] = field(default_factory=dict, init=False)

    def provider(self, name: str) -> OidcProvider:
        provider = self.settings.oidc_providers.get(name)
        if provider is None:
            raise unknown_provider()
        return provider

    def app(self, name: str) -> StarletteOAuth2App:
        app = self._apps.get(name)
        if app is None:
            provider = self.provider(name)
            app = StarletteOAuth2App(
                None,  # no framework: state lives in oidc_logins, not in a cookie session
                name=name,
                client_id=provider.client_id,
                client_secret=provider.client_secret or None,
                server_metadata_url=f"{provider.issuer.rstrip('/')}/.well-known/openid-configuration",
                client_kwargs={
                    "scope": SCOPE,
                    "code_challenge_method": "S256",
                    "token_endpoint_auth_method": (
                        "client_secret_basic" if provider.client_secret else "none"
                    ),
                    "timeout": self.settings.oidc_http_timeout_seconds,
                    "follow_redirects": False,
                },
            )
            self._apps[name] = app
        return app

    async def metadata(self, name: str) -> dict[str, Any]:
        """The provider's discovery document; its `issuer` must be the configured one
        (OpenID Connect Discovery §4.3), else nothing from it is trusted."""
        app = self.app(name)
        try:
            metadata: dict[str, Any] = await app.load_server_metadata()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("oidc_discovery_failed", provider=name, error=str(exc))
            raise provider_unavailable() from exc
        if metadata.get("issuer") != self.provider(name).issuer:
            app.server_metadata.clear()
            log.error("oidc_issuer_mismatch", provider=name, issuer=metadata.get("issuer"))
            raise provider_unavailable()
        return metadata


OIDC: Slot[OidcClients] = Slot("oidc")


# --- authorize ----------------------------------------------------------------------------


async def begin(
    identity: Identity,
    clients: OidcClients,
    *,
    provider: str,
    redirect_uri: str,
    callback_url: str,
    binding: str,
) -> str:
    """Record a sign-in under way and return the provider's authorization URL."""
    await clients.metadata(provider)
    state = secrets.token_urlsafe(32)
    # Authlib adds a fresh nonce (scope has openid) and PKCE S256 from a fresh verifier.
    request: dict[str, str] = await clients.app(provider).create_authorization_url(
        callback_url, state=state
    )
    now = utcnow()
    async with identity.db.transaction() as session:
        await session.execute(delete(OidcLogin).where(OidcLogin.expires_at <= now))
        session.add(
            OidcLogin(
                state_hash=sha256_hex(state),
                provider=provider,
                nonce=request["nonce"],
                code_verifier=request["code_verifier"],
                redirect_uri=redirect_uri,
                binding_hash=sha256_hex(binding),
                expires_at=now + timedelta(seconds=identity.settings.oidc_state_ttl_seconds),
            )
        )
    return request["url"]


# --- callback -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingLogin:
    provider: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    binding_hash: str
    expires_at: datetime

    def check(self, *, provider: str, binding: str | None) -> None:
        """Still valid, for this provider's callback, in the browser that started it."""
        if self.expires_at <= utcnow() or self.provider != provider:
            raise invalid_state()
        if binding is None or sha256_hex(binding) != self.binding_hash:
            raise invalid_state("This sign-in was started in another browser; start it again")


async def take_login(identity: Identity, *, state: str | None) -> PendingLogin:
    """The sign-in `state` stands for, used up now (in a transaction of its own, so a failure
    later does not give it back). Unknown state: INVALID_STATE, with no redirectUri to go to."""
    if not state or len(state) > 256:
        raise invalid_state()
    async with identity.db.transaction() as session:
        row = await session.get(OidcLogin, sha256_hex(state))
        if row is not None:
            taken = await session.execute(
                delete(OidcLogin).where(OidcLogin.state_hash == row.state_hash)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of a DELETE
                row = None  # a concurrent callback took it first
    if row is None:
        raise invalid_state()
    return PendingLogin(
        provider=row.provider,
        nonce=row.nonce,
        code_verifier=row.code_verifier,
        redirect_uri=row.redirect_uri,
        binding_hash=row.binding_hash,
        expires_at=row.expires_at,
    )


class RedirectedFailure(Exception):
    """A failure whose redirectUri is known: the browser goes back there with the error."""

    def __init__(self, redirect_uri: str, error: AppError) -> None:
        super().__init__(error.message)
        self.redirect_uri = redirect_uri
        self.error = error

    @property
    def location(self) -> str:
        return with_params(
            self.redirect_uri, {"error": self.error.code, "error_description": self.error.message}
        )


@dataclass(frozen=True, slots=True)
class ProviderUser:
    """What the provider vouched for, from a verified ID token (and userinfo for e-mail)."""

    subject: str
    email: str
    email_verified: bool
    name: str


def _is_true(value: object) -> bool:
    # Some providers send the boolean as a string.
    return value is True or (isinstance(value, str) and value.lower() == "true")


async def verify_callback(
    clients: OidcClients, *, pending: PendingLogin, code: str, callback_url: str
) -> ProviderUser:
    """Exchange the code (with the PKCE verifier) and verify the ID token."""
    name = pending.provider
    provider = clients.provider(name)
    app = clients.app(name)
    await clients.metadata(name)
    try:
        token = await app.fetch_access_token(
            callback_url, code=code, code_verifier=pending.code_verifier
        )
    except OAuthError as exc:
        raise OidcFailure(
            f"The identity provider refused the code: {exc.error}", code="OIDC_CODE_REJECTED"
        ) from exc
    except httpx.HTTPError as exc:
        raise provider_unavailable() from exc
    if not isinstance(token, dict) or not token.get("id_token"):
        raise invalid_id_token()
    try:
        claims = await app.parse_id_token(
            token,
            nonce=pending.nonce,
            claims_options={
                "iss": {"essential": True, "value": provider.issuer},
                "aud": {"essential": True, "value": provider.client_id},
                "sub": {"essential": True},
                "exp": {"essential": True},
                "nonce": {"essential": True, "value": pending.nonce},
            },
            leeway=LEEWAY_SECONDS,
        )
    except (JoseError, ValueError, KeyError) as exc:
        log.warning("oidc_id_token_rejected", provider=name, error=repr(exc))
        raise invalid_id_token() from exc
    except httpx.HTTPError as exc:
        raise provider_unavailable() from exc
    subject = str(claims["sub"])
    if not subject or len(subject) > MAX_SUBJECT or not _printable(subject):
        raise invalid_id_token()  # Core §2: at most 255 ASCII characters
    source: dict[str, Any] = dict(claims)
    if not source.get("email"):
        source = await _userinfo(app, token, subject=subject)
    email = str(source.get("email") or "").strip().lower()
    if not email or len(email) > MAX_EMAIL or "@" not in email or not _printable(email):
        raise OidcFailure(
            "The identity provider did not share a usable e-mail address",
            code="OIDC_EMAIL_MISSING",
        )
    display = str(claims.get("name") or source.get("name") or "")
    name = " ".join("".join(ch if ch.isprintable() else " " for ch in display).split())[:MAX_NAME]
    return ProviderUser(
        subject=subject,
        email=email,
        email_verified=_is_true(source.get("email_verified")),
        name=name or email.split("@", 1)[0][:MAX_NAME],
    )


def _printable(value: str) -> bool:
    """No spaces or control characters (NUL included, which PostgreSQL text refuses)."""
    return value.isprintable() and not any(ch.isspace() for ch in value)


async def _userinfo(
    app: StarletteOAuth2App, token: dict[str, Any], *, subject: str
) -> dict[str, Any]:
    """The userinfo claims, when the ID token carries no e-mail; only for the same subject."""
    metadata = await app.load_server_metadata()
    if not metadata.get("userinfo_endpoint"):
        return {}
    try:
        info = dict(await app.userinfo(token=token))
    except (httpx.HTTPError, OAuthError, ValueError):
        return {}
    return info if str(info.get("sub")) == subject else {}


async def sign_in_user(
    session: AsyncSession,
    identity: Identity,
    *,
    provider: str,
    who: ProviderUser,
    context: RequestContext,
    password_hash: str,
) -> str:
    """Find the user of (provider, subject), else link the account with the same e-mail when
    the provider verified it, else create one (with `password_hash`, of a password nobody
    knows); return a one-time code for the front end."""
    details = {"method": "oidc", "provider": provider}
    linked = await session.get(OidcIdentity, (provider, who.subject))
    if linked is not None:
        user = await repository.get_user(session, linked.user_id)
    else:
        user = await repository.get_user_by_email(session, who.email)
        if user is not None and not who.email_verified:
            raise Conflict(
                "An account with this e-mail already exists and the identity provider has "
                "not verified the address; sign in with your password instead",
                code="OIDC_EMAIL_UNVERIFIED",
            )
        if user is None:
            user = User(
                email=who.email,
                name=who.name,
                role="user",
                password_hash=password_hash,
                email_verified=who.email_verified,
            )
            session.add(user)
            await session.flush()
            await audit_user(
                session, action="auth.register", user_id=user.id, context=context, details=details
            )
        else:
            user.email_verified = True  # the provider vouches for the address
            await audit_user(
                session, action="auth.oidc_link", user_id=user.id, context=context, details=details
            )
        session.add(OidcIdentity(provider=provider, subject=who.subject, user_id=user.id))
        await session.flush()
    if user is None or not user.is_active:
        raise OidcFailure("This account is deactivated", code="ACCOUNT_DISABLED")
    return await _hand_off(session, identity, user_id=user.id, provider=provider)


async def _hand_off(
    session: AsyncSession, identity: Identity, *, user_id: uuid.UUID, provider: str
) -> str:
    code = secrets.token_urlsafe(32)
    now = utcnow()
    await session.execute(delete(OidcHandoff).where(OidcHandoff.expires_at <= now))
    session.add(
        OidcHandoff(
            code_hash=sha256_hex(code),
            user_id=user_id,
            provider=provider,
            expires_at=now + timedelta(seconds=identity.settings.oidc_code_ttl_seconds),
        )
    )
    await session.flush()
    return code


async def complete(
    identity: Identity,
    clients: OidcClients,
    *,
    provider: str,
    state: str | None,
    code: str | None,
    error: str | None,
    binding: str | None,
    callback_url: str,
    context: RequestContext,
) -> str:
    """The callback: the URL to send the browser to (redirectUri with `code`, or `error`).

    Raises OidcFailure (INVALID_STATE) only when the state names no sign-in under way.
    """
    pending = await take_login(identity, state=state)
    try:
        pending.check(provider=provider, binding=binding)
        if error:
            raise OidcFailure(
                f"The identity provider answered: {error[:200]}", code="OIDC_PROVIDER_ERROR"
            )
        if not code:
            raise OidcFailure("The identity provider sent no code", code="OIDC_PROVIDER_ERROR")
        who = await verify_callback(clients, pending=pending, code=code, callback_url=callback_url)
        # Hashed before the transaction, so no connection waits on the hashing pool. The
        # account then signs in through the provider (or after a password reset), and a
        # password login for it costs the same full verification as any other.
        password_hash = await identity.hasher.hash(secrets.token_urlsafe(32))
        try:
            async with identity.db.transaction() as session:
                one_time = await sign_in_user(
                    session,
                    identity,
                    provider=provider,
                    who=who,
                    context=context,
                    password_hash=password_hash,
                )
        except IntegrityError as exc:  # a concurrent first sign-in of the same person
            raise Conflict(
                "This sign-in raced another one; try again", code="OIDC_CONFLICT"
            ) from exc
    except AppError as exc:
        await audit.record_detached(
            identity.db.sessions,
            action="auth.oidc",
            context=context,
            outcome="failure",
            details={"provider": provider, "reason": exc.code},
        )
        raise RedirectedFailure(pending.redirect_uri, exc) from exc
    return with_params(pending.redirect_uri, {"code": one_time})


# --- exchange -----------------------------------------------------------------------------


def invalid_code() -> BadRequest:
    return BadRequest("Unknown, used or expired sign-in code", code="INVALID_CODE")


async def exchange(
    session: AsyncSession,
    identity: Identity,
    *,
    code: str,
    totp_code: str | None,
    context: RequestContext,
) -> tuple[User, IssuedTokens]:
    """Trade a one-time code for a session, as a password login would end (MFA included).

    The code is used up in the transaction that creates the session, after the second
    factor: a missing or wrong TOTP code leaves it usable until it expires (and a failure's
    audit row, written in a transaction of its own, waits for no lock this one holds)."""
    handoff = await session.get(OidcHandoff, sha256_hex(code))
    if handoff is None or handoff.expires_at <= utcnow():
        raise invalid_code()
    user = await repository.get_user(session, handoff.user_id)
    if user is None or not user.is_active:
        raise invalid_code()
    tokens = await finish_sign_in(
        session,
        identity,
        user=user,
        totp_code=totp_code,
        context=context,
        details={"method": "oidc", "provider": handoff.provider},
    )
    taken = await session.execute(
        delete(OidcHandoff).where(OidcHandoff.code_hash == handoff.code_hash)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]  # a concurrent exchange won
        raise invalid_code()
    return user, tokens


async def linked_identities(session: AsyncSession, user_id: uuid.UUID) -> list[OidcIdentity]:
    """The provider accounts linked to a user (the data export lists them)."""
    rows = await session.scalars(
        select(OidcIdentity)
        .where(OidcIdentity.user_id == user_id)
        .order_by(OidcIdentity.created_at, OidcIdentity.provider)
    )
    return list(rows)
